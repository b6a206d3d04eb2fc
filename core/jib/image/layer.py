"""Layers: a compressed blob and the digest of what it decompresses to.

A ``Layer`` is read-only and opened on demand, so an image can name a 500 MB base layer without
reading it: sources (registry, archives, the layer builder) each provide their own kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from jib.image.digest import Digest


@runtime_checkable
class Layer(Protocol):
    """What an image needs of a layer: its blob's digest, size and type, and its diff_id."""

    @property
    def digest(self) -> Digest:
        """Digest of the blob as stored and pushed (the compressed bytes)."""
        ...

    @property
    def diff_id(self) -> Digest:
        """Digest of the uncompressed tar, as the image config lists it."""
        ...

    @property
    def size(self) -> int: ...

    @property
    def media_type(self) -> str: ...

    def open(self) -> BinaryIO:
        """A new reader over the blob's bytes, from the start; the caller closes it."""
        ...


@dataclass(frozen=True)
class BlobLayer:
    """A layer whose digests are known, read through an opener (a file, an archive member...)."""

    digest: Digest
    diff_id: Digest
    size: int
    media_type: str
    opener: Callable[[], BinaryIO]

    def open(self) -> BinaryIO:
        return self.opener()


class LayerWrapper:
    """Base for a layer around ``self.layer``: same digests, size and type, same bytes, unless
    the subclass says otherwise. Wrappers keep the wrapped one as ``layer`` so code looking
    for where a layer came from (a cross-repository mount) can see through them."""

    layer: Layer

    @property
    def digest(self) -> Digest:
        return self.layer.digest

    @property
    def diff_id(self) -> Digest:
        return self.layer.diff_id

    @property
    def size(self) -> int:
        return self.layer.size

    @property
    def media_type(self) -> str:
        return self.layer.media_type

    def open(self) -> BinaryIO:
        return self.layer.open()


@dataclass(frozen=True)
class RetypedLayer(LayerWrapper):
    """Another layer under a different media type (the same bytes; OCI and Docker names differ)."""

    layer: Layer
    as_type: str

    @property
    def media_type(self) -> str:
        return self.as_type
