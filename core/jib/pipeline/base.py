"""Base images: found for each target platform, from a registry or from disk.

A base from a registry is read lazily: its manifest and config are fetched, its layers are not.
A push to the registry the base lives in mounts or skips them without a byte downloaded; only an
output that needs the bytes (a tarball, a docker load, another registry) downloads them, once,
into the cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import jib
from jib.cache import Cache
from jib.errors import JibError
from jib.image import mediatypes
from jib.image.descriptor import Platform
from jib.image.digest import VerifyingReader
from jib.image.image import Image
from jib.image.layer import Layer, LayerWrapper
from jib.image.reference import Reference
from jib.layers import BuiltLayer, compress_tar
from jib.local import is_local, read_local
from jib.registry.client import Registries
from jib.registry.credentials import Keychain
from jib.registry.pull import RegistryLayer

_UNCOMPRESSED = frozenset({mediatypes.OCI_LAYER, mediatypes.DOCKER_LAYER})


@dataclass(frozen=True)
class CachedLayer(LayerWrapper):
    """A registry layer whose bytes are downloaded into the cache the first time they're read."""

    layer: RegistryLayer
    cache: Cache

    @property
    def source(self) -> tuple[str, str]:
        return self.layer.source

    def open(self) -> BinaryIO:
        layer = self.layer
        path = self.cache.fetch_blob(
            layer.digest,
            layer.size,
            lambda dest: layer.client.download_blob(layer.repository, layer.descriptor, dest),
        )
        # Verified again as read: a cache file damaged since its download must not be used.
        reader = VerifyingReader(path.open("rb"), layer.digest, layer.size, f"cached {path.name}")
        return reader  # type: ignore[return-value]


def resolve_bases(
    spec: str,
    platforms: Sequence[Platform],
    *,
    registries: Registries,
    keychain: Keychain,
    cache: Cache,
    project_dir: Path,
) -> list[Image]:
    """The base image for each of ``platforms``, in order."""
    if is_local(spec):
        return [_compressed(_local(spec, platform, project_dir), cache) for platform in platforms]
    ref = Reference.parse(spec)
    client = registries.get(ref.registry, keychain)

    def pull(platform: Platform) -> Image:
        image = client.pull_image(ref, platform)
        layers = tuple(
            CachedLayer(layer, cache) if isinstance(layer, RegistryLayer) else layer
            for layer in image.layers
        )
        return dataclasses.replace(image, layers=layers)

    if len(platforms) == 1:
        return [pull(platforms[0])]
    with ThreadPoolExecutor(min(4, len(platforms)), "pyjib-base") as pool:
        return list(pool.map(pull, platforms))


def _compressed(image: Image, cache: Cache) -> Image:
    """``image`` with its uncompressed layers (``docker save`` writes them so) gzipped once,
    into the cache, as Jib does: pushes and tarballs then carry a third of the bytes."""
    if not any(layer.media_type in _UNCOMPRESSED for layer in image.layers):
        return image
    layers = []
    for layer in image.layers:
        if layer.media_type not in _UNCOMPRESSED:
            layers.append(layer)
            continue

        def compress(out: Path, layer: Layer = layer) -> BuiltLayer:
            with layer.open() as stream:
                return compress_tar(stream, out)

        built, _ = cache.layer(f"gzip:{jib.__version__}:{layer.diff_id}", compress)
        if built.diff_id != layer.diff_id:
            raise JibError(f"base layer {layer.diff_id} changed while it was compressed")
        layers.append(built)
    return Image.build(
        image.config, layers, media_type=image.media_type, raw_config=image.raw_config
    )


def _local(spec: str, platform: Platform, project_dir: Path) -> Image:
    image = read_local(spec, platform, base_dir=project_dir)
    if not image.platform.satisfies(platform):
        raise JibError(
            f"the base image {spec} is for {image.platform}, not {platform}: use a base for "
            f"{platform} or set [tool.jib.from] platforms to {image.platform}"
        )
    return image
