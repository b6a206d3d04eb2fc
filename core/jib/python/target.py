"""The Python inside the target image: what wheels fit it and how to install into it.

Everything about the target is decided here, from the base image and ``[tool.jib.python]``,
never from the host: a build on x86_64 for linux/arm64 must pick aarch64 wheels.

Detection order (packaging notes §6): explicit ``[tool.jib.python]`` keys, then what the image
states (``PYTHON_VERSION`` + ``PATH``, an Entrypoint/Cmd naming ``.../pythonX.Y``, the distribution
its history or labels name, see ``jib.python.distro``). When those give the full version, the
interpreter and the libc, no layer is read, so a registry push never downloads the base. Otherwise
the layers' file NAMES are read from tar headers, top layer first, once per base image digest.
Whether the layers are read depends only on the config and the settings, never on the cache, so a
cold and a warm build always agree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.image.image import Image
from jib.python.distro import GLIBC_OF_RELEASE, Distribution, distribution_of
from jib.python.layerscan import ImageScan, cached_scan

log = logging.getLogger(__name__)

#: OCI architecture (+ variant) -> ``platform.machine()`` inside such a container.
_MACHINES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "386": "i686",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
#: When layers give no libc version: manylinux2014's baseline, which every glibc image still in
#: use satisfies, so a wrong guess can only pick an older (still working) wheel.
DEFAULT_GLIBC = (2, 17)
DEFAULT_MUSL = (1, 2)  # every Alpine since 3.13


def parse_version(text: str, what: str = "[tool.jib.python] version") -> tuple[int, int, int]:
    """``"3.12"`` -> ``(3, 12, 0)``; ``"3.12.4"`` -> ``(3, 12, 4)``."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.(\d+))?\S*\s*", text)
    if not match or match.group(1) != "3":
        raise JibError(f"{what} is {text!r}, not a Python 3 version like 3.12 or 3.12.4")
    return (3, int(match.group(2)), int(match.group(3) or 0))


@dataclass(frozen=True)
class TargetPython:
    """One platform's interpreter in the base image."""

    platform: Platform
    #: ``(3, 11, 2)``; the micro version may be unknown (0) when only ``X.Y`` was found.
    version: tuple[int, int, int]
    #: The interpreter's path inside the image, e.g. ``/usr/bin/python3.11``.
    executable: str
    #: ``"glibc"`` or ``"musl"``, with its ``(major, minor)`` version, e.g. ``("glibc", (2, 36))``.
    libc: tuple[str, tuple[int, int]]
    #: ABI flags beyond the default (``"t"`` for free-threaded builds), usually ``""``.
    abi_flags: str = ""

    @property
    def minor(self) -> str:
        """``"3.11"``."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def cache_tag(self) -> str:
        """``"cpython-311"``: the bytecode cache tag, which must equal the host's to precompile."""
        return f"cpython-{self.version[0]}{self.version[1]}{self.abi_flags}"

    @property
    def site_packages(self) -> str:
        """The venv-relative site-packages directory, ``lib/python3.11/site-packages``."""
        return f"lib/python{self.minor}{self.abi_flags}/site-packages"

    @property
    def full_version(self) -> str:
        """``"3.11.2"`` (``"3.11.0"`` when the micro version is unknown)."""
        return ".".join(map(str, self.version))

    @property
    def python_tag(self) -> str:
        """``"cp311"``: the interpreter part of a wheel tag."""
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def abi(self) -> str:
        """``"cp311"``, or ``"cp313t"`` for a free-threaded build."""
        return self.python_tag + self.abi_flags

    @property
    def machine(self) -> str:
        """``platform.machine()`` inside the container: ``x86_64``, ``aarch64``, ``armv7l``..."""
        arch = self.platform.architecture
        if arch == "arm":
            return f"armv{(self.platform.variant or 'v7').lstrip('v')}l"
        return _MACHINES.get(arch, arch)

    def describe(self) -> str:
        """``CPython 3.11.2 on linux/arm64 (glibc 2.36)``, for messages."""
        kind, (major, minor) = self.libc
        return f"CPython {self.full_version} on {self.platform} ({kind} {major}.{minor})"

    def check_requires_python(self, requires_python: str | None, what: str) -> None:
        """Fail, naming the base image's Python, when ``what`` cannot run on it.

        Called for the project's ``requires-python`` by ``resolve.load_dependencies`` (before
        any lock is read or resolver run) and for each lock's own ``requires-python``.
        """
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        if not requires_python or not requires_python.strip():
            return
        try:
            spec = SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise JibError(f"{what} has an invalid requires-python {requires_python!r}") from None
        if not spec.contains(self.full_version, prereleases=True):
            raise JibError(
                f"the base image's Python is {self.full_version} ({self.executable}, "
                f"{self.platform}) but {what} requires-python {requires_python!r}; use a base "
                "image whose Python satisfies it ([tool.jib.from] image) or change requires-python"
            )


