"""From a plan to images: each layer built (or found in the cache), stacked on its base, the
container config written, media types and annotations set.

Layers of all platforms are built concurrently; a layer whose inputs are the same on two
platforms (a pure-Python app) has one selector, so it is built once and found by the other.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from jib.cache import Cache
from jib.image import mutate
from jib.image.config import ImageConfig
from jib.image.image import Image
from jib.layers import BuiltLayer, build_layer
from jib.plan import BuildPlan, ContainerPlan, LayerPlan, PlatformPlan

log = logging.getLogger("jib.build")

BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"


@dataclass(frozen=True)
class LayerOutcome:
    """How one planned layer came to be, for progress and the closing summary."""

    platform: str
    name: str
    layer: BuiltLayer
    cached: bool
    seconds: float


LayerCallback = Callable[[LayerOutcome], None]


def build_layers(
    plan: BuildPlan,
    cache: Cache,
    *,
    jobs: int = 2,
    on_layer: LayerCallback | None = None,
) -> list[list[Future[LayerOutcome]]]:
    """Start building every planned layer; one list of futures per platform, in layer order.

    The caller may act on each layer as soon as it is done (push it) rather than wait for all.
    """
    pool = ThreadPoolExecutor(max(1, jobs), "pyjib-layer")
    futures = [
        [pool.submit(_build_one, cache, str(p.platform), layer, on_layer) for layer in p.layers]
        for p in plan.platforms
    ]
    pool.shutdown(wait=False)
    return futures


def build_planned(cache: Cache, planned: LayerPlan) -> tuple[BuiltLayer, bool]:
    """The layer of ``planned`` from the cache, or built into it; and whether it was cached."""

    def build(out: Path) -> BuiltLayer:
        with tempfile.TemporaryDirectory(prefix=".scratch-", dir=out) as scratch:
            return build_layer(planned.entries(Path(scratch)), out)

    return cache.layer(planned.selector, build)


def _build_one(
    cache: Cache, platform: str, planned: LayerPlan, on_layer: LayerCallback | None
) -> LayerOutcome:
    started = time.monotonic()
    layer, cached = build_planned(cache, planned)
    outcome = LayerOutcome(platform, planned.name, layer, cached, time.monotonic() - started)
    log.debug(
        "%s layer %s for %s: %s in %.3fs",
        "cached" if cached else "built",
        planned.name,
        platform,
        layer.digest,
        outcome.seconds,
    )
    if on_layer is not None:
        on_layer(outcome)
    return outcome


def assemble(plan: BuildPlan, platform_plan: PlatformPlan, layers: Sequence[BuiltLayer]) -> Image:
    """The image of ``platform_plan``: its base, plus ``layers`` (built from its plan), plus
    the container config, in the plan's format, with the plan's annotations."""
    history = [
        {"created": plan.created, "created_by": "pyjib", "comment": planned.name}
        for planned in platform_plan.layers
    ]
    image = mutate.append_layers(platform_plan.base, list(zip(layers, history, strict=True)))
    image = mutate.with_config(
        image, lambda config: _configure(config, platform_plan.container, plan.created)
    )
    image = mutate.with_format(image, plan.format)
    annotations = dict(plan.annotations)
    if plan.base_name:
        annotations.setdefault(BASE_NAME, plan.base_name)
        annotations.setdefault(BASE_DIGEST, str(platform_plan.base.digest))
    return mutate.with_annotations(image, annotations) if plan.format == "oci" else image


def _configure(config: ImageConfig, container: ContainerPlan, created: str) -> ImageConfig:
    config = config.with_created(created).with_env(container.environment)
    config = config.with_labels(container.labels)
    if container.entrypoint is not None:
        config = config.with_entrypoint(container.entrypoint)
        if container.cmd is None and container.reset_cmd:
            config = config.with_cmd(None)
    if container.cmd is not None:
        config = config.with_cmd(container.cmd)
    if container.exposed_ports:
        config = config.with_exposed_ports((*config.exposed_ports, *container.exposed_ports))
    if container.volumes:
        config = config.with_volumes((*config.volumes, *container.volumes))
    if container.user is not None:
        config = config.with_user(container.user)
    if container.working_dir is not None:
        config = config.with_working_dir(container.working_dir)
    return config
