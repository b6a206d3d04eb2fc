"""The project's own wheel, built with its PEP 517 backend, and what pyjib reads from it.

The image gets the project as its wheel installed (never its source tree), so the wheel's
``METADATA`` is the truth about its runtime dependencies: build hooks may add ``Requires-Dist``
entries that ``[project] dependencies`` does not list (packaging notes §1.5).

Hatch and Poetry plugins build the wheel in-process and hand it over (``wheel=``); for any other
project pyjib builds it with ``build``'s ``ProjectBuilder`` in an isolated environment, as
``python -m build --wheel`` would, but one kept per backend in the cache (``jib.python.buildenv``)
rather than made for every build. Measured on this machine for ``tests/projects/app-native``
(hatchling), wall time, best of 3, warm caches:

- ``ProjectBuilder`` + isolated env installed by pip:   1.5 s
- ``ProjectBuilder`` + isolated env installed by uv:    0.64 s   (0.50 s in a later session)
- ``uv build --wheel``:                                  0.65 s
- ``ProjectBuilder`` in the kept environment:           0.29 s   <- used with a cache and uv
- (reference) hatchling's hook in-process, no env:       0.08 s   (what the Hatch plugin does)

``ProjectBuilder`` keeps a Python API with typed errors; a fresh uv-installed environment is
used without a cache, and pip's where uv is not installed.
"""

from __future__ import annotations

import logging
import re
import subprocess
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Literal

from installer.utils import parse_entrypoints

from jib.errors import JibError
from jib.python.buildenv import cached_build_env
from jib.python.locks.uvlock import uv_if_installed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectWheel:
    """What pyjib needs to know about the project, read from its built wheel."""

    path: Path
    name: str
    version: str
    #: ``Requires-Dist`` lines as written (PEP 508 strings, markers and extras included).
    requires_dist: tuple[str, ...]
    #: ``[project.scripts]``: console script name -> ``module:attr``.
    scripts: Mapping[str, str]
    #: Top-level import packages (directories), sorted.
    packages: tuple[str, ...]
    #: Those of ``packages`` that have a ``__main__.py``.
    main_packages: frozenset[str] = field(default_factory=frozenset)
    #: Whether the wheel is ``py*-none-any``; a platform wheel was built for the host only.
    is_pure: bool = True

    def has_main(self, package: str) -> bool:
        return package in self.main_packages


def load_project(
    project_dir: Path,
    out_dir: Path,
    *,
    wheel: Path | None = None,
    cache_dir: Path | None = None,
) -> ProjectWheel:
    """The project's wheel, built into ``out_dir`` unless ``wheel`` is given, and read."""
    if wheel is None:
        wheel = build_wheel(project_dir, out_dir, cache_dir=cache_dir)
    return read_wheel(wheel)


def build_wheel(project_dir: Path, out_dir: Path, *, cache_dir: Path | None = None) -> Path:
    """Build the project's wheel with its own backend in an isolated environment.

    With ``cache_dir`` and uv, the environment is one kept per backend (``jib.python.buildenv``);
    otherwise a fresh one, as ``python -m build --wheel`` makes.
    """
    try:
        from build import (
            BuildBackendException,
            BuildException,
            FailedProcessError,
            ProjectBuilder,
        )
        from build.env import DefaultIsolatedEnv
        from pyproject_hooks import quiet_subprocess_runner
    except ImportError:  # pragma: no cover - a dependency of pyjib
        raise JibError(
            "building the project's wheel needs the 'build' package: pip install build"
        ) from None

    project_dir = Path(project_dir).resolve()
    if not (project_dir / "pyproject.toml").is_file() and not (project_dir / "setup.py").is_file():
        raise JibError(f"{project_dir} has no pyproject.toml: run pyjib in the project's directory")
    uv = uv_if_installed()
    installer: Literal["uv", "pip"] = "uv" if uv else "pip"
    log.debug("building the wheel of %s (isolated env via %s)", project_dir, installer)
    name = project_dir.name
    try:
        env_context = (
            # The kept environment is found by the requirements, so they are read first.
            cached_build_env(cache_dir, ProjectBuilder(project_dir).build_system_requires, uv)
            if cache_dir is not None and uv is not None
            else DefaultIsolatedEnv(installer=installer)
        )
        with env_context as env:
            # Quiet: the backend's chatter is only worth showing when it fails.
            builder = ProjectBuilder.from_isolated_env(
                env, project_dir, runner=quiet_subprocess_runner
            )
            try:
                env.install(builder.build_system_requires)
                env.install(builder.get_requires_for_build("wheel"))
            except (FailedProcessError, subprocess.CalledProcessError) as exc:
                raise JibError(
                    f"cannot install the build requirements of {name}: {_telling_line(exc)}; "
                    "check [build-system] requires and the package index settings"
                ) from None
            built = builder.build("wheel", out_dir)
    except BuildBackendException as exc:
        raise JibError(
            f"building the wheel of {name} failed: {_telling_line(exc)}; run "
            "'python -m build --wheel' there to see the backend's full output"
        ) from None
    except BuildException as exc:
        raise JibError(f"cannot build the wheel of {name}: {_telling_line(exc)}") from None
    except subprocess.CalledProcessError as exc:  # uv could not make the build environment
        raise JibError(
            f"cannot make a build environment for {name}: {_telling_line(exc)}"
        ) from None
    return Path(built)


