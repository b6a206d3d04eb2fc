"""``ImageIndex``: several platform images under one name (an OCI index or a manifest list)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jib.image import mediatypes
from jib.image.descriptor import Descriptor, Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.manifest import Index, descriptor_of


@dataclass(frozen=True)
class ImageIndex:
    raw_manifest: bytes
    manifest: Index
    images: tuple[Image, ...]

    @classmethod
    def build(
        cls,
        images: Sequence[Image],
        *,
        media_type: str = mediatypes.OCI_INDEX,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageIndex:
        """An index of ``images``, each entry carrying its platform, serialized canonically."""
        index = Index(
            media_type,
            tuple(image.descriptor(with_platform=True) for image in images),
            # A Docker manifest list has no annotations.
            annotations=(annotations or {}) if media_type == mediatypes.OCI_INDEX else {},
        )
        return cls(index.to_bytes(), index, tuple(images))

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.raw_manifest)

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return tuple(image.platform for image in self.images)

    def descriptor(self, **extra: object) -> Descriptor:
        return descriptor_of(self.raw_manifest, self.media_type, **extra)

    def image_for(self, platform: Platform) -> Image | None:
        return next((i for i in self.images if i.platform.satisfies(platform)), None)
