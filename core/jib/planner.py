"""From a Python project and its ``[tool.jib]`` settings to a build plan.

The front ends (the ``pyjib`` CLI, the Hatch builder, the Poetry plugin) call this with what
their tool already knows (the project's wheel, Poetry's resolved packages); everything else is
worked out here: the base image for each platform, the Python inside it, the wheels that fit it,
the layers, and the container config.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jib
from jib.cache import Cache
from jib.config.settings import JibSettings
from jib.errors import JibError
from jib.extradirs import extra_directory_plans
from jib.image.image import Image
from jib.image.reference import Reference
from jib.local import is_local
from jib.pipeline.base import resolve_bases
from jib.plan import BuildPlan, ContainerPlan, PlatformPlan
from jib.python.entrypoint import infer_entrypoint
from jib.python.index import index_config
from jib.python.indextls import IndexTLS
from jib.python.layers import container_env, python_layer_plans
from jib.python.locks import LockSet
from jib.python.project import ProjectWheel, load_project
from jib.python.resolve import load_dependencies
from jib.python.target import TargetPython, detect_target
from jib.python.wheels import fetch_wheels
from jib.registry.client import Registries
from jib.registry.credentials import default_keychain

log = logging.getLogger("jib.plan")

OCI = "org.opencontainers.image."


@dataclass(frozen=True)
class ProjectInputs:
    """What a front end may already have, so it is not worked out twice."""

    #: The project's wheel, built by the front end's own backend.
    wheel: Path | None = None
    #: The dependencies resolved by the front end (Poetry), per platform string, or for all.
    locked: Mapping[str, LockSet] | LockSet | None = None
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] | None = None
    #: False for a project that is not a package (Poetry's ``package-mode = false``): its
    #: dependencies go in the image, no wheel of its own does.
    package: bool = True
    #: HTTP Basic credentials (user, password) per package index URL, e.g. Poetry's
    #: ``http-basic.<source>`` for each source's URL; sent only to that index's origin (see
    #: ``jib.python.index.IndexAuth``). Never logged, never in the image.
    index_auth: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    #: TLS settings per package index URL (Poetry's ``certificates.<source>.*``), for that
    #: index's origin only (``jib.python.indextls``).
    index_tls: Mapping[str, IndexTLS] = field(default_factory=dict)


def plan_project(
    settings: JibSettings,
    *,
    registries: Registries,
    cache: Cache,
    for_push: bool,
    inputs: ProjectInputs | None = None,
) -> BuildPlan:
    inputs = inputs or ProjectInputs()
    project_dir = settings.project_dir
    keychain = default_keychain(
        explicit=settings.from_.auth, env_prefix="JIB_FROM", cred_helper=settings.from_.cred_helper
    )
    with ThreadPoolExecutor(2, "pyjib-plan") as pool:
        # The base's manifests come over the network while the project's wheel builds.
        bases_future = pool.submit(
            resolve_bases,
            settings.from_.image,
            settings.from_.platforms,
            registries=registries,
            keychain=keychain,
            cache=cache,
            project_dir=project_dir,
        )
        project = pool.submit(_project_wheel, settings, cache, inputs).result()
        bases = bases_future.result()
    # Computed once: the git revision they hold costs a subprocess.
    labels = _oci_labels(settings)
    platforms = tuple(
        _platform_plan(settings, base, project, cache, inputs, labels) for base in bases
    )
    refs = settings.to_references(for_push)
    created = settings.container.creation_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return BuildPlan(
        platforms=platforms,
        target=refs[0],
        tags=tuple(ref.tag for ref in refs[1:] if ref.tag),
        format=settings.container.format,
        created=created,
        base_name=_base_name(settings.from_.image),
        annotations={**labels, f"{OCI}created": created},
    )


#: Not part of what a project's wheel is built from (tool state, outputs, caches).
_NOT_SOURCES = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "dist",
        "build",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        ".idea",
        ".vscode",
    }
)


def _project_wheel(
    settings: JibSettings, cache: Cache, inputs: ProjectInputs
) -> ProjectWheel | None:
    """The project's wheel: the front end's, else one built from these very sources before
    (found by their paths, sizes and mtimes, as Jib finds unchanged class files), else built.

    A no-op rebuild so skips the PEP 517 build, the slowest step of a warm build.
    """
    if not inputs.package:
        return None
    if inputs.wheel is not None:
        return load_project(settings.project_dir, cache.root, wheel=inputs.wheel)
    name = settings.project.normalized_name
    fingerprint = _source_fingerprint(settings.project_dir)
    key = f"project-wheel:{settings.project_dir}:{fingerprint}"
    known = cache.get_document(key)
    if known is not None and Path(known["wheel"]).is_file():
        log.debug("reusing the wheel %s: no source changed", known["wheel"])
        return load_project(settings.project_dir, cache.root, wheel=Path(known["wheel"]))
    out = cache.root / "project-wheels" / name / fingerprint[:16]
    project = load_project(settings.project_dir, out, cache_dir=cache.root)
    cache.put_document(key, {"wheel": str(project.path)})
    return project


def _source_fingerprint(project_dir: Path) -> str:
    digest = hashlib.sha256(f"{_git_revision(project_dir)}".encode())
    for dirpath, dirnames, filenames in os.walk(project_dir):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _NOT_SOURCES and not d.endswith(".egg-info")
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            rel = path.relative_to(project_dir).as_posix()
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode())
    return digest.hexdigest()


def _platform_plan(
    settings: JibSettings,
    base: Image,
    project: ProjectWheel | None,
    cache: Cache,
    inputs: ProjectInputs,
    labels: Mapping[str, str],
) -> PlatformPlan:
    python = settings.python
    target = detect_target(
        base, version=python.version, executable=python.executable, cache_dir=cache.root
    )
    log.info("target Python for %s: %s", base.platform, target.describe())
    locked = _locked(settings, target, inputs, cache, project)
    wheels = fetch_wheels(
        locked,
        target,
        cache_dir=cache.root,
        index_url=python.index_url,
        extra_index_urls=python.extra_index_urls,
        auth=inputs.index_auth,
        tls=inputs.index_tls,
    )
    container = settings.container
    layers = python_layer_plans(
        target,
        dependency_wheels=[w.path for w in wheels if w.source_kind in ("registry", "url")],
        local_wheels=[w.path for w in wheels if w.source_kind not in ("registry", "url")],
        project_wheel=project.path if project is not None else None,
        app_root=container.app_root,
        compile_bytecode=python.compile_bytecode,
        mtime=container.files_modification_time,
        known_sha256={w.path: w.sha256 for w in wheels},
    )
    layers += extra_directory_plans(settings.extra_directories, container.files_modification_time)
    return PlatformPlan(
        platform=base.platform,
        base=base,
        layers=tuple(layers),
        container=_container(settings, base, target, project, labels),
    )


def _locked(
    settings: JibSettings,
    target: TargetPython,
    inputs: ProjectInputs,
    cache: Cache,
    project: ProjectWheel | None,
) -> LockSet:
    if isinstance(inputs.locked, LockSet):
        return inputs.locked
    if inputs.locked is not None and str(target.platform) in inputs.locked:
        return inputs.locked[str(target.platform)]
    python = settings.python
    index = index_config(python.index_url, python.extra_index_urls)
    return load_dependencies(
        settings.project_dir,
        target=target,
        lock=python.lock,
        extras=inputs.extras,
        groups=inputs.groups,
        index=index,
        cache_dir=cache.root,
        requires_dist=project.requires_dist if project is not None else None,
    )


def _container(
    settings: JibSettings,
    base: Image,
    target: TargetPython,
    project: ProjectWheel | None,
    oci_labels: Mapping[str, str],
) -> ContainerPlan:
    container = settings.container
    entrypoint = container.entrypoint
    if entrypoint is None and project is None:
        raise JibError(
            "set [tool.jib.container] entrypoint: a project that is not a package has no "
            "scripts or packages to infer it from"
        )
    if entrypoint is None:
        assert project is not None
        entrypoint = tuple(
            infer_entrypoint(
                project.scripts, project.packages, project.has_main, container.app_root
            )
        )
    environment = container_env(target, container.app_root, base.config.env)
    environment.update(container.environment)
    labels = {**base.config.labels, **oci_labels, **container.labels}
    return ContainerPlan(
        entrypoint=entrypoint,
        cmd=container.args,
        environment=environment,
        labels=labels,
        exposed_ports=container.ports,
        volumes=container.volumes,
        user=container.user,
        working_dir=container.working_directory,
    )


def _oci_labels(settings: JibSettings) -> dict[str, str]:
    """``org.opencontainers.image.*`` facts from ``[project]`` and git, as Docker shows them."""
    project = settings.project
    labels = {f"{OCI}title": project.name}
    if project.version:
        labels[f"{OCI}version"] = project.version
    if project.description:
        labels[f"{OCI}description"] = project.description
    if project.license_expression:
        labels[f"{OCI}licenses"] = project.license_expression
    if project.authors:
        labels[f"{OCI}authors"] = ", ".join(project.authors)
    urls = {k.lower(): v for k, v in project.urls.items()}
    source = next((urls[k] for k in ("source", "repository", "code") if k in urls), None)
    if source:
        labels[f"{OCI}source"] = source
    if "homepage" in urls:
        labels[f"{OCI}url"] = urls["homepage"]
    if "documentation" in urls:
        labels[f"{OCI}documentation"] = urls["documentation"]
    revision = _git_revision(settings.project_dir)
    if revision:
        labels[f"{OCI}revision"] = revision
    return labels


def _git_revision(project_dir: Path) -> str | None:
    """The commit the project is at, if it is in a git work tree (a dirty tree still counts)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(project_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _base_name(spec: str) -> str:
    """``base.name`` wants the fully qualified reference; a local base has none."""
    if is_local(spec):
        return ""
    return str(Reference.parse(spec))


def describe(plan: BuildPlan) -> Sequence[str]:
    """One line per platform and layer, for logs."""
    lines = [f"pyjib {jib.__version__}: {plan.target} from {plan.base_name or 'a local base'}"]
    for p in plan.platforms:
        lines.append(f"  {p.platform}: {', '.join(layer.name for layer in p.layers)}")
    return lines
