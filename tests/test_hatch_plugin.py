"""``hatch build -t jib``: the Hatch builder, driven through the real ``hatch`` CLI.

Each test copies a project from tests/projects/ and points its ``[tool.hatch.build.targets.jib]
dependencies = ["pyjib"]`` at a wheel of this checkout, built once per session (a fresh file URL,
so hatch and uv can never install a stale build of the plugin). hatch then creates the project's
``hatch-build`` environment as it would for a user: hatchling + pyjib and its dependencies,
installed by uv (a few seconds the first time for each project directory; reused afterwards).
hatch's data (its environments) lives in a session temp dir, never the user's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testbed.podman import Podman
from testbed.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = Path(__file__).resolve().parent / "projects"
HATCH = Path(sys.executable).parent / "hatch"
APP_OUTPUT = "Hello: hatch-app says hi 2.3.4 (&lt;from package data&gt;) on 3.11"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pyjib_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout (pyjib with hatch_jib), built once per session."""
    if not HATCH.exists():
        pytest.fail(f"hatch is not installed in {HATCH.parent}: pip install hatch", pytrace=False)
    out = tmp_path_factory.mktemp("pyjib-wheel")
    subprocess.run(
        [sys.executable, "-m", "uv", "build", "--wheel", "--quiet", "-o", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("pyjib-*.whl")
    return wheel


@pytest.fixture(scope="session")
def hatch_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment hatch runs in: its own data dir, a session-wide pyjib cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIB_", "HATCH_"))}
    env.pop("VIRTUAL_ENV", None)
    data = tmp_path_factory.mktemp("hatch-data")
    env.update(
        HATCH_DATA_DIR=str(data / "data"),
        HATCH_CACHE_DIR=str(data / "cache"),
        JIB_CACHE_DIR=str(tmp_path_factory.mktemp("jib-cache")),
        NO_COLOR="1",
        HATCH_ENV_ACTIVE="",
    )
    return env


@pytest.fixture
def make_project(tmp_path: Path, pyjib_wheel: Path) -> Callable[[str], Path]:
    """``make_project("hatch-app")``: a fresh copy whose jib target installs this checkout."""

    def make(name: str) -> Path:
        project = tmp_path / name
        shutil.copytree(PROJECTS / name, project)
        pyproject = project / "pyproject.toml"
        text = pyproject.read_text()
        assert 'dependencies = ["pyjib"]' in text
        url = pyjib_wheel.as_uri()
        pyproject.write_text(text.replace('["pyjib"]', f'["pyjib @ {url}"]'))
        return project

    return make


def hatch(
    project: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(HATCH), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"hatch {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    return done


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout + done.stderr).strip().splitlines()[-1]


def set_message(project: Path, message: str) -> None:
    cli = project / "src" / "hatch_app" / "cli.py"
    cli.write_text(re.sub(r"MESSAGE = .*", f'MESSAGE = "{message}"', cli.read_text()))


def uploaded_blobs(registry: Registry, since: int) -> list[str]:
    """The digests of the blobs uploaded since ``since`` (a monolithic or chunked upload ends
    with a PUT carrying ``?digest=``)."""
    return [
        r.params["digest"][0]
        for r in registry.requests(since)
        if r.method == "PUT" and "/blobs/uploads/" in r.route and "digest" in r.params
    ]


def manifest(registry: Registry, ref: str) -> dict:
    repository, _, tag = ref.split("/", 1)[1].rpartition(":")
    accept = "application/vnd.oci.image.manifest.v1+json"
    with registry.client() as client:
        resp = client.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
        resp.raise_for_status()
        return resp.json()


# --- the builder in-process: one core build for several versions ---------------------------------


def test_versions_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hatch_jib.builder import JibBuilder

    project = tmp_path / "hatch-app"
    shutil.copytree(PROJECTS / "hatch-app", project)
    builder = JibBuilder(str(project))
    calls: list[tuple[str, tuple[str, ...]]] = []

    def fake(directory: str, versions: tuple[str, ...]) -> dict[str, str]:
        calls.append((directory, versions))
        return {"tar": f"{directory}/x-image.tar", "push": "r.example/x@sha256:0", "docker": "x"}

    monkeypatch.setattr(builder, "_build_image", fake)
    out = str(tmp_path / "out")
    artifacts = list(builder.build(directory=out, versions=["tar", "push", "tar"]))
    assert artifacts == [f"{out}/x-image.tar", "r.example/x@sha256:0"]
    assert calls == [(out, ("tar", "push"))]
    # No version given: [tool.hatch.build.targets.jib] versions, else the default, tar.
    assert list(builder.build(directory=out)) == [f"{out}/x-image.tar"]
    assert calls[-1] == (out, ("tar",))


# --- the real hatch CLI -------------------------------------------------------------------------


@pytest.mark.e2e
def test_tar_loads_and_runs(
    make_project: Callable[[str], Path],
    hatch_env: dict[str, str],
    base_image_tar: Path,
    podman: Podman,
) -> None:
    project = make_project("hatch-app")
    env = {**hatch_env, "JIB_FROM_IMAGE": f"tar://{base_image_tar}"}
    started = time.monotonic()
    done = hatch(project, env, "build", "-t", "jib")
    print(
        f"cold `hatch build -t jib` (creates hatch's build env): {time.monotonic() - started:.1f}s"
    )
    tar = project / "dist" / "hatch-app-2.3.4-image.tar"  # the dynamic version, read by hatch
    assert last_line(done) == "dist/hatch-app-2.3.4-image.tar"
    assert tar.is_file()
    # Nothing else of the build lands in dist/: the wheel went to a temp dir.
    assert not list((project / "dist").glob("*.whl"))

    names = podman.load(tar)
    assert names == ["docker.io/library/hatch-app:2.3.4"]
    assert podman.run(names[0]).stdout.strip().startswith(APP_OUTPUT)


@pytest.mark.e2e
def test_push_then_one_change_pushes_one_layer(
    make_project: Callable[[str], Path],
    hatch_env: dict[str, str],
    registry: Registry,
    base_image_ref: str,
    podman: Podman,
) -> None:
    project = make_project("hatch-app")
    image = f"{registry.host}/hatch/app:2.3.4"
    env = {**hatch_env, "JIB_TO_IMAGE": image, "JIB_FROM_IMAGE": base_image_ref}
    done = hatch(project, env, "build", "-t", "jib:push")
    pushed = last_line(done)
    assert re.fullmatch(rf"{re.escape(registry.host)}/hatch/app@sha256:[0-9a-f]{{64}}", pushed)
    digest = pushed.partition("@")[2]
    assert (project / "dist" / "jib-image.digest").read_text().strip() == digest
    info = json.loads((project / "dist" / "jib-image.json").read_text())
    assert info["imageDigest"] == digest and info["imagePushed"] is True
    assert not list((project / "dist").glob("*.tar"))  # push alone writes no tarball

    podman.pull(image)
    assert podman.run(image).stdout.strip().startswith(APP_OUTPUT)

    # One source file changes: one layer blob (the application's) and the config go up.
    wall: list[float] = []
    for i in range(6):
        set_message(project, f"changed {i}")
        since = registry.mark()
        started = time.monotonic()
        hatch(project, env, "build", "-t", "jib:push")
        wall.append(time.monotonic() - started)
        top = manifest(registry, image)
        layers = {layer["digest"] for layer in top["layers"]}
        uploaded = uploaded_blobs(registry, since)
        assert len([d for d in uploaded if d in layers]) == 1, uploaded
        assert set(uploaded) <= layers | {top["config"]["digest"]}, uploaded
    median = statistics.median(wall[1:])
    print(f"warm `hatch build -t jib:push` after a one-line change: {wall}; median {median:.2f}s")
    podman.pull(image)
    assert "changed 5" in podman.run(image).stdout


@pytest.mark.e2e
def test_hatch_and_the_pyjib_cli_build_the_same_dependency_layer(
    make_project: Callable[[str], Path],
    hatch_env: dict[str, str],
    base_image_tar: Path,
    tmp_path: Path,
) -> None:
    """The Hatch process and the ``pyjib`` CLI, each with its own empty cache, give the
    dependency layer (with its bytecode) the same digest, though the processes hold different
    modules: click is loaded in this checkout's ``pyjib`` process (``import httpx`` imports its
    CLI where click is installed), not in Hatch's build environment. (That marshal's output can
    depend on such state is shown in test_python_install.py.)"""
    from jib.local import read_local

    project = make_project("hatch-app")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('["markupsafe>=2.1"]', '["markupsafe>=2.1", "click==8.5.1"]')
    )
    base = f"tar://{base_image_tar}"
    env = {**hatch_env, "JIB_FROM_IMAGE": base, "JIB_CACHE_DIR": str(tmp_path / "hatch-cache")}
    hatch(project, env, "build", "-t", "jib")
    (from_hatch,) = (project / "dist").glob("*-image.tar")
    from_cli = tmp_path / "cli.tar"
    pyjib = str(Path(sys.executable).parent / "pyjib")
    subprocess.run(
        [pyjib, "build", str(project), "-q", "--from-image", base, "--output", str(from_cli)],
        env={**os.environ, "JIB_CACHE_DIR": str(tmp_path / "cli-cache")},
        check=True,
        capture_output=True,
    )
    hatch_image, cli_image = read_local(f"tar://{from_hatch}"), read_local(f"tar://{from_cli}")
    assert len(hatch_image.layers) == len(cli_image.layers) == 3  # base, dependencies, app
    assert hatch_image.layers[1].digest == cli_image.layers[1].digest


@pytest.mark.e2e
def test_tar_and_push_build_once(
    make_project: Callable[[str], Path],
    hatch_env: dict[str, str],
    registry: Registry,
    base_image_ref: str,
) -> None:
    project = make_project("hatch-app")
    image = f"{registry.host}/hatch/both:2.3.4"
    env = {**hatch_env, "JIB_TO_IMAGE": image, "JIB_FROM_IMAGE": base_image_ref}
    done = hatch(project, env, "build", "-t", "jib:tar,push")
    out = done.stdout + done.stderr
    assert out.count("Built ") == 1, out  # one build, two deliveries
    lines = out.strip().splitlines()
    assert "dist/hatch-app-2.3.4-image.tar" in lines
    assert lines[-1].startswith(f"{registry.host}/hatch/both@sha256:")
    assert (project / "dist" / "hatch-app-2.3.4-image.tar").is_file()


@pytest.mark.e2e
def test_docker_loads_into_podman_without_docker(
    make_project: Callable[[str], Path],
    hatch_env: dict[str, str],
    base_image_tar: Path,
    podman: Podman,
    tmp_path: Path,
) -> None:
    """No Docker engine (this machine has a docker client and no daemon; a stub makes that
    certain): the image goes into podman, here the test bed's private store."""
    project = make_project("hatch-app")
    tools = tmp_path / "bin"
    tools.mkdir()
    docker = tools / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    env = {
        **hatch_env,
        **podman_env(podman, tmp_path),
        "PATH": f"{tools}{os.pathsep}{hatch_env['PATH']}",
        "JIB_FROM_IMAGE": f"tar://{base_image_tar}",
    }
    done = hatch(project, env, "build", "-t", "jib:docker")
    assert last_line(done) == "docker.io/library/hatch-app:2.3.4 (loaded into podman)"
    assert "docker.io/library/hatch-app:2.3.4" in podman.image_names()
    assert not (project / "dist" / "hatch-app-2.3.4-image.tar").exists()
    assert podman.run("docker.io/library/hatch-app:2.3.4").stdout.startswith(APP_OUTPUT)


def podman_env(podman: Podman, tmp_path: Path) -> dict[str, str]:
    """Environment variables that make a plain ``podman`` use ``podman``'s private store."""
    flags = dict(arg[2:].split("=", 1) for arg in podman.global_args[1:] if "=" in arg)
    storage = tmp_path / "storage.conf"
    storage.write_text(
        "[storage]\n"
        f'driver = "{flags["storage-driver"]}"\n'
        f'graphroot = "{flags["root"]}"\n'
        f'runroot = "{flags["runroot"]}"\n'
    )
    containers = tmp_path / "containers.conf"
    containers.write_text(
        "[engine]\n"
        f'cgroup_manager = "{flags["cgroup-manager"]}"\n'
        f'events_logger = "{flags["events-backend"]}"\n'
        f'tmp_dir = "{flags["tmpdir"]}"\n'
        "[network]\n"
        f'network_config_dir = "{flags["network-config-dir"]}"\n'
    )
    return {"CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_CONF": str(containers)}


# --- configuration errors: one line, no traceback, nothing in dist/ ---------------------------


@pytest.fixture(scope="module")
def broken_project(tmp_path_factory: pytest.TempPathFactory, pyjib_wheel: Path) -> Iterator[Path]:
    """One copy for all the error cases, so hatch creates its build env once."""
    project = tmp_path_factory.mktemp("broken") / "hatch-app"
    shutil.copytree(PROJECTS / "hatch-app", project)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('["pyjib"]', f'["pyjib @ {pyjib_wheel.as_uri()}"]')
    )
    yield project


