"""Small in-memory layers for tests that need real tar and gzip bytes but no layer builder."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping

from jib.image import mediatypes
from jib.image.digest import Digest
from jib.image.layer import BlobLayer


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """A PAX tar of ``files`` (path -> content), in path order, mtimes 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def memory_layer(
    files: Mapping[str, bytes], media_type: str = mediatypes.OCI_LAYER_GZIP
) -> BlobLayer:
    """A layer of ``files``: gzipped for a gzip media type, else the plain tar."""
    raw = tar_bytes(files)
    blob = gzip.compress(raw, mtime=0) if mediatypes.is_gzip_layer(media_type) else raw
    return BlobLayer(
        Digest.of_bytes(blob), Digest.of_bytes(raw), len(blob), media_type, lambda: io.BytesIO(blob)
    )
