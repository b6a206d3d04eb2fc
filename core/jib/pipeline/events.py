"""What the pipeline tells whoever watches it (a progress display, the logs, a test).

The pipeline calls these from its worker threads, often several at once: implementations must be
thread-safe and quick (no I/O that can block a push). The base class ignores everything, so a
listener overrides only what it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from jib.image.digest import Digest
from jib.image.layer import Layer, LayerWrapper

if TYPE_CHECKING:
    from jib.pipeline.assemble import LayerOutcome


class BuildEvents:
    def layers_planned(self, names: list[tuple[str, str]]) -> None:
        """Every (platform, layer name) about to be built or found in the cache."""

    def layer_done(self, outcome: LayerOutcome) -> None:
        """A layer was built, or found in the cache (``outcome.cached``)."""

    def blob_started(self, digest: Digest, size: int, what: str) -> None:
        """A blob is being checked, mounted or uploaded; ``what`` names it for people."""

    def blob_progress(self, digest: Digest, sent: int) -> None:
        """``sent`` bytes of the blob have gone out in the current attempt (it restarts at 0 if
        the upload is retried)."""

    def blob_done(self, digest: Digest, how: str) -> None:
        """The blob is in the registry: ``exists``, ``mounted`` or ``uploaded``."""

    def phase(self, name: str) -> None:
        """A phase started: ``build``, ``push``, ``manifests``, ``write``."""


@dataclass(frozen=True)
class CountingLayer(LayerWrapper):
    """``layer`` whose readers report how many bytes were read, so an upload shows progress
    without the registry client knowing. ``layer`` is kept under that name so the client still
    sees where it came from (for a cross-repository mount)."""

    layer: Layer
    on_read: Callable[[int], None]

    def open(self) -> BinaryIO:
        self.on_read(0)
        return _CountingReader(self.layer.open(), self.on_read)  # type: ignore[return-value]


class _CountingReader:
    def __init__(self, stream: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._count += len(data)
            self._on_read(self._count)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
