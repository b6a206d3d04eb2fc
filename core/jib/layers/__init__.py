"""The reproducible layer builder: entries in, a gzipped layer blob and its digests out.

    entries = entries_from_tree("deploy/static", "/app/static")
    layer = build_layer(entries, cache_dir)    # BuiltLayer(path, digest, diff_id, size, ...)

Same entries, same pyjib version -> same bytes on any machine (see ``compress`` for why the
deflate encoder matters, and ``tar`` for the archive's rules).
"""

from jib.layers.builder import BuiltLayer, build_layer, compress_tar
from jib.layers.compress import DEFAULT_COMPRESSION, MEMBER_SIZE, Compression
from jib.layers.entries import (
    DIRECTORY_MODE,
    EPOCH_PLUS_SECOND,
    EXECUTABLE_MODE,
    FILE_MODE,
    EntryKind,
    LayerEntry,
    LayerPathError,
    entries_from_tree,
    normalize_target,
)
from jib.layers.tar import DuplicateEntryError, write_tar

__all__ = [
    "DEFAULT_COMPRESSION",
    "DIRECTORY_MODE",
    "EPOCH_PLUS_SECOND",
    "EXECUTABLE_MODE",
    "FILE_MODE",
    "MEMBER_SIZE",
    "BuiltLayer",
    "Compression",
    "DuplicateEntryError",
    "EntryKind",
    "LayerEntry",
    "LayerPathError",
    "build_layer",
    "compress_tar",
    "entries_from_tree",
    "normalize_target",
    "write_tar",
]