# -- putting it together ------------------------------------------------------------------------


def _path_dirs(env: dict[str, str]) -> list[str]:
    return [d.rstrip("/") for d in env.get("PATH", "").split(":") if d.startswith("/")]


def _from_command(image: Image) -> tuple[str, int] | None:
    """``("/usr/bin/python3.11", 11)`` when the Entrypoint or Cmd runs a versioned python."""
    for argv in (image.config.entrypoint, image.config.cmd):
        for arg in (argv or ())[:1]:
            if m := re.search(r"^(/.*)?/python3\.(\d+)t?$", arg):
                return arg, int(m.group(2))
    return None


def _pick_interpreter(scan: ImageScan, minor: int | None, path_dirs: Sequence[str]) -> str | None:
    """The topmost ``bin/python3.N`` (of ``minor`` if known), preferring PATH order in a tie."""
    candidates = [(i, p) for i, (p, m, _) in enumerate(scan.interpreters) if minor in (None, m)]
    if not candidates:
        return None

    def rank(item: tuple[int, str]) -> tuple[int, int]:
        parent = item[1].rpartition("/")[0]
        in_path = path_dirs.index(parent) if parent in path_dirs else len(path_dirs)
        return (in_path, item[0])

    return min(candidates, key=rank)[1]


def detect_target(
    image: Image,
    *,
    version: str | None = None,
    executable: str | None = None,
    cache_dir: Path | None = None,
) -> TargetPython:
    """The Python of ``image`` (one platform), as ``[tool.jib.python]`` or the image says.

    ``cache_dir`` (the build cache) keeps a layer scan as a small JSON file keyed by the image
    digest, so a warm build never rereads the base layers.
    """
    distro = distribution_of(image)
    stated = _stated_target(image, version, executable, distro)
    if stated is not None:
        log.debug("%s from the image config and settings, no layer read", stated.describe())
        return stated
    return _scanned_target(image, cached_scan(image, cache_dir), version, executable, distro)


def _stated_version(
    version: str | None, env_version: str, command: tuple[str, int] | None
) -> tuple[int, int, int] | None:
    """The version ``[tool.jib.python]``, else ``PYTHON_VERSION``, else the Entrypoint/Cmd
    names (micro 0 where none is given), or None."""
    if version:
        return parse_version(version)
    if env_version:
        return parse_version(env_version, "the base image's PYTHON_VERSION")
    return (3, command[1], 0) if command is not None else None


def _command_executable(command: tuple[str, int] | None, minor: int) -> str | None:
    """The Entrypoint/Cmd's interpreter, when it is an absolute path to python3.<minor>."""
    if command is not None and command[1] == minor and command[0].startswith("/"):
        return command[0]
    return None


def _has_micro(text: str | None) -> bool:
    return bool(text and re.fullmatch(r"\s*3\.\d+\.\d+\S*\s*", text))


