"""``pylock.toml`` (PEP 751), validated by ``packaging.pylock`` where the installed packaging
has it (>= 26.1), and selected for the target by the spec's installation steps: requires-python
and environments checked, ``marker`` evaluated with ``extras``/``dependency_groups`` as sets.

Unlike ``Pylock.select`` (which picks one file), every file is kept: ``wheels`` chooses the
wheel, and needs the sdist when no wheel fits. uv's export of ``uv.lock`` is read here too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from jib.errors import JibError
from jib.python.locks._toml import load_toml
from jib.python.locks.model import LockedFile, LockedPackage
from jib.python.markers import evaluate_lock, parse_marker
from jib.python.target import TargetPython

log = logging.getLogger(__name__)


def _validate(data: dict[str, Any], name: str) -> None:
    try:
        from packaging.pylock import Pylock, PylockValidationError
    except ImportError:  # packaging < 26.1: the reading below still checks what it uses
        return
    try:
        Pylock.from_dict(data)
    except PylockValidationError as err:
        raise JibError(f"{name} is not a valid PEP 751 lock: {err}") from None


def _file(item: dict[str, Any], base: Path, where: str) -> LockedFile:
    url, path = item.get("url"), item.get("path")
    filename = item.get("name") or (url or path or "").rstrip("/").rsplit("/", 1)[-1]
    hashes = item.get("hashes") or {}
    if not filename or not hashes:
        raise JibError(f"{where} has a file without a name or hashes: {item!r}")
    return LockedFile(
        url=url,
        filename=filename,
        hashes={str(k).lower(): str(v).lower() for k, v in hashes.items()},
        path=(base / path).resolve() if path and not url else None,
    )


def read_pylock(
    lock_path: Path,
    *,
    target: TargetPython,
    extras: Collection[str] = (),
    groups: Sequence[str] | None = None,
    project_dir: Path | None = None,
    project_name: str | None = None,
    display_name: str | None = None,
    base_dir: Path | None = None,
) -> list[LockedPackage]:
    name = display_name or lock_path.name
    data = load_toml(lock_path, name)
    _validate(data, name)
    target.check_requires_python(data.get("requires-python"), name)
    environments = data.get("environments")
    if environments and not any(evaluate_lock(m, target, where=name) for m in environments):
        raise JibError(
            f"{name} was locked for {', '.join(environments)}, which excludes "
            f"{target.describe()}; regenerate the lock for this target or change the base image"
        )
    declared = {canonicalize_name(e) for e in data.get("extras") or ()}
    wanted = {canonicalize_name(e) for e in extras}
    if wanted - declared:
        # uv and poetry export a pylock with the asked extras already resolved into it.
        log.warning(
            "%s declares no extra %s; using its packages as exported",
            name,
            ", ".join(sorted(wanted - declared)),
        )
    if groups is None:
        groups = data.get("default-groups") or ()
    base = base_dir or lock_path.parent
    skip_dir = project_dir.resolve() if project_dir else None
    packages = []
    for entry in data.get("packages") or ():
        pkg_name = entry.get("name", "")
        where = f"{name} package {pkg_name}"
        if entry.get("marker") and not evaluate_lock(
            parse_marker(entry["marker"], where),
            target,
            extras=wanted & declared,
            groups=groups,
            where=where,
        ):
            continue
        target.check_requires_python(entry.get("requires-python"), where)
        version = str(entry["version"]) if entry.get("version") else None
        if (vcs := entry.get("vcs")) is not None:
            url = vcs.get("url") or (base / vcs["path"]).resolve().as_uri()
            pkg = LockedPackage(
                pkg_name,
                version,
                source_kind="git",
                url=f"git+{url}@{vcs['commit-id']}",
                subdirectory=vcs.get("subdirectory"),
            )
        elif (directory := entry.get("directory")) is not None:
            path = (base / directory["path"]).resolve()
            if path == skip_dir or canonicalize_name(pkg_name) == project_name:
                continue  # the project itself goes in its own layer
            pkg = LockedPackage(
                pkg_name,
                version,
                source_kind="directory",
                path=path,
                subdirectory=directory.get("subdirectory"),
            )
        elif (archive := entry.get("archive")) is not None:
            file = _file(archive, base, where)
            pkg = LockedPackage(
                pkg_name,
                version,
                files=(file,),
                source_kind="url" if file.url else "path",
                url=file.url,
                path=file.path,
                subdirectory=archive.get("subdirectory"),
            )
        else:
            files = [_file(w, base, where) for w in entry.get("wheels") or ()]
            if entry.get("sdist"):
                files.append(_file(entry["sdist"], base, where))
            if not files:
                raise JibError(f"{where} names no source, wheel or sdist")
            local = all(f.url is None and f.path is not None for f in files)
            pkg = LockedPackage(
                pkg_name,
                version,
                files=tuple(files),
                source_kind="path" if local else "registry",
                index=entry.get("index"),
            )
        packages.append(pkg)
    return packages
