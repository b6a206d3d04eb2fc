"""Locked dependencies, read for the target image (issue 4 item 2).

``read_lock`` turns any supported lock into a ``LockSet``: poetry.lock, pylock.toml (PEP 751),
uv.lock (via ``uv export``) or a requirements file with hashes. ``auto`` takes the first that
exists, in the contract's order. Only runtime (main) dependencies plus the asked extras are kept,
markers evaluated for the target. Without a lock, ``jib.python.resolve`` resolves with uv.

The project's own ``requires-python`` is checked against the target here (and in
``resolve.resolve_unlocked``), before any lock is read, so an impossible combination fails with
the base image's Python version rather than with a lock or resolver error.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from jib.errors import JibError
from jib.python.locks._toml import load_toml
from jib.python.locks.model import (
    LOCAL_KINDS,
    LockedFile,
    LockedPackage,
    LockSet,
    SourceKind,
    best_wheel,
    sdist_of,
)
from jib.python.locks.poetry import read_poetry_lock
from jib.python.locks.pylock import read_pylock
from jib.python.locks.requirements import read_requirements
from jib.python.locks.uvlock import read_uv_lock
from jib.python.target import TargetPython

__all__ = [
    "LOCAL_KINDS",
    "LOCK_ORDER",
    "LockSet",
    "LockedFile",
    "LockedPackage",
    "ProjectDeps",
    "SourceKind",
    "best_wheel",
    "find_lock",
    "lock_kind",
    "project_deps",
    "read_lock",
    "sdist_of",
]

#: ``lock = "auto"`` takes the first of these that exists (CONTRACT.md, [tool.jib.python] lock).
LOCK_ORDER = ("poetry.lock", "pylock.toml", "uv.lock", "requirements.txt")


@dataclass(frozen=True)
class ProjectDeps:
    """What pyproject.toml says about the project's dependencies."""

    name: str | None
    requires_python: str | None
    dependencies: tuple[str, ...]
    optional: dict[str, tuple[str, ...]]


def project_deps(project_dir: Path) -> ProjectDeps:
    """``[project]`` name, requires-python, dependencies and optional-dependencies."""
    pyproject = project_dir / "pyproject.toml"
    data = load_toml(pyproject) if pyproject.is_file() else {}
    project = data.get("project") or {}
    poetry = (data.get("tool") or {}).get("poetry") or {}
    name = project.get("name") or poetry.get("name")
    requires_python = project.get("requires-python")
    if requires_python is None and isinstance(poetry.get("dependencies"), dict):
        python = poetry["dependencies"].get("python")
        if isinstance(python, str):
            # Poetry's caret/tilde syntax: reuse the config reader's translation of it.
            from jib.config.project import _poetry_python

            requires_python = str(_poetry_python(python)) or None
    return ProjectDeps(
        name=canonicalize_name(name) if name else None,
        requires_python=requires_python,
        dependencies=tuple(project.get("dependencies") or ()),
        optional={
            canonicalize_name(k): tuple(v)
            for k, v in (project.get("optional-dependencies") or {}).items()
        },
    )


def lock_kind(path: Path) -> str:
    """``poetry``, ``pylock``, ``uv`` or ``requirements``, from the file name."""
    name = path.name
    if name == "poetry.lock":
        return "poetry"
    if name == "uv.lock":
        return "uv"
    if name.startswith("pylock.") and name.endswith(".toml"):
        return "pylock"
    return "requirements"


def find_lock(project_dir: Path, lock: str | Path = "auto") -> Path | None:
    """The lock file to use: an explicit path (must exist), or the first of ``LOCK_ORDER``."""
    if str(lock) != "auto":
        path = Path(lock)
        path = path if path.is_absolute() else project_dir / path
        if not path.is_file():
            raise JibError(
                f"[tool.jib.python] lock names {path}, which does not exist; fix the path "
                'or use lock = "auto"'
            )
        return path
    return next((project_dir / n for n in LOCK_ORDER if (project_dir / n).is_file()), None)


def read_lock(
    project_dir: Path,
    lock: str | Path = "auto",
    *,
    target: TargetPython,
    extras: Sequence[str] = (),
    groups: Collection[str] | None = None,
    cache_dir: Path | None = None,
) -> LockSet:
    """The project's locked dependencies for ``target``.

    ``groups``: Poetry groups (default ``main``) or PEP 735 dependency groups for pylock/uv
    (default: none beyond the runtime dependencies). ``cache_dir``: the build cache, where uv.lock
    exports are kept.
    """
    project_dir = project_dir.resolve()
    path = find_lock(project_dir, lock)
    if path is None:
        raise JibError(
            f"no lock file in {project_dir} (looked for {', '.join(LOCK_ORDER)}); add one or "
            "let pyjib resolve the dependencies"
        )
    project = project_deps(project_dir)
    target.check_requires_python(project.requires_python, f"project {project.name or ''}".strip())
    extras = tuple(sorted({canonicalize_name(e) for e in extras}))
    kind = lock_kind(path)
    index_url, extra_urls = None, ()
    if kind == "poetry":
        packages = read_poetry_lock(
            path, target=target, extras=extras, groups=tuple(groups or ("main",))
        )
    elif kind == "pylock":
        packages = read_pylock(
            path,
            target=target,
            extras=extras,
            groups=None if groups is None else tuple(groups),
            project_dir=project_dir,
            project_name=project.name,
        )
    elif kind == "uv":
        packages = read_uv_lock(
            path,
            target=target,
            extras=extras,
            groups=tuple(groups or ()),
            project_dir=project_dir,
            project_name=project.name,
            cache_dir=cache_dir,
        )
    else:
        found = read_requirements(path, target=target, extras=extras, project_dir=project_dir)
        packages, index_url, extra_urls = found.packages, found.index_url, found.extra_index_urls
    packages = [p for p in packages if p.name != project.name]
    return LockSet.from_packages(
        packages,
        target,
        source=path.name,
        index_url=index_url,
        extra_index_urls=extra_urls,
    )