GOOD_CONTAINER = (
    '[tool.jib.container]\nenvironment = { APP_GREETING = "Hello" }\nports = ["8000"]\n'
)


@pytest.mark.parametrize(
    ("replacement", "env", "expected"),
    [
        pytest.param(
            GOOD_CONTAINER.replace("container", "contianer"),
            {},
            r"contianer.*did you mean .*container",
            id="misspelled-key",
        ),
        pytest.param(
            GOOD_CONTAINER.replace('["8000"]', "8000"),
            {},
            r"\[tool\.jib\.container\] ports.*",
            id="wrong-type",
        ),
        pytest.param(
            GOOD_CONTAINER + '[tool.jib.to]\nimage = "Registry.example.com/UPPER Case!"\n',
            {},
            r"\[tool\.jib\.to\] image",
            id="bad-image-in-pyproject",
        ),
        pytest.param(
            GOOD_CONTAINER,
            {"JIB_TO_IMAGE": "bad//image::ref"},
            r"JIB_TO_IMAGE",
            id="bad-image-in-env",
        ),
    ],
)
def test_config_errors_are_one_line(
    broken_project: Path,
    hatch_env: dict[str, str],
    replacement: str,
    env: dict[str, str],
    expected: str,
) -> None:
    pyproject = broken_project / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("[tool.jib.container]")
    pyproject.write_text(text[:start] + replacement)
    shutil.rmtree(broken_project / "dist", ignore_errors=True)
    try:
        done = hatch(
            broken_project, {**hatch_env, **env}, "build", "-t", "jib:tar,push", check=False
        )
    finally:
        pyproject.write_text(text)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("pyjib: error:")]
    assert len(errors) == 1, output
    assert re.search(expected, errors[0]), errors[0]
    dist = broken_project / "dist"
    assert not dist.exists() or not [p.name for p in dist.iterdir() if ".tar" in p.name]


def test_unknown_version_is_one_line(broken_project: Path, hatch_env: dict[str, str]) -> None:
    done = hatch(broken_project, hatch_env, "build", "-t", "jib:tar,bogus", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    assert "pyjib: error: unknown version bogus for target `jib`" in output
