"""Images on disk: ``tar://PATH`` archives and ``oci://DIR`` layouts, read and written."""

from __future__ import annotations

from pathlib import Path

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.image.image import Image
from jib.local import ocilayout, tarball

TAR_SCHEME = "tar://"
OCI_SCHEME = "oci://"


def is_local(spec: str) -> bool:
    """Whether a base-image setting names a local image rather than a registry reference."""
    return spec.startswith((TAR_SCHEME, OCI_SCHEME))


def read_local(spec: str, platform: Platform | None = None, base_dir: Path | None = None) -> Image:
    """The image named by ``tar://PATH`` or ``oci://DIR``; relative paths start at ``base_dir``."""
    scheme = TAR_SCHEME if spec.startswith(TAR_SCHEME) else OCI_SCHEME
    if not is_local(spec) or not spec[len(scheme) :]:
        raise JibError(f"invalid local image {spec!r}: use tar://PATH or oci://DIR")
    path = Path(spec[len(scheme) :]).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if scheme == TAR_SCHEME:
        return tarball.read_image(path, platform)
    return ocilayout.read_directory(path, platform)