_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b|^error\b|\bnot found\b|unsatisfiable", re.I)


def _telling_line(exc: BaseException) -> str:
    """The line of a failed build's output that says why, for a one-line error: the last
    ``SomeError: ...`` or ``error: ...`` line, else the last line. All of it goes to debug."""
    texts: list[str] = []
    for source in (getattr(exc, "exception", None), exc):
        for attr in ("stderr", "output", "stdout"):
            value = getattr(source, attr, None)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str) and value.strip():
                texts.append(value)
    log.debug("build output:\n%s", "\n".join(texts))
    lines = [line.strip(" \t\u2570\u2500\u25b6|") for text in texts for line in text.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if _ERROR_LINE.search(line):
            return line
    if lines:
        return lines[-1]
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def read_wheel(wheel: Path) -> ProjectWheel:
    """Name, version, ``Requires-Dist``, console scripts and top-level packages of ``wheel``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            dist_info = _dist_info_dir(wheel, names)
            metadata = BytesHeaderParser().parsebytes(archive.read(f"{dist_info}/METADATA"))
            wheel_meta = BytesHeaderParser().parsebytes(archive.read(f"{dist_info}/WHEEL"))
            entry_points = (
                archive.read(f"{dist_info}/entry_points.txt").decode()
                if f"{dist_info}/entry_points.txt" in names
                else ""
            )
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise JibError(f"cannot read the project's wheel {wheel}: {exc}") from None

    name, version = metadata.get("Name"), metadata.get("Version")
    if not name or not version:
        raise JibError(f"the project's wheel {wheel.name} has no Name or Version in its METADATA")
    scripts = {
        script: f"{module}:{attr}"
        for script, module, attr, section in parse_entrypoints(entry_points)
        if section == "console"
    }
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    packages, mains = _packages(names, dist_info, data_dir)
    tags = wheel_meta.get_all("Tag") or []
    pure = bool(tags) and all(tag.split("-")[1:] == ["none", "any"] for tag in tags)
    return ProjectWheel(
        path=Path(wheel),
        name=name,
        version=version,
        requires_dist=tuple(metadata.get_all("Requires-Dist") or ()),
        scripts=scripts,
        packages=packages,
        main_packages=mains,
        is_pure=pure,
    )


def _dist_info_dir(wheel: Path, names: list[str]) -> str:
    dist_infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        raise JibError(f"{wheel.name} is not a valid wheel: it has no single .dist-info directory")
    return dist_infos.pop()


def _packages(
    names: list[str], dist_info: str, data_dir: str
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Top-level directories that install into site-packages, and which have ``__main__.py``."""
    packages: set[str] = set()
    mains: set[str] = set()
    for name in names:
        if name.startswith(dist_info + "/"):
            continue
        if name.startswith(data_dir + "/"):
            # Only .data/purelib and .data/platlib land in site-packages.
            parts = name.split("/", 2)
            if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                continue
            name = parts[2]
        top, sep, rest = name.partition("/")
        if not sep or not top.isidentifier():
            continue  # a top-level module file, or not importable
        packages.add(top)
        if rest == "__main__.py":
            mains.add(top)
    return tuple(sorted(packages)), frozenset(mains)
