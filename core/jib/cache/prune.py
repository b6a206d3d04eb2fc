"""Keeping the cache under its size cap: least-recently-used entries go first.

What counts as an entry, and when it was last used:

- a built layer (``layers/<hex>.tar.gz``) together with every selector record that points at it:
  used when any of them was (``find_layer`` touches the selector on a hit);
- a pulled blob (``blobs/sha256/<hex>``): touched by ``fetch_blob`` on a hit;
- any other file under the root (base documents, wheels, scanned targets, project wheels): its
  own modification time.

Pruning deletes only while it holds the cache's lock exclusively, which no build holds while it
runs (each build holds it shared for its whole life, see ``Cache.in_use``): nothing another build
is writing or about to read is ever removed. That also makes every leftover temporary file (from
a build that was killed) safe to sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jib.cache.store import BUILD_ENV_MARKER, BUILD_ENVS
from jib.sizes import human

if TYPE_CHECKING:
    from jib.cache.store import Cache

log = logging.getLogger("jib.cache")

#: The cap when ``JIB_CACHE_MAX_SIZE`` is unset.
DEFAULT_MAX_SIZE = 5 * 10**9
MAX_SIZE_ENV = "JIB_CACHE_MAX_SIZE"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
#: Names of temporary files and directories the cache's writers leave only when killed.
_TEMP = re.compile(r"^\.(partial-layer-|scratch-|dl-)|^\..+\.tmp$")
#: Never deleted: lock files (another process may hold one) and the wheel staging dir itself.
_KEEP_DIRS = {"locks"}


def parse_size(text: str) -> int:
    """``"5GB"``, ``"500 MB"``, ``"1.5GiB"``, ``"1024"`` (bytes) as a number of bytes."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (write e.g. 5GB, 500MB, 2GiB or a byte count)")
    return int(float(match.group(1)) * _UNITS[unit])


def max_size_from(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    value = env.get(MAX_SIZE_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_SIZE
    try:
        return parse_size(value)
    except ValueError as err:
        from jib.errors import JibError

        raise JibError(f"{MAX_SIZE_ENV}: {err}") from None


@dataclass
class Entry:
    """Files removed together; ``used`` is the newest mtime among them (ns)."""

    paths: list[Path]
    size: int
    used: int


@dataclass
class PruneResult:
    size_before: int = 0
    size_after: int = 0
    removed: int = 0
    freed: int = 0
    temp_removed: int = 0
    skipped: bool = False
    removed_paths: list[Path] = field(default_factory=list)


def entries(root: Path) -> list[Entry]:
    """Every entry of the cache at ``root`` (temporary files excluded)."""
    found: list[Entry] = []
    layers: dict[str, Entry] = {}
    for path in _files(root / "layers"):
        st = path.stat()
        layers[path.name] = Entry([path], st.st_size, st.st_mtime_ns)
    for path in _files(root / "selectors"):
        st = path.stat()
        owner = layers.get(_selector_target(path) or "")
        if owner is None:
            # A selector whose layer is gone is useless: prune it first.
            found.append(Entry([path], st.st_size, 0))
            continue
        owner.paths.insert(0, path)  # selectors go before the file they name
        owner.size += st.st_size
        owner.used = max(owner.used, st.st_mtime_ns)
    found += layers.values()
    found += _build_envs(root / BUILD_ENVS)
    for top in sorted(root.iterdir()) if root.is_dir() else ():
        if top.name in _KEEP_DIRS or top.name in ("layers", "selectors", "tmp", BUILD_ENVS):
            continue
        for path in _files(top) if top.is_dir() else [top]:
            st = path.stat()
            found.append(Entry([path], st.st_size, st.st_mtime_ns))
    return found


def _build_envs(top: Path) -> list[Entry]:
    """Each build environment (``jib.python.buildenv``) is one entry: it goes whole or not at
    all, with its lock file; last used when it was last made or extended."""
    found: list[Entry] = []
    for env in sorted(top.iterdir()) if top.is_dir() else ():
        if not env.is_dir() or _TEMP.match(env.name):
            continue
        size = sum(path.stat().st_size for path in _files(env) if not path.is_symlink())
        marker = env / BUILD_ENV_MARKER
        used = marker.stat().st_mtime_ns if marker.is_file() else 0
        found.append(Entry([env, top / f"{env.name}.lock"], size, used))
    return found


def total_size(root: Path) -> int:
    return sum(entry.size for entry in entries(root))


def prune(
    cache: Cache, max_size: int, *, everything: bool = False, wait: bool = True
) -> PruneResult:
    """Remove least-recently-used entries until the cache holds at most ``max_size`` bytes
    (all of them with ``everything``). With ``wait=False`` it gives up at once, returning a
    result with ``skipped`` set, if a build is using the cache."""
    with cache.exclusive(wait=wait) as held:
        if not held:
            return PruneResult(skipped=True)
        result = PruneResult(temp_removed=sweep_temporary(cache.root))
        found = sorted(entries(cache.root), key=lambda e: e.used)
        result.size_before = result.size_after = sum(e.size for e in found)
        for entry in found:
            if not everything and result.size_after <= max_size:
                break
            for path in entry.paths:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                result.removed_paths.append(path)
            result.removed += 1
            result.freed += entry.size
            result.size_after -= entry.size
        _remove_empty_dirs(cache.root)
    if result.removed:
        log.info(
            "cache: removed %d least-recently-used entries (%s), %s left in %s",
            result.removed,
            human(result.freed),
            human(result.size_after),
            cache.root,
        )
    return result


def sweep_temporary(root: Path) -> int:
    """Delete what killed builds left half-written. Only call with the lock held exclusively."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath).name in _KEEP_DIRS:
            dirnames[:] = []
            continue
        in_tmp = Path(dirpath).name == "tmp"
        for name in [d for d in dirnames if in_tmp or _TEMP.match(d)]:
            shutil.rmtree(Path(dirpath, name), ignore_errors=True)
            dirnames.remove(name)
            count += 1
        for name in filenames:
            if in_tmp or _TEMP.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(Path(dirpath, name))
                count += 1
    return count


def _files(top: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != "tmp" and not _TEMP.match(d)]
        for name in filenames:
            if not _TEMP.match(name):
                yield Path(dirpath, name)


def _selector_target(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_bytes())["file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_empty_dirs(root: Path) -> None:
    # The wheel store nests one directory per digest (wheels/sha256/<hex>/): drop those left
    # empty; the shallower ones are where writers expect to find them.
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        path = Path(dirpath)
        if len(path.relative_to(root).parts) >= 3:
            with contextlib.suppress(OSError):
                path.rmdir()
