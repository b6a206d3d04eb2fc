"""The pipeline against a real registry: pushes that send only what changed, base layers that are
never downloaded for a push, multi-platform indexes, every output from one build."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from testbed.registry import Registry

from jib.cache import Cache
from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.reference import Reference
from jib.layers import LayerEntry
from jib.pipeline.assemble import LayerOutcome
from jib.pipeline.base import resolve_bases
from jib.pipeline.events import BuildEvents
from jib.pipeline.outputs import OutputPaths
from jib.pipeline.run import Outputs, containerize
from jib.plan import BuildPlan, ContainerPlan, LayerPlan, PlatformPlan
from jib.registry.client import Registries
from jib.registry.credentials import default_keychain

pytestmark = pytest.mark.e2e


def _plan(
    base_spec: str,
    target: str,
    app: bytes,
    tmp: Path,
    cache: Cache,
    regs: Registries,
    platforms: tuple[Platform, ...] = (Platform.parse("linux/amd64"),),
) -> BuildPlan:
    bases = resolve_bases(
        base_spec,
        platforms,
        registries=regs,
        keychain=default_keychain(environ={}),
        cache=cache,
        project_dir=tmp,
    )
    app_layer = LayerPlan(
        "application", f"app:{app.hex()}", lambda _: [LayerEntry.data(app, "/app/main.py")]
    )
    deps_layer = LayerPlan(
        "dependencies", "deps:v1", lambda _: [LayerEntry.data(b"DEPS = 1\n", "/app/deps.py")]
    )
    return BuildPlan(
        platforms=tuple(
            PlatformPlan(
                platform=base.platform,
                base=base,
                layers=(deps_layer, app_layer),
                container=ContainerPlan(
                    entrypoint=("python3", "/app/main.py"),
                    environment={**base.config.env, "PYTHONUNBUFFERED": "1"},
                    labels={"org.opencontainers.image.title": "pipeline-test"},
                ),
            )
            for base in bases
        ),
        target=Reference.parse(target),
        tags=("extra",),
        base_name=base_spec,
    )


def _blob_uploads(registry: Registry, since: int) -> list[str]:
    """Blob uploads committed (the PUT that ends an upload session) since ``since``."""
    return [
        r.path
        for r in registry.requests(since)
        if r.method == "PUT" and "/blobs/uploads/" in r.route and r.status == 201
    ]


def test_second_push_uploads_only_the_changed_layer(
    tmp_path: Path, registry: Registry, base_image_ref: str, podman: object
) -> None:
    cache = Cache(tmp_path / "cache")
    target = f"{registry.host}/pipeline/app:1"
    with Registries() as regs:
        client = regs.get(registry.host, default_keychain(environ={}))
        since = registry.mark()
        plan = _plan(base_image_ref, target, b"print('one')\n", tmp_path, cache, regs)
        first = containerize(plan, Outputs(push=True), cache=cache, target=client)
        uploads_first = _blob_uploads(registry, since)

        since = registry.mark()
        plan = _plan(base_image_ref, target, b"print('two')\n", tmp_path, cache, regs)
        second = containerize(plan, Outputs(push=True), cache=cache, target=client)
        logged = registry.requests(since)

    assert first.pushed and second.pushed and first.digest != second.digest
    # First push: the base was mounted from its repository, the two new layers and the config
    # were uploaded.
    assert first.blobs["mounted"] == 1
    assert len(uploads_first) == 3
    # Second push: exactly one layer blob (the app) plus the config; the rest already there.
    assert len(_blob_uploads(registry, 0)[-2:]) == 2
    uploads = [r for r in logged if r.method == "PUT" and "/blobs/uploads/" in r.route]
    assert len(uploads) == 2
    assert second.blobs == {"exists": 2, "uploaded": 2}
    assert [o.cached for o in second.layers] == [True, False]
    # No base layer was ever downloaded (only the base's config was read), and nothing is in
    # the cache's blob store.
    base_layers = {str(layer.digest) for layer in plan.platforms[0].base.layers}
    fetched = {
        r.route.rsplit("/", 1)[1] for r in logged if r.method == "GET" and "/blobs/" in r.route
    }
    assert fetched == {str(plan.platforms[0].base.config_digest)}
    assert not fetched & base_layers
    assert list((tmp_path / "cache" / "blobs" / "sha256").iterdir()) == []
    # The tags point at the new image.
    for tag in ("1", "extra"):
        raw = subprocess.run(
            [
                "skopeo",
                "inspect",
                "--tls-verify=false",
                "--raw",
                f"docker://{registry.host}/pipeline/app:{tag}",
            ],
            capture_output=True,
            check=True,
        ).stdout
        assert json.loads(raw)["config"]["digest"] == second.image_id
    podman.pull(target)  # type: ignore[attr-defined]
    assert podman.run(target).stdout.strip() == "two"  # type: ignore[attr-defined]


def test_tar_and_output_paths_from_a_registry_base(
    tmp_path: Path, registry: Registry, base_image_ref: str, podman: object
) -> None:
    cache = Cache(tmp_path / "cache")
    with Registries() as regs:
        plan = _plan(
            base_image_ref, "example.com/pipeline/tar:1.0", b"print('tar')\n", tmp_path, cache, regs
        )
        paths = OutputPaths(
            tmp_path / "d" / "digest", tmp_path / "d" / "id", tmp_path / "d" / "image.json"
        )
        result = containerize(
            plan, Outputs(tar=tmp_path / "dist" / "app.tar", paths=paths), cache=cache
        )
    # The base's layer was downloaded once into the cache, for the tarball.
    assert len(list((tmp_path / "cache" / "blobs" / "sha256").iterdir())) == 1
    assert (tmp_path / "d" / "digest").read_text() == result.digest
    summary = json.loads((tmp_path / "d" / "image.json").read_text())
    assert summary == {
        "image": "example.com/pipeline/tar:1.0",
        "imageId": result.image_id,
        "imageDigest": result.digest,
        "tags": ["1.0", "extra"],
        "imagePushed": False,
    }
    assert podman.load(tmp_path / "dist" / "app.tar") == ["example.com/pipeline/tar:1.0"]  # type: ignore[attr-defined]
    assert podman.run("example.com/pipeline/tar:1.0").stdout.strip() == "tar"  # type: ignore[attr-defined]


def test_multi_platform_push_makes_an_index(
    tmp_path: Path, registry: Registry, base_image_tar: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    # The test base exists for one architecture; the same rootfs stands in for arm64 here,
    # which is enough to check the index (nothing is run).
    with Registries() as regs:
        amd = _plan(f"tar://{base_image_tar}", "x/y:1", b"print(1)\n", tmp_path, cache, regs)
        arm_base = amd.platforms[0].base
        arm_config = arm_base.config.with_platform(Platform.parse("linux/arm64"))
        arm_base = Image.build(arm_config, arm_base.layers, media_type=arm_base.media_type)
        plan = BuildPlan(
            platforms=(
                amd.platforms[0],
                PlatformPlan(
                    Platform.parse("linux/arm64"),
                    arm_base,
                    amd.platforms[0].layers,
                    amd.platforms[0].container,
                ),
            ),
            target=Reference.parse(f"{registry.host}/pipeline/multi:1"),
        )
        client = regs.get(registry.host, default_keychain(environ={}))
        result = containerize(plan, Outputs(push=True), cache=cache, target=client)
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{registry.host}/pipeline/multi:1",
        ],
        capture_output=True,
        check=True,
    ).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert result.digest.startswith("sha256:")
    # The shared app and dependency layers were built once, not once per platform.
    assert sum(not o.cached for o in result.layers) == 2


class _Recorder(BuildEvents):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, ...]] = []
        self.sent: dict[str, int] = {}

    def layer_done(self, outcome: LayerOutcome) -> None:
        with self.lock:
            self.calls.append(("layer", outcome.name, str(outcome.cached)))

    def blob_started(self, digest: Digest, size: int, what: str) -> None:
        with self.lock:
            self.calls.append(("start", what, str(size)))

    def blob_progress(self, digest: Digest, sent: int) -> None:
        with self.lock:
            self.sent[str(digest)] = sent

    def blob_done(self, digest: Digest, how: str) -> None:
        with self.lock:
            self.calls.append(("done", str(digest), how))


def test_events_report_layers_and_upload_bytes(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    cache = Cache(tmp_path / "cache")
    events = _Recorder()
    with Registries() as regs:
        client = regs.get(registry.host, default_keychain(environ={}))
        plan = _plan(
            base_image_ref, f"{registry.host}/pipeline/events:1", b"print(3)\n", tmp_path, cache,
            regs,
        )  # fmt: skip
        result = containerize(plan, Outputs(push=True), cache=cache, target=client, events=events)
    layers = {c[1] for c in events.calls if c[0] == "layer"}
    assert layers == {"dependencies", "application"}
    done = {c[1]: c[2] for c in events.calls if c[0] == "done"}
    started = {c[1] for c in events.calls if c[0] == "start"}
    assert {"base layer 1/1", "dependencies", "application", "config"} <= started
    # Every uploaded blob was read through to its last byte, as counted by the wrapper.
    uploaded = [o.layer for o in result.layers]
    for layer in uploaded:
        assert done[str(layer.digest)] == "uploaded"
        assert events.sent[str(layer.digest)] == layer.size
    base = plan.platforms[0].base.layers[0]
    assert done[str(base.digest)] == "mounted" and str(base.digest) not in events.sent
    assert result.blob_bytes["mounted"] == base.size
    assert result.blob_bytes["uploaded"] == result.uploaded_bytes
    # The layers and the config (whose size pyjib's summary counts in too).
    assert result.uploaded_bytes > sum(layer.size for layer in uploaded)
