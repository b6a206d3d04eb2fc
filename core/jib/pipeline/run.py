"""The pipeline: execute a build plan into every output asked for, doing independent work at once.

For a push, the target registry is contacted while layers build; base layers are checked (HEAD,
or a cross-repository mount) right away, and each new layer is pushed the moment it is built.
Only then go the configs, the manifests, and the tags, so a tag never names a half-pushed
image. Any failure cancels what has not started and surfaces as one JibError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from jib.cache import Cache
from jib.image import mediatypes
from jib.image.image import Image
from jib.image.index import ImageIndex
from jib.image.layer import Layer
from jib.image.reference import Reference
from jib.pipeline import outputs
from jib.pipeline.assemble import LayerOutcome, assemble, build_layers
from jib.pipeline.events import BuildEvents, CountingLayer
from jib.plan import BuildPlan
from jib.registry import push as registry_push
from jib.registry.client import RegistryClient

log = logging.getLogger("jib.build")


@dataclass(frozen=True)
class Outputs:
    """What to do with the image; any combination, from one build."""

    push: bool = False
    tar: Path | None = None
    oci_layout: Path | None = None
    load: bool = False
    paths: outputs.OutputPaths = field(default_factory=outputs.OutputPaths)


@dataclass
class BuildResult:
    image: Image | ImageIndex
    references: tuple[Reference, ...]
    pushed: bool = False
    layers: list[LayerOutcome] = field(default_factory=list)
    #: For a push: how each blob got there ("exists", "mounted", "uploaded").
    blobs: Counter[str] = field(default_factory=Counter)
    #: The same, in bytes: what was already there, mounted, uploaded (configs included).
    blob_bytes: Counter[str] = field(default_factory=Counter)
    uploaded_bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    engine: str | None = None

    @property
    def digest(self) -> str:
        return str(self.image.digest)

    @property
    def image_id(self) -> str:
        return outputs.image_id(self.image)


def containerize(
    plan: BuildPlan,
    out: Outputs,
    *,
    cache: Cache,
    target: RegistryClient | None = None,
    jobs: int = 4,
    on_layer: Callable[[LayerOutcome], None] | None = None,
    events: BuildEvents | None = None,
) -> BuildResult:
    """Build ``plan`` and deliver it to ``out``; ``target`` is the client for a push.

    ``events`` hears of each layer and blob as it goes (for progress); ``on_layer`` is the
    older, layer-only form of the same."""
    if out.push and target is None:
        raise ValueError("a push needs the target registry's client")
    events = events or BuildEvents()
    started = time.monotonic()
    result = BuildResult(image=None, references=plan.references)  # type: ignore[arg-type]
    pusher = (
        _Pusher(target, plan.target.repository, plan, result, jobs, events) if out.push else None
    )

    def layer_done(outcome: LayerOutcome) -> None:
        events.layer_done(outcome)
        if on_layer is not None:
            on_layer(outcome)

    try:
        events.phase("build")
        events.layers_planned(
            [(str(p.platform), layer.name) for p in plan.platforms for layer in p.layers]
        )
        per_platform = build_layers(plan, cache, jobs=max(2, jobs // 2), on_layer=layer_done)
        if pusher is not None:
            pusher.start([p.base.layers for p in plan.platforms], per_platform)
        images = []
        for platform_plan, futures in zip(plan.platforms, per_platform, strict=True):
            outcomes = [future.result() for future in futures]
            result.layers += outcomes
            images.append(assemble(plan, platform_plan, [o.layer for o in outcomes]))
        result.timings["build"] = time.monotonic() - started
        result.image = _top(plan, images)
        if pusher is not None:
            events.phase("push")
            pusher.finish(result.image)
            result.pushed = True
            result.timings["push"] = time.monotonic() - started - result.timings["build"]
        _local_outputs(plan, out, result, cache.root, events)
    finally:
        if pusher is not None:
            pusher.close()
    if out.paths != outputs.OutputPaths():
        outputs.write_output_paths(out.paths, result.image, plan.references, pushed=result.pushed)
    result.timings["total"] = time.monotonic() - started
    return result


def _top(plan: BuildPlan, images: Sequence[Image]) -> Image | ImageIndex:
    if not plan.is_multi_platform:
        return images[0]
    media_type = mediatypes.to_format(mediatypes.OCI_INDEX, plan.format)
    return ImageIndex.build(images, media_type=media_type, annotations=plan.annotations)


def _local_outputs(
    plan: BuildPlan, out: Outputs, result: BuildResult, scratch: Path, events: BuildEvents
) -> None:
    step = time.monotonic()
    if out.tar or out.oci_layout or out.load:
        events.phase("write")
    if out.tar is not None:
        outputs.write_tarball(out.tar, result.image, plan.references)
    if out.oci_layout is not None:
        outputs.write_oci_layout(out.oci_layout, result.image, plan.target)
    if out.load:
        result.engine = outputs.load_into_engine(result.image, plan.references, scratch / "tmp")
    if out.tar or out.oci_layout or out.load:
        result.timings["write"] = time.monotonic() - step


class _Pusher:
    """Pushes blobs as they become ready, then manifests and tags once all are in."""

    def __init__(
        self,
        client: RegistryClient | None,
        repository: str,
        plan: BuildPlan,
        result: BuildResult,
        jobs: int,
        events: BuildEvents,
    ) -> None:
        assert client is not None
        self.events = events
        self.client = client
        self.repository = repository
        self.plan = plan
        self.result = result
        self.pool = ThreadPoolExecutor(max(1, jobs), "pyjib-push")
        self.pending: list[Future[None]] = []
        self.seen: set[str] = set()
        # Layers finish on builder threads and pushes on pusher threads: guard shared state.
        self.lock = threading.Lock()
        sources = {
            source
            for p in plan.platforms
            for layer in p.base.layers
            if (source := registry_push.mount_source(layer, client.registry))
        }
        self.scopes = registry_push.push_scopes(repository, sorted(sources))

    def start(
        self,
        base_layers: Sequence[Sequence[Layer]],
        built: Sequence[Sequence[Future[LayerOutcome]]],
    ) -> None:
        # Authenticate now, while layers are still building.
        self.pending.append(self.pool.submit(self.client.ping))
        for layers in base_layers:
            for i, layer in enumerate(layers):
                self._push_soon(layer, f"base layer {i + 1}/{len(layers)}")
        for futures in built:
            for future in futures:
                future.add_done_callback(self._on_built)

    def _on_built(self, future: Future[LayerOutcome]) -> None:
        if not future.cancelled() and future.exception() is None:
            outcome = future.result()
            self._push_soon(outcome.layer, outcome.name)

    def _push_soon(self, layer: Layer, label: str) -> None:
        with self.lock:
            if str(layer.digest) in self.seen:
                return
            self.seen.add(str(layer.digest))
            self.pending.append(self.pool.submit(self._push_blob, layer, label))

    def _push_blob(self, layer: Layer | registry_push.BytesBlob, label: str) -> None:
        digest, events = layer.digest, self.events
        events.blob_started(digest, layer.size, label)
        counted = CountingLayer(layer, lambda sent: events.blob_progress(digest, sent))
        what = "config" if label == "config" else "layer"
        how = registry_push.push_blob(
            self.client,
            self.repository,
            counted,  # type: ignore[arg-type]
            scopes=self.scopes,
            what=what,
        )
        events.blob_done(digest, how)
        with self.lock:
            self.result.blobs[how] += 1
            self.result.blob_bytes[how] += layer.size
            if how == "uploaded":
                self.result.uploaded_bytes += layer.size

    def finish(self, top: Image | ImageIndex) -> None:
        # Callbacks may still be adding pushes for the last layers: wait until none are added.
        while True:
            with self.lock:
                pending = list(self.pending)
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                if (error := future.exception()) is not None:
                    raise error
            if len(pending) == len(self.pending) and len(done) == len(pending):
                break
        images = top.images if isinstance(top, ImageIndex) else (top,)
        for image in images:
            config = registry_push.BytesBlob(image.raw_config, image.manifest.config.media_type)
            self._push_blob(config, "config")
        self.events.phase("manifests")
        target = self.plan.target
        if isinstance(top, ImageIndex):
            for image in images:
                ref = Reference(target.registry, target.repository, None, image.digest)
                registry_push.put_manifest(
                    self.client, ref, image.raw_manifest, image.media_type, self.scopes
                )
        for ref in self.plan.references:
            registry_push.put_manifest(
                self.client, ref, top.raw_manifest, top.media_type, self.scopes
            )

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True)
