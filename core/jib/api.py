"""One call for every front end: settings, plan, pipeline, summary.

The ``pyjib`` CLI, the Hatch builder and the Poetry plugin differ only in how they get the
project's wheel, its dependencies and their options; they all end up here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from jib.cache import Cache
from jib.config import Overrides, load_settings, read_pyproject
from jib.config.settings import JibSettings
from jib.errors import JibError
from jib.pipeline.assemble import LayerOutcome
from jib.pipeline.outputs import OutputPaths
from jib.pipeline.run import BuildResult, Outputs, containerize
from jib.planner import ProjectInputs, describe, plan_project
from jib.registry.client import Registries
from jib.registry.credentials import default_keychain

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
) -> BuildResult:
    """Build the project at ``project_dir`` into each of ``targets``; ``report`` gets the lines
    a user reads (what was built, where it went)."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise JibError(
            f"unknown build target {', '.join(unknown) or '(none)'}: use {', '.join(TARGETS)}"
        )
    settings = settings_for(project_dir, overrides=overrides, environ=environ)
    push = "push" in targets
    cache = Cache(settings.cache_dir)
    with Registries(insecure=settings.allow_insecure_registries) as registries:
        plan = plan_project(
            settings, registries=registries, cache=cache, for_push=push, inputs=inputs
        )
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
        result = containerize(plan, outputs, cache=cache, target=target, on_layer=_log_layer)
    for line in summary(result, outputs):
        report(line)
    return result


def _log_layer(outcome: LayerOutcome) -> None:
    how = "cached" if outcome.cached else f"built in {outcome.seconds:.2f}s"
    log.info(
        "layer %s (%s): %s, %s",
        outcome.name,
        outcome.platform,
        _size(outcome.layer.size),
        how,
    )


def summary(result: BuildResult, outputs: Outputs) -> list[str]:
    """The closing lines: what was built, where it went, what it cost."""
    built = sum(not o.cached for o in result.layers)
    lines = [
        f"Built {result.references[0]} ({result.digest}): "
        f"{built} layer(s) built, {len(result.layers) - built} reused"
    ]
    if result.pushed:
        blobs = ", ".join(f"{n} {how}" for how, n in sorted(result.blobs.items()))
        lines.append(
            f"Pushed {', '.join(str(r) for r in result.references)}: blobs {blobs}; "
            f"{_size(result.uploaded_bytes)} uploaded"
        )
        lines.append(f"{result.references[0].name}@{result.digest}")
    if outputs.tar is not None:
        lines.append(f"Wrote {outputs.tar}")
    if result.engine:
        lines.append(f"Loaded {result.references[0]} into {result.engine}")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    lines.append(f"Timings: {timings}")
    return lines


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
