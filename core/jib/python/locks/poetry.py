"""``poetry.lock`` (lock-version 2.1, Poetry >= 2.0), read as TOML (packaging notes §2.3).

Lock 2.1 records each package's groups and its resolved marker (a string, or a table per group),
so selecting for the target is: keep packages in a wanted group whose marker holds for the
target environment with the asked extras. The lock has file names and hashes but no URLs;
``wheels`` finds those on the package's index. (Inside Poetry, the plugin may instead build
``LockedPackage``s through Poetry's API and call ``LockSet.from_packages``.)
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from jib.errors import JibError
from jib.python.locks._toml import load_toml
from jib.python.locks.model import LockedFile, LockedPackage, split_hash
from jib.python.markers import evaluate
from jib.python.target import TargetPython


def _selected(
    entry: dict[str, Any],
    target: TargetPython,
    extras: Collection[str],
    groups: Collection[str],
    where: str,
) -> bool:
    package_groups = set(entry.get("groups") or ["main"])
    wanted = package_groups & set(groups)
    if not wanted:
        return False
    markers = entry.get("markers")
    if isinstance(markers, dict):
        # One marker per group: needed if needed by any selected group. A group without an
        # entry has no restriction.
        return any(evaluate(markers.get(g), target, extras=extras, where=where) for g in wanted)
    return evaluate(markers, target, extras=extras, where=where)


def _files(entry: dict[str, Any], lock_dir: Path, where: str) -> tuple[LockedFile, ...]:
    source = entry.get("source") or {}
    out = []
    for item in entry.get("files") or ():
        try:
            algo, value = split_hash(item["hash"])
            filename = item["file"]
        except (KeyError, TypeError):
            raise JibError(f"{where} has a malformed files entry {item!r}") from None
        url = source.get("url") if source.get("type") == "url" else None
        path = (lock_dir / source["url"]).resolve() if source.get("type") == "file" else None
        out.append(LockedFile(url=url, filename=filename, hashes={algo: value}, path=path))
    return tuple(out)


def read_poetry_lock(
    lock_path: Path,
    *,
    target: TargetPython,
    extras: Collection[str] = (),
    groups: Collection[str] = ("main",),
) -> list[LockedPackage]:
    data = load_toml(lock_path, lock_path.name)
    version = str((data.get("metadata") or {}).get("lock-version", "1.0"))
    try:
        too_old = Version(version) < Version("2.1")
    except InvalidVersion:
        too_old = True
    if too_old:
        raise JibError(
            f"{lock_path.name} is lock-version {version}, which does not record each package's "
            "groups and markers; run `poetry lock` with Poetry 2 to update it"
        )
    lock_dir = lock_path.parent
    declared_extras = set((data.get("extras") or {}).keys())
    unknown = {e for e in extras if e not in declared_extras}
    if unknown:
        raise JibError(
            f"{lock_path.name} has no extra {', '.join(sorted(unknown))} (it has: "
            f"{', '.join(sorted(declared_extras)) or 'none'}); check the extras asked for"
        )
    packages = []
    for entry in data.get("package") or ():
        name = entry.get("name")
        where = f"{lock_path.name} package {name}"
        if not name or not _selected(entry, target, extras, groups, where):
            continue
        source = entry.get("source") or {}
        kind = source.get("type")
        common: dict[str, Any] = {
            "name": name,
            "version": str(entry.get("version")) if entry.get("version") else None,
            "files": _files(entry, lock_dir, where),
            "subdirectory": source.get("subdirectory"),
        }
        if kind in (None, "legacy"):
            # No source: Poetry's default (PyPI), or whatever index the user configured for pyjib.
            index = source.get("url") if kind == "legacy" else None
            packages.append(LockedPackage(**common, source_kind="registry", index=index))
        elif kind in ("directory", "file"):
            packages.append(
                LockedPackage(
                    **common,
                    source_kind="directory" if kind == "directory" else "path",
                    path=(lock_dir / source["url"]).resolve(),
                )
            )
        elif kind == "url":
            packages.append(LockedPackage(**common, source_kind="url", url=source["url"]))
        elif kind == "git":
            commit = source.get("resolved_reference") or source.get("reference") or ""
            url = f"git+{source['url']}@{commit}" if commit else f"git+{source['url']}"
            packages.append(LockedPackage(**common, source_kind="git", url=url))
        else:
            raise JibError(f"{where} has an unknown source type {kind!r}")
    return packages
