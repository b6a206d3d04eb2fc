"""Dependencies for the target when the project has no lock: resolved by uv, for the target.

``uv pip compile --python-platform <arch>-manylinux_2_N --python-version X.Y.Z`` evaluates
markers and wheel tags for the image, never the host (pip's ``--platform`` still evaluates
markers for the host: packaging notes §3.4). Its ``--generate-hashes`` output is read back with
the requirements reader, so a resolution and a lock give the same kind of ``LockSet``.

``load_dependencies`` is the one entry point builds use: the lock if there is one, else this.
The project's ``requires-python`` is checked against the target first in both paths, so an
impossible combination names the base image's Python instead of failing inside uv.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import subprocess
import tempfile
import time
from collections.abc import Collection, Sequence
from functools import lru_cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from jib.atomic import write_bytes
from jib.errors import JibError
from jib.python.index import IndexConfig, index_config, uv_index_args
from jib.python.locks import LockSet, find_lock, project_deps, read_lock
from jib.python.locks.requirements import read_requirements
from jib.python.locks.uvlock import find_uv, run_uv, uv_environment
from jib.python.markers import evaluate
from jib.python.target import TargetPython

log = logging.getLogger(__name__)

#: uv 0.13's linux triples, used when its --help cannot be read.
_KNOWN_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_UV_ARCHES = ("x86_64", "aarch64")


@lru_cache(maxsize=4)
def _uv_manylinux(uv: str) -> tuple[int, ...]:
    """The ``manylinux_2_N`` triples this uv knows (they grow with each uv release)."""
    try:
        text = subprocess.run(
            [uv, "pip", "compile", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    found = {int(n) for n in re.findall(r"x86_64-manylinux_2_(\d+)", text)}
    return tuple(sorted(found)) or _KNOWN_MANYLINUX


def uv_platform(target: TargetPython, uv: str | None = None) -> str:
    """uv's ``--python-platform`` for the target: ``aarch64-manylinux_2_36``, clamped down to
    the newest glibc this uv knows (a lower bound only ever picks older, compatible wheels)."""
    arch = target.machine
    kind, (major, minor) = target.libc
    if arch not in _UV_ARCHES:
        raise JibError(
            f"uv cannot resolve dependencies for {target.platform} ({arch}); commit a lock "
            "(poetry.lock, pylock.toml, uv.lock or requirements.txt with hashes) instead"
        )
    if kind == "musl":
        return f"{arch}-unknown-linux-musl"
    known = [n for n in _uv_manylinux(uv or find_uv()) if major == 2 and n <= minor]
    if not known:
        raise JibError(
            f"the base image's glibc {major}.{minor} is older than any platform uv resolves for "
            "(manylinux_2_17); commit a lock for it instead"
        )
    return f"{arch}-manylinux_2_{max(known)}"


def _from_metadata(
    requires_dist: Sequence[str], own: str | None, target: TargetPython, extras: Collection[str]
) -> list[str]:
    """The built wheel's ``Requires-Dist`` that apply to the target with ``extras``, markers
    evaluated here for the target (so uv gets plain requirements)."""
    lines = []
    for line in requires_dist:
        req = Requirement(line)
        if own is not None and canonicalize_name(req.name) == own:
            continue
        if req.marker is not None and not evaluate(req.marker, target, extras=extras):
            continue
        req.marker = None
        lines.append(str(req))
    return lines


def _requirements(project_dir: Path, extras: Collection[str]) -> tuple[str, list[str]]:
    project = project_deps(project_dir)
    lines = list(project.dependencies)
    for extra in sorted({canonicalize_name(e) for e in extras}):
        if extra not in project.optional:
            raise JibError(
                f"the project has no extra {extra!r} in [project.optional-dependencies] "
                f"(it has: {', '.join(sorted(project.optional)) or 'none'})"
            )
        lines += project.optional[extra]
    # An extra of the project itself ("app[extra]" inside its own extras) is already expanded.
    own = project.name
    lines = [
        ln
        for ln in lines
        if own is None or canonicalize_name(re.split(r"[\s\[<>=!~;@]", ln, maxsplit=1)[0]) != own
    ]
    return project.name or project_dir.name, lines


#: How long a resolution without a lock is reused. Like Maven's daily update policy: a day-old
#: answer saves a resolver run on every build, yet new releases still arrive the next day.
#: Projects that need an exact, frozen answer commit a lock.
RESOLUTION_MAX_AGE = 24 * 3600


def resolve_unlocked(
    project_dir: Path,
    *,
    target: TargetPython,
    extras: Sequence[str] = (),
    index: IndexConfig | None = None,
    cache_dir: Path | None = None,
    requires_dist: Sequence[str] | None = None,
) -> LockSet:
    """Resolve the project's dependencies (+ extras) for the target with ``uv pip compile``;
    with ``cache_dir``, a resolution of the same inputs younger than a day is reused.

    ``requires_dist``, the built wheel's metadata, wins over ``[project] dependencies``: it
    includes what build hooks and dynamic metadata added.
    """
    project_dir = project_dir.resolve()
    project = project_deps(project_dir)
    target.check_requires_python(project.requires_python, f"project {project.name or ''}".strip())
    if requires_dist is not None:
        name = project.name or project_dir.name
        lines = _from_metadata(requires_dist, project.name, target, extras)
    else:
        name, lines = _requirements(project_dir, extras)
    if not lines:
        return LockSet.from_packages([], target, source="uv pip compile")
    index = index or index_config()
    uv = find_uv()
    version = target.full_version if target.version[2] else target.minor
    args = [
        "--python-platform",
        uv_platform(target, uv),
        "--python-version",
        version,
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        "--quiet",
        *uv_index_args(index),
    ]
    cached = _cached_resolution(cache_dir, lines, args)
    with tempfile.TemporaryDirectory(prefix="pyjib-resolve-") as tmp:
        output = Path(tmp) / "requirements.txt"
        if cached is not None and _fresh(cached):
            log.debug("reusing the resolution in %s", cached)
            output = cached
        else:
            source = Path(tmp) / "requirements.in"
            source.write_text("\n".join(lines) + "\n", encoding="utf-8")
            run_uv(
                ["pip", "compile", str(source), "--output-file", str(output), *args],
                project_dir,
                f"resolving the dependencies of {name} for {target.describe()} with uv",
            )
            if cached is not None:
                with contextlib.suppress(OSError):
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    write_bytes(cached, output.read_bytes())
        found = read_requirements(output, target=target, project_dir=project_dir)
    return LockSet.from_packages(
        found.packages,
        target,
        source="uv pip compile",
        index_url=index.index_url,
        extra_index_urls=index.extra_index_urls,
    )


def _cached_resolution(
    cache_dir: Path | None, lines: Sequence[str], args: Sequence[str]
) -> Path | None:
    if cache_dir is None:
        return None
    key = hashlib.sha256(json.dumps([list(lines), list(args)]).encode()).hexdigest()
    return cache_dir / "resolutions" / f"{key}.txt"


def _fresh(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < RESOLUTION_MAX_AGE
    except OSError:
        return False


def load_dependencies(
    project_dir: Path,
    *,
    target: TargetPython,
    lock: str | Path = "auto",
    extras: Sequence[str] = (),
    groups: Collection[str] | None = None,
    index: IndexConfig | None = None,
    cache_dir: Path | None = None,
    requires_dist: Sequence[str] | None = None,
) -> LockSet:
    """The lock's packages for the target if the project has a lock, else a uv resolution."""
    if find_lock(project_dir, lock) is not None:
        return read_lock(
            project_dir, lock, target=target, extras=extras, groups=groups, cache_dir=cache_dir
        )
    return resolve_unlocked(
        project_dir,
        target=target,
        extras=extras,
        index=index,
        cache_dir=cache_dir,
        requires_dist=requires_dist,
    )


__all__ = [
    "load_dependencies",
    "resolve_unlocked",
    "uv_environment",
    "uv_platform",
]
