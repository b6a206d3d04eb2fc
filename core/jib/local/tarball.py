"""Image tarballs: read any of the three kinds, write the hybrid that every loader takes.

Reading accepts a docker-archive (``docker save``), an OCI archive (a tarred OCI layout), or the
hybrid of both, optionally gzip-compressed. Writing produces the hybrid of notes/oci.md §2.8:
``oci-layout``, ``index.json`` naming the image through ``io.containerd.image.name`` and
``org.opencontainers.image.ref.name``, ``blobs/sha256/*``, and a ``manifest.json`` whose
``RepoTags`` name it for ``docker load``'s classic store. Podman and containerd read the OCI side,
the classic Docker store the docker-archive side; skopeo reads either.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from jib import atomic
from jib.errors import ImageFormatError, JibError
from jib.image import canonical, mediatypes
from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.index import ImageIndex
from jib.image.manifest import Index
from jib.image.reference import Reference
from jib.local import dockerarchive, ocilayout
from jib.local.files import TarFiles

#: Every member of a written tarball gets these, so the same image gives the same bytes.
_MTIME = 0
_CHUNK = 1 << 20


def read_image(path: Path, platform: Platform | None = None, scratch: Path | None = None) -> Image:
    """The image in the tar at ``path`` (for ``platform``, if it holds several)."""
    files = TarFiles(path, scratch)
    if ocilayout.is_layout(files):
        return ocilayout.read_image(files, platform)
    if files.exists(dockerarchive.MANIFEST_FILE):
        return dockerarchive.read_image(files, platform)
    raise ImageFormatError(
        f"{path} is neither a docker-archive nor an OCI archive (no manifest.json or "
        "oci-layout inside); make it with `docker save`, `podman save` or `skopeo copy`"
    )


def write_image(path: Path, image: Image | ImageIndex, refs: Sequence[Reference]) -> None:
    """Write ``image`` (one platform, or an index of several) as a hybrid tarball at ``path``,
    named by each of ``refs`` (one at least).

    ``path`` appears only when complete; on any failure nothing is left behind.
    """
    if not refs:
        raise ValueError("an image tarball needs at least one reference to name the image")
    untagged = [ref for ref in refs if not ref.tag]
    if untagged:
        raise JibError(f"cannot name a tarball image by {untagged[0]}: give it a tag")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            atomic.atomic_file(path) as out,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            _write_members(tar, image, refs)
    except OSError as err:
        raise JibError(f"cannot write {path}: {err.strerror or err}") from None


def _write_members(
    tar: tarfile.TarFile, top: Image | ImageIndex, refs: Sequence[Reference]
) -> None:
    images = top.images if isinstance(top, ImageIndex) else (top,)
    _add_bytes(tar, ocilayout.LAYOUT_FILE, canonical.dumps(ocilayout.LAYOUT_VERSION))
    _add_directory(tar, "blobs")
    _add_directory(tar, "blobs/sha256")
    written: set[Digest] = set()
    for image in images:
        for layer in image.layers:
            if layer.digest in written:
                continue
            written.add(layer.digest)
            with layer.open() as stream:
                _add_stream(tar, ocilayout.blob_path(layer.digest), layer.size, stream)
        for raw in (image.raw_config, image.raw_manifest):
            digest = Digest.of_bytes(raw)
            if digest not in written:
                written.add(digest)
                _add_bytes(tar, ocilayout.blob_path(digest), raw)
    if isinstance(top, ImageIndex):
        _add_bytes(tar, ocilayout.blob_path(top.digest), top.raw_manifest)
    # One index entry only: skopeo and Podman refuse an oci-archive that lists several
    # ("more than one image in oci"), so the OCI side carries the first name and manifest.json
    # carries them all.
    entries = (top.descriptor(annotations=ocilayout.ref_annotations(refs[0])),)
    _add_bytes(tar, ocilayout.INDEX_FILE, Index(mediatypes.OCI_INDEX, entries).to_bytes())
    # docker load's classic store holds one platform per name: the host's, if the index has it.
    local = top.image_for(Platform.host()) if isinstance(top, ImageIndex) else top
    local = local or images[0]
    docker_manifest = [
        {
            "Config": ocilayout.blob_path(local.config_digest),
            "RepoTags": [str(ref.with_tag(ref.tag or "latest")) for ref in refs],
            "Layers": [ocilayout.blob_path(layer.digest) for layer in local.layers],
        }
    ]
    _add_bytes(tar, dockerarchive.MANIFEST_FILE, canonical.dumps(docker_manifest))


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = _MTIME
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_directory(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, directory=True))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_stream(tar: tarfile.TarFile, name: str, size: int, stream: BinaryIO) -> None:
    tar.addfile(_info(name, size), stream)
    # tarfile reads exactly ``size`` bytes; one more read lets a verifying reader check the end.
    if stream.read(1):
        raise ImageFormatError(f"blob {name} is larger than its descriptor says ({size} bytes)")
