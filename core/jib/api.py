"""One call for every front end: settings, plan, pipeline, summary.

The ``pyjib`` CLI, the Hatch builder and the Poetry plugin differ only in how they get the
project's wheel, its dependencies and their options; they all end up here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from jib.cache import Cache, max_size_from, prune
from jib.config import Overrides, load_settings, read_pyproject
from jib.config.settings import JibSettings
from jib.errors import JibError
from jib.pipeline.events import BuildEvents
from jib.pipeline.outputs import OutputPaths
from jib.pipeline.run import BuildResult, Outputs, containerize
from jib.planner import ProjectInputs, describe, plan_project
from jib.registry.client import Registries
from jib.registry.credentials import default_keychain
from jib.sizes import human

log = logging.getLogger("jib")

#: What a build can produce; front ends name them the same way (`hatch build -t jib:tar,push`).
TARGETS = ("tar", "push", "docker")


def settings_for(
    project_dir: Path,
    *,
    overrides: Overrides | None = None,
    environ: Mapping[str, str] | None = None,
) -> JibSettings:
    project_dir = Path(project_dir).resolve()
    return load_settings(
        read_pyproject(project_dir), project_dir, environ=environ, overrides=overrides
    )


def build(
    project_dir: Path,
    targets: Sequence[str] = ("tar",),
    *,
    overrides: Overrides | None = None,
    inputs: ProjectInputs | None = None,
    environ: Mapping[str, str] | None = None,
    report: Callable[[str], None] = print,
    events: BuildEvents | None = None,
) -> BuildResult:
    """Build the project at ``project_dir`` into each of ``targets``; ``report`` gets the lines
    a user reads (what was built, where it went); ``events`` hears of each layer and blob as it
    goes (``jib.progress`` has a plain and a terminal listener; default: plain log lines).

    The cache is kept under its cap (``JIB_CACHE_MAX_SIZE``) when the build ends."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise JibError(
            f"unknown build target {', '.join(unknown) or '(none)'}: use {', '.join(TARGETS)}"
        )
    settings = settings_for(project_dir, overrides=overrides, environ=environ)
    max_size = max_size_from(environ)
    cache = Cache(settings.cache_dir)
    # Shared while the build runs: a prune (another build's, or `pyjib cache prune`) waits.
    with cache.in_use():
        result, outputs = _build(settings, targets, cache, inputs, events)
    # Exclusive, without waiting: if other builds still run, the last of them to end prunes.
    pruned = prune(cache, max_size, wait=False)
    if pruned.skipped:
        log.debug("cache: other builds are running; leaving the size check to them")
    for line in summary(result, outputs):
        report(line)
    return result


def _build(
    settings: JibSettings,
    targets: Sequence[str],
    cache: Cache,
    inputs: ProjectInputs | None,
    events: BuildEvents | None,
) -> tuple[BuildResult, Outputs]:
    if events is None:
        from jib.progress import PlainEvents

        events = PlainEvents()
    push = "push" in targets
    started = time.monotonic()
    with Registries(insecure=settings.allow_insecure_registries) as registries:
        events.phase("plan")
        plan = plan_project(
            settings, registries=registries, cache=cache, for_push=push, inputs=inputs
        )
        planned = time.monotonic() - started
        for line in describe(plan):
            log.info(line)
        target = None
        if push:
            keychain = default_keychain(
                explicit=settings.to.auth, env_prefix="JIB_TO", cred_helper=settings.to.cred_helper
            )
            target = registries.get(plan.target.registry, keychain)
        paths = settings.output_paths
        outputs = Outputs(
            push=push,
            tar=paths.tar if "tar" in targets else None,
            load="docker" in targets,
            paths=OutputPaths(paths.digest, paths.image_id, paths.image_json),
        )
        result = containerize(plan, outputs, cache=cache, target=target, events=events)
    # The plan (base manifests, the project's wheel, resolution, wheel downloads) comes first.
    result.timings = {"plan": planned, **result.timings}
    result.timings["total"] = time.monotonic() - started
    return result, outputs


def summary(result: BuildResult, outputs: Outputs) -> list[str]:
    """The closing lines: what was built, where it went, what it cost."""
    built = [o for o in result.layers if not o.cached]
    reused = [o for o in result.layers if o.cached]
    lines = [
        f"Built {result.references[0]} ({result.digest}): "
        f"{len(built)} layer(s) built ({human(sum(o.layer.size for o in built))}), "
        f"{len(reused)} reused ({human(sum(o.layer.size for o in reused))})"
    ]
    if result.pushed:
        blobs = ", ".join(
            f"{n} {how} ({human(result.blob_bytes[how])})"
            for how, n in sorted(result.blobs.items())
        )
        lines.append(
            f"Pushed {', '.join(str(r) for r in result.references)}: blobs {blobs}; "
            f"{human(result.uploaded_bytes)} uploaded"
        )
        lines.append(f"{result.references[0].name}@{result.digest}")
    if outputs.tar is not None:
        lines.append(f"Wrote {outputs.tar}")
    if result.engine:
        lines.append(f"Loaded {result.references[0]} into {result.engine}")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    lines.append(f"Timings: {timings}")
    return lines
