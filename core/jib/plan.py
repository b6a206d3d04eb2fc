"""The build plan: what the image is, decided before anything is built.

A plan is immutable and knows nothing of Hatch, Poetry or how layers get made: front ends (and
the Python planner) translate their world into it; the pipeline executes it. Layer contents are
given lazily, with a selector naming their inputs, so a cached layer costs no work at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from jib.image.descriptor import Platform
from jib.image.image import Image
from jib.image.reference import Reference
from jib.layers.entries import LayerEntry


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class LayerPlan:
    """One layer to add: its name (the history comment), the selector that identifies its
    inputs in the cache, and a function giving its entries (called only on a cache miss).

    ``entries`` gets a scratch directory that lives until the layer is written, for files it
    has to unpack first (a wheel's contents); the entries may point into it.
    """

    name: str
    selector: str
    entries: Callable[[Path], Iterable[LayerEntry]] = field(compare=False, repr=False)


@dataclass(frozen=True)
class ContainerPlan:
    """The container config written over the base image's. ``None`` keeps the base's value;
    ``environment`` and ``labels`` are complete (the planner merged the base's in)."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=_frozen)
    labels: Mapping[str, str] = field(default_factory=_frozen)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    user: str | None = None
    working_dir: str | None = None
    #: True: entrypoint set without args drops the base's Cmd, as Docker's ENTRYPOINT does.
    reset_cmd: bool = True


@dataclass(frozen=True)
class PlatformPlan:
    """The image for one platform: its base and what goes on top."""

    platform: Platform
    base: Image
    layers: tuple[LayerPlan, ...]
    container: ContainerPlan


@dataclass(frozen=True)
class BuildPlan:
    """Every platform's image, how it is written, and the name it is built for."""

    platforms: tuple[PlatformPlan, ...]
    target: Reference
    tags: tuple[str, ...] = ()
    format: str = "oci"
    #: RFC 3339, for the config's ``created`` and every history entry pyjib adds.
    created: str = "1970-01-01T00:00:00Z"
    #: The base as the user named it (``python:3.12-slim``, ``tar://base.tar``), for annotations.
    base_name: str = ""
    annotations: Mapping[str, str] = field(default_factory=_frozen)

    @property
    def is_multi_platform(self) -> bool:
        return len(self.platforms) > 1

    @property
    def references(self) -> tuple[Reference, ...]:
        """The target and a reference for each extra tag (the target's own tag first)."""
        refs = [self.target]
        refs += [self.target.with_tag(t) for t in self.tags if t != self.target.tag]
        return tuple(refs)
