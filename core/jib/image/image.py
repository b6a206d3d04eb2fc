"""``Image``: one platform's manifest, config and layers, with the exact bytes that name it.

An image read from a source keeps its manifest and config bytes as they came, so its digest is the
one the source knows it by. An image made or changed by pyjib gets canonical JSON, so the same
inputs always give the same digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jib.errors import ImageFormatError
from jib.image import mediatypes
from jib.image.config import ImageConfig
from jib.image.descriptor import Descriptor, Platform
from jib.image.digest import Digest
from jib.image.layer import Layer, RetypedLayer
from jib.image.manifest import Manifest, descriptor_of, parse_manifest


@dataclass(frozen=True)
class Image:
    raw_manifest: bytes
    manifest: Manifest
    raw_config: bytes
    config: ImageConfig
    layers: tuple[Layer, ...]

    @classmethod
    def from_raw(
        cls,
        raw_manifest: bytes,
        raw_config: bytes,
        layers: Sequence[Layer],
        *,
        content_type: str | None = None,
        name: str = "image",
    ) -> Image:
        """An image from the bytes a source holds, checked for consistency."""
        manifest = parse_manifest(raw_manifest, content_type, f"{name} manifest")
        manifest.config.digest.verify(raw_config, f"{name} config")
        config = ImageConfig.parse(raw_config, f"{name} config")
        image = cls(raw_manifest, manifest, raw_config, config, tuple(layers))
        image.check(name)
        return image

    @classmethod
    def build(
        cls,
        config: ImageConfig,
        layers: Sequence[Layer],
        *,
        media_type: str = mediatypes.OCI_MANIFEST,
        annotations: Mapping[str, str] | None = None,
        raw_config: bytes | None = None,
    ) -> Image:
        """A new image from a config and layers, its manifest serialized canonically.

        ``raw_config`` keeps a source's config bytes (and so its image ID) when only the
        manifest is new, as for a docker-archive, which has none of its own.
        """
        fmt = "docker" if media_type == mediatypes.DOCKER_MANIFEST else "oci"
        if raw_config is None:
            raw_config = config.to_bytes()
        # Layers take the manifest's family of media types, so descriptor and layer agree.
        layers = tuple(
            layer
            if layer.media_type == mediatypes.to_format(layer.media_type, fmt)
            else RetypedLayer(layer, mediatypes.to_format(layer.media_type, fmt))
            for layer in layers
        )
        manifest = Manifest(
            media_type=media_type,
            config=descriptor_of(raw_config, mediatypes.to_format(mediatypes.OCI_CONFIG, fmt)),
            layers=tuple(
                Descriptor(layer.media_type, layer.digest, layer.size) for layer in layers
            ),
            # Docker schema2 has no annotations; OCI keeps them.
            annotations=(annotations or {}) if fmt == "oci" else {},
        )
        image = cls(manifest.to_bytes(), manifest, raw_config, config, tuple(layers))
        image.check("image")
        return image

    def check(self, name: str) -> None:
        """Raise if manifest, config and layers disagree (a corrupt or hand-edited source)."""
        diff_ids = self.config.diff_ids
        counts = {len(self.manifest.layers), len(diff_ids), len(self.layers)}
        if len(counts) != 1:
            raise ImageFormatError(
                f"{name} is inconsistent: {len(self.manifest.layers)} layers in the manifest, "
                f"{len(diff_ids)} diff_ids in the config"
            )
        for descriptor, layer, diff_id in zip(
            self.manifest.layers, self.layers, diff_ids, strict=True
        ):
            if descriptor.digest != layer.digest:
                raise ImageFormatError(
                    f"{name}: layer {descriptor.digest} does not match its blob {layer.digest}"
                )
            if diff_id != layer.diff_id:
                raise ImageFormatError(
                    f"{name}: the config lists diff_id {diff_id} where the layer has "
                    f"{layer.diff_id}"
                )

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.raw_manifest)

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def format(self) -> str:
        """``"docker"`` for Docker schema2, else ``"oci"``."""
        return "docker" if self.media_type == mediatypes.DOCKER_MANIFEST else "oci"

    @property
    def config_digest(self) -> Digest:
        """The image ID, as Docker and Podman show it."""
        return self.manifest.config.digest

    @property
    def platform(self) -> Platform:
        return self.config.platform

    def descriptor(self, *, with_platform: bool = False, **extra: object) -> Descriptor:
        """The descriptor an index or ``index.json`` uses to point at this image."""
        platform = self.platform if with_platform else None
        return descriptor_of(self.raw_manifest, self.media_type, platform=platform, **extra)

    def __repr__(self) -> str:
        return f"Image({self.digest}, {self.platform}, {len(self.layers)} layers)"
