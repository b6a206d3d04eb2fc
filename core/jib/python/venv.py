"""The virtual environment in the image: where things go under ``<app-root>/.venv``, and the
skeleton (``pyvenv.cfg`` and the ``bin/python*`` links) that makes the base image's interpreter
run as that venv.

No ``python -m venv`` runs anywhere: the skeleton is a handful of entries written by hand, the
same ones ``python3.X -m venv --without-pip`` makes on Linux (packaging notes §4.4). A venv rather
than a bare ``PYTHONPATH`` directory because ``.pth`` files only work in a site dir, console
scripts need one interpreter path for their shebang, and Debian-packaged Pythons keep the base's
own packages in ``dist-packages``, which a venv isolates us from.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from jib.errors import JibError
from jib.layers import LayerEntry, normalize_target
from jib.python.target import TargetPython

DEFAULT_APP_ROOT = "/app"

#: Linux's limit on a ``#!`` line (BINPRM_BUF_SIZE), newline included. Past it, or with a space
#: in the path, ``installer`` writes a ``/bin/sh`` trampoline instead, which distroless bases
#: (no shell) cannot run, so such an app-root is refused up front.
_SHEBANG_LIMIT = 127


@dataclass(frozen=True)
class VenvLayout:
    """Paths of the venv inside the image for one target interpreter."""

    target: TargetPython
    app_root: str = DEFAULT_APP_ROOT

    def __post_init__(self) -> None:
        root = normalize_target(self.app_root)
        object.__setattr__(self, "app_root", root)
        python = f"{root.rstrip('/')}/.venv/bin/python"
        if " " in python or any(c in python for c in "\t\n\"'\\"):
            raise JibError(
                f"app-root {self.app_root!r} contains a space or quote, which a script's #! line "
                'cannot hold: set [tool.jib.container] app-root to a plain path such as "/app"'
            )
        if len(python) + 3 > _SHEBANG_LIMIT:
            raise JibError(
                f"app-root {self.app_root!r} is too long for a script's #! line "
                f"(limit {_SHEBANG_LIMIT} bytes): set [tool.jib.container] app-root to a "
                "shorter path"
            )
        if not self.target.executable.startswith("/"):
            raise JibError(
                f"the target interpreter {self.target.executable!r} is not an absolute path: "
                'set [tool.jib.python] executable, e.g. "/usr/local/bin/python3"'
            )

    @property
    def venv(self) -> str:
        """``/app/.venv``."""
        return f"{self.app_root.rstrip('/')}/.venv"

    @property
    def bin(self) -> str:
        return f"{self.venv}/bin"

    @property
    def python(self) -> str:
        """The venv's interpreter, what console-script shebangs and ``python -m`` use."""
        return f"{self.bin}/python"

    @property
    def site_packages(self) -> str:
        """``/app/.venv/lib/python3.11/site-packages``: purelib and platlib alike."""
        return f"{self.venv}/{self.target.site_packages}"

    def scheme_dict(self, distribution: str) -> dict[str, str]:
        """The install scheme of a venv (``sysconfig``'s ``venv`` scheme on posix) as in-image
        paths, for the wheel spec's five ``.data`` categories."""
        return {
            "purelib": self.site_packages,
            "platlib": self.site_packages,
            # What pip and CPython's venv scheme use for headers inside a venv.
            "headers": f"{self.venv}/include/site/python{self.target.minor}"
            f"{self.target.abi_flags}/{distribution}",
            "scripts": self.bin,
            "data": self.venv,
        }


def pyvenv_cfg(target: TargetPython) -> bytes:
    """The ``pyvenv.cfg`` that makes ``bin/python`` start as this venv (PEP 405).

    ``home`` is all the interpreter reads to find its stdlib; ``executable`` is what CPython's
    venv also writes (tools such as virtualenv and uv read it); ``command`` is left out since no
    command made this venv.
    """
    home = posixpath.dirname(target.executable) or "/"
    version = ".".join(str(part) for part in target.version)
    return (
        f"home = {home}\n"
        "include-system-site-packages = false\n"
        f"version = {version}\n"
        f"executable = {target.executable}\n"
    ).encode()


def venv_entries(target: TargetPython, app_root: str = DEFAULT_APP_ROOT) -> list[LayerEntry]:
    """The venv skeleton under ``<app-root>/.venv``, in sorted order.

    ``bin/python3.X`` links to the base image's interpreter by absolute path (the link is
    resolved inside the container, so the path is the image's, not the host's); ``python`` and
    ``python3`` link to it relatively, as CPython's venv does; ``lib64 -> lib`` is there because
    some distributions (Fedora, UBI) put platlib under ``lib64`` and venv adds it for them.
    """
    layout = VenvLayout(target, app_root)
    versioned = f"python{target.minor}{target.abi_flags}"
    entries = [
        LayerEntry.directory(layout.venv),
        LayerEntry.directory(layout.bin),
        LayerEntry.symlink(f"{layout.bin}/python", versioned),
        LayerEntry.symlink(f"{layout.bin}/python3", versioned),
        LayerEntry.symlink(f"{layout.bin}/{versioned}", target.executable),
        LayerEntry.directory(f"{layout.venv}/include"),
        LayerEntry.directory(f"{layout.venv}/lib"),
        LayerEntry.symlink(f"{layout.venv}/lib64", "lib"),
        LayerEntry.directory(posixpath.dirname(layout.site_packages)),
        LayerEntry.directory(layout.site_packages),
        LayerEntry.data(pyvenv_cfg(target), f"{layout.venv}/pyvenv.cfg"),
    ]
    return sorted(entries, key=lambda entry: entry.path)
