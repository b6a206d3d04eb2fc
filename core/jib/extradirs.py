"""``[[tool.jib.extra-directories]]``: one layer per directory, files chosen by glob.

The selector is built from what the files are on disk (path, size, mtime, mode, link target)
rather than their contents, so a warm build notices a change with one ``stat`` per file and
costs nothing when none changed, as Jib's cache does for class files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from functools import partial
from pathlib import Path, PurePosixPath

from jib.config.settings import ExtraDirectory
from jib.errors import JibError
from jib.layers import EntryKind, LayerEntry, entries_from_tree
from jib.plan import LayerPlan

SELECTOR_FORMAT = 1


def extra_directory_plans(dirs: tuple[ExtraDirectory, ...], mtime: int) -> list[LayerPlan]:
    plans = []
    for extra in dirs:
        files = _chosen(extra)
        if not files:
            continue
        plans.append(
            LayerPlan(
                f"extra files {extra.into}",
                _selector(extra, files, mtime),
                partial(_entries, extra, frozenset(files), mtime),
            )
        )
    return plans


def _chosen(extra: ExtraDirectory) -> list[str]:
    """The files and links under ``extra.from_`` that its includes and excludes select."""
    chosen = []
    for dirpath, dirnames, filenames in os.walk(extra.from_):
        dirnames.sort()
        base = Path(dirpath)
        names = filenames + [d for d in dirnames if (base / d).is_symlink()]
        for name in sorted(names):
            rel = (base / name).relative_to(extra.from_).as_posix()
            if _selected(rel, extra):
                chosen.append(rel)
    return chosen


def _selected(rel: str, extra: ExtraDirectory) -> bool:
    included = not extra.includes or any(_match(rel, g) for g in extra.includes)
    return included and not any(_match(rel, g) for g in extra.excludes)


def _match(rel: str, pattern: str) -> bool:
    # "**/*" must match top-level files too, as users of Jib's and Gradle's globs expect.
    return (
        PurePosixPath(rel).match(pattern)
        or fnmatch.fnmatchcase(rel, pattern)
        or (pattern.startswith("**/") and _match(rel, pattern[3:]))
    )


def _selector(extra: ExtraDirectory, files: list[str], mtime: int) -> str:
    stats = []
    for rel in files:
        path = extra.from_ / rel
        try:
            st = path.lstat()
        except OSError as exc:
            raise JibError(f"cannot read {path}: {exc.strerror or exc}") from None
        link = os.readlink(path) if path.is_symlink() else None
        stats.append([rel, st.st_size, st.st_mtime_ns, st.st_mode, link])
    parts = {
        "format": SELECTOR_FORMAT,
        "into": extra.into,
        "permissions": sorted(extra.permissions.items()),
        "mtime": mtime,
        "files": stats,
    }
    return (
        "extra-directory:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    )


def _entries(
    extra: ExtraDirectory, files: frozenset[str], mtime: int, scratch: Path
) -> list[LayerEntry]:
    def mode_for(target: str, kind: EntryKind) -> int | None:
        for pattern, mode in extra.permissions.items():
            if fnmatch.fnmatchcase(target, pattern):
                return mode
        return None

    into = extra.into.rstrip("/")
    wanted = {f"{into}/{rel}" for rel in files}
    entries = entries_from_tree(extra.from_, extra.into, mode_for=mode_for, mtime=mtime)
    # Directories are kept only where a chosen file needs them; the builder adds parents.
    return [e for e in entries if e.path in wanted]
