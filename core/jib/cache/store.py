"""The on-disk cache: layer blobs by digest, built layers by the selector of their inputs.

Layout under the cache root (``JIB_CACHE_DIR``, default the user cache dir + ``pyjib``)::

    blobs/sha256/<hex>            base-image blobs pulled from registries
    layers/<hex>.tar.gz           layers pyjib built
    selectors/<sha256>.json       selector -> the layer it built (digest, diff_id, sizes, stat)
    documents/<sha256>.json       small JSON documents (base manifests/configs by reference)
    locks/                        flock files, so concurrent builds never write one entry twice
    build-envs/<key>/             build environments (jib.python.buildenv), each pruned whole;
                                  ``pyjib-build-env.json`` in one marks it complete
    (and wheels/, python-targets/, project-wheels/, uv-exports/, written by the Python planner)

Every write is atomic (temp file + rename), so readers need no lock and a crash leaves no torn
entry. Entries are checked before use: a selector whose layer file changed since it was written
(size or mtime, as after a hand truncation) is re-hashed, and dropped with a warning if the hash
no longer matches; a pulled blob is verified as it is downloaded and as it is read.

The cache has a size cap (``JIB_CACHE_MAX_SIZE``, default 5 GB), kept by deleting the
least-recently-used entries (``prune.py``): each build holds ``in_use()`` (a shared lock) while
it runs, and pruning happens only under the exclusive lock, so it never pulls an entry from
under a running build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from jib import atomic
from jib.errors import JibError
from jib.image.digest import Digest
from jib.layers.builder import BuiltLayer

#: Where build environments live, and the file that marks one complete (see the layout above).
BUILD_ENVS = "build-envs"
BUILD_ENV_MARKER = "pyjib-build-env.json"

log = logging.getLogger("jib.cache")

#: Bump when the meaning of a selector or the cache layout changes: old entries are then ignored.
CACHE_FORMAT = "1"


@dataclass(frozen=True)
class Stat:
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Stat:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns)


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            for sub in ("blobs/sha256", "layers", "selectors", "documents", "locks"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JibError(
                f"cannot create the pyjib cache in {root} ({err.strerror or err}); "
                "set JIB_CACHE_DIR to a writable directory"
            ) from None

    # -- locking -------------------------------------------------------------------------------

    @property
    def _use_lock(self) -> Path:
        return self.root / "locks" / "cache-in-use.lock"

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Held (shared) by a build for its whole life: pruning waits for, or skips, it."""
        with self._use_lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[bool]:
        """The whole cache to oneself (no build running); yields False at once if ``wait`` is
        False and a build holds ``in_use()``. Never take it while holding ``in_use()``."""
        with self._use_lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold an exclusive lock on ``name`` across processes (builds sharing the cache)."""
        path = self.root / "locks" / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock")
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- built layers --------------------------------------------------------------------------

    @property
    def layers_dir(self) -> Path:
        return self.root / "layers"

    def _selector_path(self, selector: str) -> Path:
        key = hashlib.sha256(f"{CACHE_FORMAT}\0{selector}".encode()).hexdigest()
        return self.root / "selectors" / f"{key}.json"

    def find_layer(self, selector: str) -> BuiltLayer | None:
        """The layer built from ``selector``'s inputs, if cached and intact."""
        path = self._selector_path(selector)
        try:
            record = json.loads(path.read_bytes())
            layer = BuiltLayer(
                path=self.layers_dir / record["file"],
                digest=Digest.parse(record["digest"]),
                diff_id=Digest.parse(record["diff_id"]),
                size=int(record["size"]),
                uncompressed_size=int(record["uncompressed_size"]),
                media_type=record["media_type"],
            )
            stat = Stat(**record["stat"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("dropping a corrupt cache entry %s (%s)", path.name, err)
            _unlink(path)
            return None
        if not self._intact(layer, stat):
            _unlink(path)
            return None
        _touch(path)
        return layer

    def _intact(self, layer: BuiltLayer, stat: Stat) -> bool:
        try:
            now = Stat.of(layer.path)
        except OSError:
            log.warning("cached layer %s is missing; rebuilding it", layer.digest)
            return False
        if now == stat:
            return True
        # The file changed since it was cached: only its content can say whether it still fits.
        with layer.path.open("rb") as stream:
            digest, size = Digest.of_stream(stream)
        if digest != layer.digest or size != layer.size:
            log.warning("cached layer %s is corrupt (%s); rebuilding it", layer.digest, digest)
            _unlink(layer.path)
            return False
        return True

    def put_layer(self, selector: str, layer: BuiltLayer) -> BuiltLayer:
        """Remember that ``selector`` built ``layer`` (which lives in ``layers_dir``)."""
        record = {
            "file": layer.path.name,
            "digest": str(layer.digest),
            "diff_id": str(layer.diff_id),
            "size": layer.size,
            "uncompressed_size": layer.uncompressed_size,
            "media_type": layer.media_type,
            "stat": Stat.of(layer.path).__dict__,
            "selector": selector[:2000],
        }
        atomic.write_bytes(self._selector_path(selector), json.dumps(record).encode())
        return layer

    def layer(self, selector: str, build: Callable[[Path], BuiltLayer]) -> tuple[BuiltLayer, bool]:
        """The cached layer for ``selector``, or ``build(layers_dir)``'s, cached; and whether it
        was a hit. Concurrent builds of the same selector build it once."""
        hit = self.find_layer(selector)
        if hit is not None:
            return hit, True
        with self.locked(f"selector:{selector}"):
            hit = self.find_layer(selector)
            if hit is not None:
                return hit, True
            return self.put_layer(selector, build(self.layers_dir)), False

    # -- pulled blobs --------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest, size: int) -> bool:
        try:
            return self.blob_path(digest).stat().st_size == size
        except OSError:
            return False

    def fetch_blob(self, digest: Digest, size: int, download: Callable[[Path], None]) -> Path:
        """The cached blob ``digest``, downloaded once with ``download(dest)`` if absent.

        ``download`` must write ``dest`` atomically and verify the digest (the registry client's
        ``download_blob`` does); several builds wanting the same blob download it once.
        """
        path = self.blob_path(digest)
        if self.has_blob(digest, size):
            _touch(path)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.locked(f"blob:{digest}"):
            if not self.has_blob(digest, size):
                download(path)
        return path

    def open_blob(self, digest: Digest) -> BinaryIO:
        return self.blob_path(digest).open("rb")

    # -- small documents -----------------------------------------------------------------------

    def _document_path(self, key: str) -> Path:
        return self.root / "documents" / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def get_document(self, key: str) -> Any | None:
        path = self._document_path(key)
        try:
            value = json.loads(path.read_bytes())
            _touch(path)
            return value
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("dropping a corrupt cache entry %s (%s)", path.name, err)
            _unlink(path)
            return None

    def put_document(self, key: str, value: Any) -> None:
        atomic.write_bytes(self._document_path(key), json.dumps(value).encode())


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _touch(path: Path) -> None:
    """Mark an entry used, for least-recently-used pruning."""
    with contextlib.suppress(OSError):
        os.utime(path)
