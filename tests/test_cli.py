"""Issue 5's "done when", through the real ``pyjib`` command a user types, against docker-registry
and podman: reproducible digests (empty cache, another checkout path), a one-file change that
uploads one layer and the config with no base layer downloaded (a base whose config states its
Python, or [tool.jib.python] stating it), a bare base read once into the same image, a truncated
cache entry rebuilt, ``pyjib inspect`` of a pushed image and of a tarball, ``pyjib docker`` into
podman, and ``pyjib cache``."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from test_registry_pull import client_for
from testbed.registry import Registry

from jib.cache.prune import total_size
from jib.image import mediatypes
from jib.image.digest import Digest
from jib.image.layer import BlobLayer
from jib.image.mutate import append_layers, with_config
from jib.image.reference import Reference

pytestmark = pytest.mark.e2e

PYJIB = str(Path(sys.executable).parent / "pyjib")
CLI_APP = Path(__file__).resolve().parent / "projects" / "cli-app"


def pyjib(
    *args: str, cache: Path, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``pyjib`` as a user would (stderr a pipe, so plain log lines), with its own cache."""
    proc = subprocess.run(
        [PYJIB, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "JIB_CACHE_DIR": str(cache), **(env or {})},
        timeout=600,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"pyjib {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def copy_project(dest: Path) -> Path:
    shutil.copytree(CLI_APP, dest, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    return dest


def pushed_digest(proc: subprocess.CompletedProcess[str]) -> str:
    """The digest of ``name@sha256:...``, the line ``pyjib push -q`` prints."""
    (line,) = [x for x in proc.stdout.splitlines() if "@sha256:" in x]
    return line.rsplit("@", 1)[1]


def skopeo_raw(ref: str) -> dict:
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(raw)


def base_layer_digests(base_ref: str) -> set[str]:
    return {layer["digest"] for layer in skopeo_raw(base_ref)["layers"]}


def blob_gets(registry: Registry, since: int) -> set[str]:
    return {
        r.route.rsplit("/", 1)[1]
        for r in registry.requests(since)
        if r.method == "GET" and "/blobs/sha256:" in r.route
    }


def committed_uploads(registry: Registry, since: int) -> list[str]:
    """Digests of blob uploads committed since ``since`` (the PUT that ends a session)."""
    return [
        r.params["digest"][0]
        for r in registry.requests(since)
        if r.method == "PUT" and "/blobs/uploads/" in r.route and r.status == 201
    ]


def test_rebuild_with_empty_cache_and_from_another_checkout_gives_the_same_digest(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    image = f"{registry.host}/cli/repro:1"
    first = copy_project(tmp_path / "checkout-a" / "cli-app")
    push = ("push", "--from-image", base_image_ref, "--image", image, "-q")
    digest = pushed_digest(pyjib(*push, str(first), cache=tmp_path / "cache-1"))
    # The same checkout, every cache gone (layers, wheels, the project's wheel).
    again = pushed_digest(pyjib(*push, str(first), cache=tmp_path / "cache-2"))
    # Another checkout of the same project somewhere else, its files written at other times.
    other = copy_project(tmp_path / "elsewhere" / "deeper" / "cli-app")
    for path in other.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    moved = pushed_digest(pyjib(*push, str(other), cache=tmp_path / "cache-3"))
    assert digest.startswith("sha256:")
    assert again == digest
    assert moved == digest


#: What a user writes when the base (here the test bed's bare Debian image, whose config names
#: its distribution but not its Python) should never be downloaded to learn its Python.
STATED_PYTHON = '\n[tool.jib.python]\nversion = "3.11.2"\nexecutable = "/usr/bin/python3.11"\n'


def test_one_changed_source_file_uploads_one_layer_and_the_config(
    tmp_path: Path, registry: Registry, base_image_ref: str, podman: object
) -> None:
    project = copy_project(tmp_path / "cli-app")
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write(STATED_PYTHON)
    cache = tmp_path / "cache"
    image = f"{registry.host}/cli/incremental:1"
    push = ("push", str(project), "--from-image", base_image_ref, "--image", image)
    base_layers = base_layer_digests(base_image_ref)

    since = registry.mark()
    first = pyjib(*push, cache=cache)
    first_uploads = committed_uploads(registry, since)
    first_gets = blob_gets(registry, since)

    source = project / "src" / "cli_app" / "__init__.py"
    source.write_text(source.read_text().replace('"hello"', '"hello again"'))
    since = registry.mark()
    second = pyjib(*push, cache=cache)
    logged = registry.requests(since)
    second_uploads = committed_uploads(registry, since)

    # First push: the dependency and application layers and the config; the base was mounted.
    assert len(first_uploads) == 3, first.stderr
    assert "mounted from pyjib-test/python" in first.stderr
    # Second push: exactly one layer blob (the application) and the config, then the manifest.
    config = skopeo_raw(image)["config"]["digest"]
    assert len(second_uploads) == 2 and config in second_uploads, second.stderr
    assert not set(second_uploads) & base_layers
    manifests = [r for r in logged if r.method == "PUT" and "/manifests/" in r.route]
    assert len(manifests) == 1
    # Neither push downloaded a base layer: not in the registry's log, not in the cache.
    assert not first_gets & base_layers, first.stderr
    assert not blob_gets(registry, since) & base_layers
    assert list((cache / "blobs" / "sha256").iterdir()) == []
    assert "reading the base image's layers" not in first.stderr + second.stderr
    # The closing summary says what happened, in blobs, bytes and phase timings.
    assert "1 layer(s) built" in second.stdout and "1 reused" in second.stdout
    assert "2 uploaded" in second.stdout and "exists" in second.stdout
    assert "Timings: plan" in second.stdout and "push" in second.stdout
    podman.pull(image)  # type: ignore[attr-defined]
    assert podman.run(image).stdout.strip() == "&lt;hello again&gt; from cli-app"  # type: ignore[attr-defined]


def test_a_base_that_does_not_state_its_python_is_read_once_into_the_same_image(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    base_layers = base_layer_digests(base_image_ref)
    bare = copy_project(tmp_path / "bare" / "cli-app")
    stated = copy_project(tmp_path / "stated" / "cli-app")
    with (stated / "pyproject.toml").open("a") as pyproject:
        pyproject.write(STATED_PYTHON)
    cache = tmp_path / "cache"
    push = ("push", "--from-image", base_image_ref)

    since = registry.mark()
    found = pyjib(*push, str(bare), "--image", f"{registry.host}/cli/bare:1", cache=cache)
    # Nothing says which Python the base has: its layers are read, once, and say so.
    assert blob_gets(registry, since) & base_layers
    assert "reading the base image's layers" in found.stderr
    since = registry.mark()
    again = pyjib(*push, str(bare), "--image", f"{registry.host}/cli/bare:2", "-q", cache=cache)
    assert not blob_gets(registry, since) & base_layers
    # Stating the same facts gives the very same image, with an empty cache and no download.
    since = registry.mark()
    said = pyjib(
        *push, str(stated), "--image", f"{registry.host}/cli/stated:1", "-q", cache=tmp_path / "c2"
    )
    assert not blob_gets(registry, since) & base_layers
    assert pushed_digest(found) == pushed_digest(again) == pushed_digest(said)


def official_style_base(registry: Registry, base_ref: str) -> str:
    """The test bed's base reshaped like ``python:3.11-slim``: its interpreter also in
    /usr/local/bin (links to Debian's, as the official image has its own there), and
    ``PYTHON_VERSION`` and a PATH starting with /usr/local/bin in its config. Pushed beside it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, target in (
            ("usr/local/bin/python3.11", "/usr/bin/python3.11"),
            ("usr/local/bin/python3", "python3.11"),
            ("usr/local/bin/python", "python3"),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    data = raw.getvalue()
    blob = gzip.compress(data, mtime=0)
    links = BlobLayer(
        Digest.of_bytes(blob),
        Digest.of_bytes(data),
        len(blob),
        mediatypes.OCI_LAYER_GZIP,
        lambda: io.BytesIO(blob),
    )
    env = {
        "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHON_VERSION": "3.11.2",
    }
    ref = Reference.parse(f"{registry.host}/pyjib-test/python:3.11-official-style")
    with client_for(registry) as client:
        base = client.pull_image(Reference.parse(base_ref))
        shaped = append_layers(base, [(links, {"created_by": "RUN ln -s ... # buildkit"})])
        shaped = with_config(shaped, lambda config: config.with_env(env))
        client.push_image(ref, shaped)
    return str(ref)


def test_an_official_style_base_is_never_downloaded_and_the_image_runs(
    tmp_path: Path, registry: Registry, base_image_ref: str, podman: object
) -> None:
    base = official_style_base(registry, base_image_ref)
    base_layers = base_layer_digests(base)
    project = copy_project(tmp_path / "cli-app")  # nothing about Python in [tool.jib]
    cache = tmp_path / "cache"
    image = f"{registry.host}/cli/official-style:1"
    since = registry.mark()
    pushed = pyjib("push", str(project), "--from-image", base, "--image", image, cache=cache)
    assert not blob_gets(registry, since) & base_layers, pushed.stderr
    assert list((cache / "blobs" / "sha256").iterdir()) == []
    assert "reading the base image's layers" not in pushed.stderr
    podman.pull(image)  # type: ignore[attr-defined]
    assert podman.run(image).stdout.strip() == "&lt;hello&gt; from cli-app"  # type: ignore[attr-defined]


def test_a_truncated_cache_entry_is_detected_and_rebuilt(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    project = copy_project(tmp_path / "cli-app")
    cache = tmp_path / "cache"
    out = tmp_path / "image.tar"
    build = ("build", str(project), "--from-image", base_image_ref, "--output", str(out))
    first = pyjib(*build, cache=cache)
    first_tar = out.read_bytes()
    for layer in (cache / "layers").glob("*.tar.gz"):
        data = layer.read_bytes()
        layer.write_bytes(data[: len(data) // 2])
    out.unlink()
    second = pyjib(*build, cache=cache)
    assert "corrupt" in second.stderr and "rebuilding" in second.stderr
    assert "2 layer(s) built" in second.stdout, second.stdout
    assert out.read_bytes() == first_tar  # the same image, byte for byte
    assert "corrupt" not in first.stderr
    # And the rebuilt entries are whole: a third build finds both in the cache.
    third = pyjib(*build, cache=cache)
    assert "0 layer(s) built" in third.stdout and "corrupt" not in third.stderr


def test_inspect_a_pushed_image_and_a_tarball(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    project = copy_project(tmp_path / "cli-app")
    cache = tmp_path / "cache"
    image = f"{registry.host}/cli/inspect:1"
    tar = tmp_path / "image.tar"
    pyjib("push", str(project), "--from-image", base_image_ref, "--image", image, cache=cache)
    pyjib("build", str(project), "--from-image", base_image_ref, "--output", str(tar), cache=cache)
    base_layer = sorted(base_layer_digests(base_image_ref))[0]
    for spec in (image, str(tar)):
        shown = pyjib("inspect", spec, cache=cache).stdout
        assert "linux/amd64" in shown, shown
        # Layers: digest, size, and what each holds (the base's, then pyjib's).
        layer_lines = [line for line in shown.splitlines() if line.strip().startswith("layer ")]
        assert len(layer_lines) == 3, shown
        assert base_layer[:19] in layer_lines[0]
        assert layer_lines[1].rstrip().endswith("dependencies")
        assert layer_lines[2].rstrip().endswith("application")
        assert all(("KB" in line or "MB" in line) for line in layer_lines)
        # The config.
        assert '"/app/.venv/bin/cli-app"' in shown
        assert "org.opencontainers.image.title" in shown and "VIRTUAL_ENV" in shown
        info = json.loads(pyjib("inspect", spec, "--json", cache=cache).stdout)
        (platform,) = info["platforms"]
        assert platform["platform"] == "linux/amd64"
        assert [layer["holds"] for layer in platform["layers"]][1:] == [
            "dependencies",
            "application",
        ]
        assert all(layer["size"] > 0 for layer in platform["layers"])
        assert platform["config"]["entrypoint"] == ["/app/.venv/bin/cli-app"]


def test_pyjib_docker_loads_into_podman_when_docker_has_no_engine(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    project = copy_project(tmp_path / "cli-app")
    storage = tmp_path / "podman"
    (storage / "root").mkdir(parents=True)
    (storage / "run").mkdir()
    (storage / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{storage / "root"}"\n'
        f'runroot = "{storage / "run"}"\n'
    )
    (storage / "containers.conf").write_text(
        '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n'
    )
    env = {
        "CONTAINERS_STORAGE_CONF": str(storage / "storage.conf"),
        "CONTAINERS_CONF": str(storage / "containers.conf"),
    }
    ref = "localhost/cli/docker-load:1.0"
    proc = pyjib(
        "docker", str(project), "--from-image", base_image_ref, "--image", ref, "-t", "extra",
        cache=tmp_path / "cache", env=env,
    )  # fmt: skip
    assert f"Loaded {ref} into podman" in proc.stdout, proc.stdout + proc.stderr
    images = subprocess.run(
        ["podman", "images", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    names = {name for image in json.loads(images) for name in image.get("Names") or []}
    assert {ref, "localhost/cli/docker-load:extra"} <= names
    subprocess.run(
        ["podman", "rmi", "--all", "--force"], capture_output=True, env={**os.environ, **env}
    )


def test_cache_commands(tmp_path: Path, registry: Registry, base_image_ref: str) -> None:
    cache = tmp_path / "cache"
    assert pyjib("cache", "dir", cache=cache).stdout.strip() == str(cache)
    project = copy_project(tmp_path / "cli-app")
    tar = tmp_path / "image.tar"
    pyjib("build", str(project), "--from-image", base_image_ref, "--output", str(tar), cache=cache)
    size = pyjib("cache", "size", cache=cache).stdout
    assert "cap 5.0 GB" in size and str(cache) in size
    # A build that ends over the cap prunes down to it (the base layer it downloaded for the
    # tarball is most of the cache: it has to go, with the older entries before it).
    blobs = list((cache / "blobs" / "sha256").iterdir())
    assert blobs and total_size(cache) > 5 * 10**6
    capped = pyjib(
        "build", str(project), "--from-image", base_image_ref, "--output", str(tar),
        cache=cache, env={"JIB_CACHE_MAX_SIZE": "5MB"},
    )  # fmt: skip
    assert "least-recently-used" in capped.stderr
    assert not any(path.exists() for path in blobs)
    assert total_size(cache) <= 5 * 10**6
    # Without a cap to hit, the next build rebuilds what was evicted and reuses the rest.
    pyjib("build", str(project), "--from-image", base_image_ref, "--output", str(tar), cache=cache)
    assert any((cache / "layers").glob("*.tar.gz"))
    pruned = pyjib("cache", "prune", "--all", cache=cache).stdout
    assert pruned.startswith("Removed ") and "0 B in" in pruned
    assert not any((cache / "layers").glob("*.tar.gz"))
    bad = pyjib("cache", "prune", "--max-size", "lots", cache=cache, check=False)
    assert bad.returncode == 1 and "--max-size" in bad.stderr
    assert "JIB_CACHE_MAX_SIZE" in pyjib("--help", cache=cache).stdout