def _stated_target(
    image: Image, version: str | None, executable: str | None, distro: Distribution | None
) -> TargetPython | None:
    """The target from the settings and the config alone, or None when something is not stated.

    Everything a build needs must be stated: the full version (for ``python_full_version``
    markers and pyvenv.cfg), the interpreter path and the libc.
    """
    libc = distro.libc if distro else None
    if libc is None:
        return None
    env = image.config.env
    env_version = env.get("PYTHON_VERSION", "")
    command = _from_command(image)
    wanted = _stated_version(version, env_version, command)
    if wanted is None:
        return None
    minor = wanted[1]
    if not _has_micro(version):
        if not (_has_micro(env_version) and env_version.startswith(f"3.{minor}.")):
            return None
        wanted = parse_version(env_version, "the base image's PYTHON_VERSION")
    if executable is None:
        executable = _command_executable(command, minor)
    official = env_version.startswith(f"3.{minor}.") and "/usr/local/bin" in _path_dirs(env)
    if executable is None and official:
        # The docker-library convention every python:* image and its derivatives follow.
        executable = f"/usr/local/bin/python3.{minor}"
    if executable is None:
        return None
    return TargetPython(
        platform=image.platform,
        version=wanted,
        executable=executable,
        libc=libc,
        abi_flags="t" if executable.endswith("t") else "",
    )


def _scanned_target(
    image: Image,
    scan: ImageScan,
    version: str | None,
    executable: str | None,
    distro: Distribution | None,
) -> TargetPython:
    env = image.config.env
    path_dirs = _path_dirs(env)
    command = _from_command(image)
    wanted = _stated_version(version, env.get("PYTHON_VERSION", ""), command)
    if wanted is None and executable and (m := re.search(r"python3\.(\d+)t?$", executable)):
        wanted = (3, int(m.group(1)), 0)
    if wanted is None and scan.interpreters:
        wanted = (3, scan.interpreters[0][1], 0)  # topmost layer wins
    if wanted is None:
        raise JibError(
            f"cannot tell which Python the base image ({image.platform}) has: no PYTHON_VERSION, "
            "no python3.X in its entrypoint or files; set [tool.jib.python] version and executable"
        )
    minor = wanted[1]
    if wanted[2] == 0:  # "3.12" asked: the micro version from the image, where it says so
        env_version = env.get("PYTHON_VERSION", "")
        full = scan.full_versions.get(f"3.{minor}")
        if env_version.startswith(f"3.{minor}."):
            wanted = parse_version(env_version, "the base image's PYTHON_VERSION")
        elif full:
            wanted = parse_version(full)

    if executable is None:
        executable = _command_executable(command, minor)
    if executable is None:
        executable = _pick_interpreter(scan, minor, path_dirs)
    if executable is None and env.get("PYTHON_VERSION") and path_dirs and not scan.interpreters:
        # An image that only says so in its config (layers unreadable or synthetic): the
        # docker-library convention is /usr/local/bin, else the first PATH entry.
        home = "/usr/local/bin" if "/usr/local/bin" in path_dirs else path_dirs[0]
        executable = f"{home}/python3.{minor}"
    if executable is None:
        found = ", ".join(p for p, _, _ in scan.interpreters) or "none"
        raise JibError(
            f"the base image ({image.platform}) has no python3.{minor} interpreter (found: "
            f"{found}); set [tool.jib.python] executable, or a matching [tool.jib.python] version"
        )

    abi_flags = next((flags for m, flags, _ in scan.dynload if m == minor), "")
    if executable.endswith("t"):
        abi_flags = "t"
    return TargetPython(
        platform=image.platform,
        version=wanted,
        executable=executable,
        libc=_libc(scan, distro),
        abi_flags=abi_flags,
    )


def _libc(scan: ImageScan, distro: Distribution | None) -> tuple[str, tuple[int, int]]:
    """The layers' evidence first (the library itself, then os-release), then the config's."""
    stated = distro.libc if distro is not None else None
    kind = scan.libc
    if kind is None and any(multiarch.endswith("musl") for _, _, multiarch in scan.dynload):
        kind = "musl"
    if kind == "musl":
        return stated if stated and stated[0] == "musl" else ("musl", DEFAULT_MUSL)
    if scan.libc_version:
        return "glibc", (scan.libc_version[0], scan.libc_version[1])
    release = tuple(scan.os_release or ())
    if len(release) == 2 and (known := GLIBC_OF_RELEASE.get(release)):  # type: ignore[arg-type]
        return "glibc", known
    if kind is None and stated is not None:
        return stated
    return "glibc", DEFAULT_GLIBC
