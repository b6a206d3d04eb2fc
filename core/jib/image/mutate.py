"""Changes to an image, each returning a new ``Image`` (go-containerregistry's ``mutate``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jib.image import mediatypes
from jib.image.config import ImageConfig
from jib.image.image import Image
from jib.image.layer import Layer

History = Mapping[str, Any]


def append_layers(image: Image, additions: Sequence[tuple[Layer, History]]) -> Image:
    """``image`` with each layer stacked on top, its diff_id and history added to the config."""
    config = image.config
    for layer, history in additions:
        config = config.with_layer_added(layer.diff_id, history)
    return _rebuild(image, config=config, layers=(*image.layers, *(a[0] for a in additions)))


def with_config(image: Image, change: Callable[[ImageConfig], ImageConfig]) -> Image:
    """``image`` with its config replaced by ``change(config)``; layers must stay as they are."""
    config = change(image.config)
    if config.diff_ids != image.config.diff_ids:
        raise ValueError("with_config cannot change the layers; use append_layers")
    return _rebuild(image, config=config)


def with_annotations(image: Image, annotations: Mapping[str, str]) -> Image:
    """``image`` whose manifest carries ``annotations`` (merged over the ones it had).

    Only the manifest changes: the config keeps its bytes, so the image ID stays the same.
    """
    return _rebuild(
        image,
        annotations={**image.manifest.annotations, **annotations},
        raw_config=image.raw_config,
    )


def with_format(image: Image, fmt: str) -> Image:
    """``image`` in OCI (``"oci"``) or Docker schema2 (``"docker"``) media types throughout.

    The bytes of config and layers are the same in both families; only the names differ, so
    converting never touches a blob. Manifest annotations are OCI-only and dropped for Docker.
    """
    media_type = mediatypes.to_format(mediatypes.OCI_MANIFEST, fmt)
    if image.media_type == media_type:
        return image
    return Image.build(
        image.config,
        image.layers,
        media_type=media_type,
        annotations=image.manifest.annotations,
        raw_config=image.raw_config,
    )


def _rebuild(
    image: Image,
    *,
    config: ImageConfig | None = None,
    layers: Sequence[Layer] | None = None,
    annotations: Mapping[str, str] | None = None,
    raw_config: bytes | None = None,
) -> Image:
    return Image.build(
        config if config is not None else image.config,
        layers if layers is not None else image.layers,
        media_type=image.media_type,
        annotations=annotations if annotations is not None else image.manifest.annotations,
        raw_config=raw_config,
    )
