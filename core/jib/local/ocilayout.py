"""OCI image layouts (``oci-layout`` + ``index.json`` + ``blobs/``), read and written.

Reading works on any ``Files`` (a directory for ``oci://DIR``, a tar for an OCI archive or the
hybrid tarball). Blobs are verified against their digests as they are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jib import atomic
from jib.errors import ImageFormatError, JibError
from jib.image import canonical, mediatypes
from jib.image.config import ImageConfig
from jib.image.descriptor import Descriptor, Platform, select_platform
from jib.image.digest import Digest, verified_opener
from jib.image.image import Image
from jib.image.index import ImageIndex
from jib.image.layer import BlobLayer
from jib.image.manifest import Index, Manifest, parse
from jib.image.reference import Reference
from jib.local.files import DirectoryFiles, Files, read_document

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
INDEX_FILE = "index.json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def is_layout(files: Files) -> bool:
    return files.exists(LAYOUT_FILE) and files.exists(INDEX_FILE)


# -- reading -----------------------------------------------------------------------------------


def read_image(files: Files, platform: Platform | None = None) -> Image:
    """The image an OCI layout holds, for ``platform`` if it holds several."""
    what = files.description
    if not files.exists(LAYOUT_FILE):
        raise ImageFormatError(f"{what} is not an OCI image layout: it has no oci-layout file")
    index = parse(read_document(files, INDEX_FILE), mediatypes.OCI_INDEX, f"{what} index.json")
    if not isinstance(index, Index):
        raise ImageFormatError(f"{what}: index.json is not an image index")
    return _resolve(files, _choose(index.manifests, platform, what), platform, what)


def _read_blob(files: Files, descriptor: Descriptor, what: str) -> bytes:
    name = blob_path(descriptor.digest)
    if not files.exists(name):
        raise ImageFormatError(f"{what} lacks the blob {descriptor.digest}")
    raw = read_document(files, name)
    descriptor.digest.verify(raw, f"{what} blob {descriptor.digest}")
    return raw


def _choose(entries: Sequence[Descriptor], platform: Platform | None, what: str) -> Descriptor:
    if not entries:
        raise ImageFormatError(f"{what} holds no image (index.json lists none)")
    if len({e.digest for e in entries}) == 1:
        return entries[0]
    if all(e.platform is not None for e in entries):
        return select_platform(entries, platform or Platform.host(), what)
    names = ", ".join(e.annotations.get(REF_NAME, str(e.digest)) for e in entries)
    raise JibError(f"{what} holds several images ({names}); keep only the one to build on")


def _resolve(
    files: Files, descriptor: Descriptor, platform: Platform | None, what: str, depth: int = 0
) -> Image:
    raw = _read_blob(files, descriptor, what)
    document = parse(raw, descriptor.media_type, f"{what} manifest {descriptor.digest}")
    if isinstance(document, Index):
        if depth > 4:
            raise ImageFormatError(f"{what} nests image indexes too deeply")
        chosen = select_platform(document.manifests, platform or Platform.host(), what)
        return _resolve(files, chosen, platform, what, depth + 1)
    return _image(files, raw, document, descriptor.media_type, what)


def _image(files: Files, raw: bytes, manifest: Manifest, content_type: str, what: str) -> Image:
    raw_config = _read_blob(files, manifest.config, what)
    diff_ids = ImageConfig.parse(raw_config, f"{what} config").diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise ImageFormatError(
            f"{what} is inconsistent: {len(manifest.layers)} layers, {len(diff_ids)} diff_ids"
        )
    layers = []
    for descriptor, diff_id in zip(manifest.layers, diff_ids, strict=True):
        name = blob_path(descriptor.digest)
        if not files.exists(name):
            raise ImageFormatError(f"{what} lacks the layer blob {descriptor.digest}")
        layers.append(
            BlobLayer(
                digest=descriptor.digest,
                diff_id=diff_id,
                size=descriptor.size,
                media_type=descriptor.media_type,
                opener=verified_opener(
                    files.opener(name),
                    descriptor.digest,
                    descriptor.size,
                    f"{what} layer {descriptor.digest}",
                ),
            )
        )
    return Image.from_raw(raw, raw_config, layers, content_type=content_type, name=what)


def read_directory(root: Path, platform: Platform | None = None) -> Image:
    return read_image(DirectoryFiles(root), platform)


# -- writing -----------------------------------------------------------------------------------


def ref_annotations(ref: Reference) -> dict[str, str]:
    """How loaders name an image from an index entry: containerd and Podman read the full
    reference from ``io.containerd.image.name``; ``ref.name`` carries the tag, per the spec."""
    return {CONTAINERD_NAME: str(ref), REF_NAME: ref.tag or ref.identifier}


def write_directory(
    root: Path, image: Image | ImageIndex, ref: Reference | None = None
) -> Descriptor:
    """Add ``image`` (or an index and its images) to the OCI layout at ``root`` (created if
    absent); returns its entry in ``index.json``.

    Blobs already present are kept; an entry with the same name is replaced. Every file is
    written to a temporary name and renamed, so an interrupted write leaves the layout valid.
    """
    blobs = root / "blobs" / "sha256"
    images = image.images if isinstance(image, ImageIndex) else (image,)
    try:
        blobs.mkdir(parents=True, exist_ok=True)
        if not (root / LAYOUT_FILE).exists():
            atomic.write_bytes(root / LAYOUT_FILE, canonical.dumps(LAYOUT_VERSION))
        for one in images:
            for layer in one.layers:
                target = root / blob_path(layer.digest)
                if not (target.exists() and target.stat().st_size == layer.size):
                    with layer.open() as stream:
                        atomic.write_stream(target, stream)
            for raw in (one.raw_config, one.raw_manifest):
                _write_blob(root, raw)
        if isinstance(image, ImageIndex):
            _write_blob(root, image.raw_manifest)
        entry = image.descriptor(annotations=ref_annotations(ref) if ref else {})
        atomic.write_bytes(root / INDEX_FILE, _updated_index(root / INDEX_FILE, entry))
    except OSError as err:
        raise JibError(f"cannot write the OCI layout {root}: {err.strerror or err}") from None
    return entry


def _write_blob(root: Path, raw: bytes) -> None:
    target = root / blob_path(Digest.of_bytes(raw))
    if not target.exists():
        atomic.write_bytes(target, raw)


def _updated_index(path: Path, entry: Descriptor) -> bytes:
    kept: list[Descriptor] = []
    if path.exists():
        old = parse(path.read_bytes(), mediatypes.OCI_INDEX, f"{path}")
        if isinstance(old, Index):
            name = entry.annotations.get(CONTAINERD_NAME)
            kept = [
                d
                for d in old.manifests
                if d.digest != entry.digest
                and (name is None or d.annotations.get(CONTAINERD_NAME) != name)
            ]
    return Index(mediatypes.OCI_INDEX, (*kept, entry)).to_bytes()
