"""Reading ``docker save`` archives: ``manifest.json`` naming a config and layer files.

A docker-archive has no manifest of its own, so one is made here (Docker schema2, canonical).
Layers may be plain tars (classic ``docker save``), gzip (Jib's tars, Docker 25+ blobs) or zstd;
each is told by its first bytes, not its name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jib.errors import ImageFormatError, JibError
from jib.image import mediatypes
from jib.image.config import ImageConfig
from jib.image.descriptor import Platform
from jib.image.digest import Digest, verified_opener
from jib.image.image import Image
from jib.image.layer import BlobLayer, Layer
from jib.local.files import Files, read_document

MANIFEST_FILE = "manifest.json"
_BLOB_NAME = re.compile(r"(?:^|/)blobs/sha256/([0-9a-f]{64})$")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def read_image(files: Files, platform: Platform | None = None) -> Image:
    what = files.description
    try:
        entries = json.loads(read_document(files, MANIFEST_FILE))
    except ValueError as err:
        raise ImageFormatError(f"{what}: manifest.json is not valid JSON ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise ImageFormatError(f"{what}: manifest.json lists no image")
    configs = [_config(files, entry, what) for entry in entries]
    index = _choose(entries, configs, platform, what)
    entry, (raw_config, config) = entries[index], configs[index]
    paths = entry.get("Layers") or []
    if len(paths) != len(config.diff_ids):
        raise ImageFormatError(
            f"{what} is inconsistent: {len(paths)} layer files, {len(config.diff_ids)} diff_ids"
        )
    layers = [
        _layer(files, path, diff_id, what)
        for path, diff_id in zip(paths, config.diff_ids, strict=True)
    ]
    fmt = (
        "oci"
        if any(layer.media_type == mediatypes.OCI_LAYER_ZSTD for layer in layers)
        else ("docker")
    )
    return Image.build(
        config,
        layers,
        media_type=mediatypes.to_format(mediatypes.OCI_MANIFEST, fmt),
        raw_config=raw_config,
    )


def _config(files: Files, entry: Any, what: str) -> tuple[bytes, ImageConfig]:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("Config"), str):
        raise ImageFormatError(f"{what}: a manifest.json entry has no Config")
    raw = read_document(files, entry["Config"])
    return raw, ImageConfig.parse(raw, f"{what} config {entry['Config']}")


def _choose(
    entries: list[Any],
    configs: list[tuple[bytes, ImageConfig]],
    platform: Platform | None,
    what: str,
) -> int:
    if len(entries) == 1:
        return 0
    wanted = platform or Platform.host()
    for i, (_, config) in enumerate(configs):
        if config.platform.satisfies(wanted):
            return i
    names = ", ".join(", ".join(e.get("RepoTags") or ["<untagged>"]) for e in entries)
    raise JibError(
        f"{what} holds several images ({names}) and none for {wanted}; "
        "keep only the one to build on"
    )


def _layer(files: Files, path: Any, diff_id: Digest, what: str) -> Layer:
    if not isinstance(path, str) or not files.exists(path):
        raise ImageFormatError(f"{what} lacks the layer file {path}")
    opener = files.opener(path)
    size = files.size(path)
    with opener() as stream:
        magic = stream.read(4)
    if not magic.startswith(_GZIP_MAGIC) and magic != _ZSTD_MAGIC:
        # An uncompressed layer is its own diff: digest and diff_id are the same.
        return BlobLayer(
            diff_id,
            diff_id,
            size,
            mediatypes.OCI_LAYER,
            verified_opener(opener, diff_id, size, f"{what} layer {diff_id}"),
        )
    media_type = (
        mediatypes.OCI_LAYER_GZIP if magic.startswith(_GZIP_MAGIC) else (mediatypes.OCI_LAYER_ZSTD)
    )
    named = _BLOB_NAME.search(path)
    if named:
        digest = Digest("sha256", named.group(1))
        return BlobLayer(
            digest,
            diff_id,
            size,
            media_type,
            verified_opener(opener, digest, size, f"{what} layer {digest}"),
        )
    # Compressed and not named by digest (Jib's <hex>.tar.gz): the digest costs one read.
    with opener() as stream:
        digest, _ = Digest.of_stream(stream)
    return BlobLayer(digest, diff_id, size, media_type, opener)
