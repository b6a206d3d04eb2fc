"""Issue 5's "done when" for multi-platform pushes and for builds that share a cache, through the
real ``pyjib`` command: an amd64 + arm64 index (arm64 with aarch64 wheels) that podman runs;
two builds of different projects at once on one cache; a build killed mid-push, then rerun, with
nothing corrupt left behind; live progress bars on a terminal."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from test_cli import PYJIB, copy_project, pushed_digest, pyjib, skopeo_raw
from testbed.faultproxy import FaultProxy
from testbed.registry import Registry

from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.reference import Reference
from jib.local import read_local
from jib.registry.client import Registries
from jib.registry.credentials import default_keychain
from jib.registry.push import push_index

pytestmark = pytest.mark.e2e

APP_NATIVE = Path(__file__).resolve().parent / "projects" / "app-native"
EM_X86_64, EM_AARCH64 = 62, 183


def elf_machines(blob: bytes) -> dict[str, int]:
    """``{path: e_machine}`` for every shared object in a gzipped layer."""
    machines = {}
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=io.BytesIO(blob))) as tar:
        for member in tar:
            if member.isfile() and (member.name.endswith(".so") or ".so." in member.name):
                f = tar.extractfile(member)
                assert f is not None
                header = f.read(20)
                machines[member.name] = int.from_bytes(header[18:20], "little")
    return machines


@pytest.fixture(scope="module")
def multiarch_base(registry: Registry, base_image_tar: Path) -> str:
    """The test base as a two-platform index: the real amd64 image, and the same rootfs with its
    config relabelled arm64 (never run; enough for the planner to pick aarch64 wheels)."""
    amd = read_local(f"tar://{base_image_tar}")
    arm_config = amd.config.with_platform(Platform.parse("linux/arm64"))
    arm = Image.build(arm_config, amd.layers, media_type=amd.media_type)
    ref = Reference.parse(f"{registry.host}/pyjib-test/multiarch:3.11")
    with Registries() as regs:
        push_index(regs.get(registry.host, default_keychain(environ={})), ref, [amd, arm])
    return str(ref)


def test_multi_platform_push_makes_an_index_podman_runs(
    tmp_path: Path, registry: Registry, multiarch_base: str, podman: object
) -> None:
    project = copy_project(tmp_path / "cli-app")
    image = f"{registry.host}/e2e/multi:1"
    proc = pyjib(
        "push", str(project), "--from-image", multiarch_base, "--image", image,
        "--platform", "linux/amd64", "--platform", "linux/arm64", "-q",
        cache=tmp_path / "cache",
    )  # fmt: skip
    index = skopeo_raw(image)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert pushed_digest(proc) == skopeo_digest(image)
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]]
    assert platforms == [("linux", "amd64"), ("linux", "arm64")]
    # The arm64 image's dependency layer holds aarch64 code; the amd64 one's x86-64 code.
    machines = {}
    for entry in index["manifests"]:
        manifest = skopeo_raw(f"{registry.host}/e2e/multi@{entry['digest']}")
        deps = manifest["layers"][-2]  # base..., dependencies, application
        blob = httpx.get(f"http://{registry.host}/v2/e2e/multi/blobs/{deps['digest']}").content
        machines[entry["platform"]["architecture"]] = set(elf_machines(blob).values())
    assert machines == {"amd64": {EM_X86_64}, "arm64": {EM_AARCH64}}
    podman.pull(image)  # type: ignore[attr-defined]
    assert podman.run(image).stdout.strip() == "&lt;hello&gt; from cli-app"  # type: ignore[attr-defined]


def skopeo_digest(ref: str) -> str:
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip()


def test_two_builds_of_different_projects_at_once_share_one_cache(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    cache = tmp_path / "cache"
    projects = [copy_project(tmp_path / "cli-app"), tmp_path / "app-native"]
    shutil.copytree(APP_NATIVE, projects[1])
    env = {**os.environ, "JIB_CACHE_DIR": str(cache)}
    procs = []
    for p in projects:
        argv = [PYJIB, "push", str(p), "--from-image", base_image_ref, "-q"]
        argv += ["--image", f"{registry.host}/e2e/{p.name}:1"]
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, env=env))
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "@sha256:" in out
    assert_cache_intact(cache)


def assert_cache_intact(cache: Path) -> None:
    """Every selector names a whole layer file, and no temporary file is left."""
    records = [json.loads(p.read_bytes()) for p in (cache / "selectors").glob("*.json")]
    assert records
    for record in records:
        path = cache / "layers" / record["file"]
        digest, size = Digest.of_stream(path.open("rb"))
        assert (str(digest), size) == (record["digest"], record["size"]), path
    leftovers = [
        p for p in cache.rglob("*") if p.name.startswith((".partial-", ".scratch-", ".dl-"))
    ]
    leftovers += [p for p in cache.rglob("*.tmp")]
    assert leftovers == []


def test_a_build_killed_mid_push_then_rerun_succeeds_with_nothing_corrupt(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    project = copy_project(tmp_path / "cli-app")
    # A large extra directory: a 40 MB layer of random bytes, still uploading when killed.
    (project / "blob").mkdir()
    (project / "blob" / "data.bin").write_bytes(os.urandom(40 << 20))
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[[tool.jib.extra-directories]]\nfrom = "blob"\ninto = "/data"\n')
    cache = tmp_path / "cache"
    env = {**os.environ, "JIB_CACHE_DIR": str(cache)}
    with FaultProxy(registry.host) as proxy:
        base = base_image_ref.replace(registry.host, proxy.host)
        image = f"{proxy.host}/e2e/killed:1"
        # Every blob upload hangs: the build is killed while its pushes are in flight.
        proxy.stall("PUT", r"/blobs/uploads/", 120, times=None)
        build = subprocess.Popen(
            [PYJIB, "push", str(project), "--from-image", base, "--image", image],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not any(s.outcome == "stall" for s in proxy.log):
            assert build.poll() is None, build.stderr.read() if build.stderr else ""
            assert time.monotonic() < deadline, "the push never started"
            time.sleep(0.1)
        time.sleep(0.5)
        build.send_signal(signal.SIGKILL)
        build.wait(30)
        assert build.returncode == -signal.SIGKILL
        proxy.clear()
        again = pyjib("push", str(project), "--from-image", base, "--image", image, cache=cache)
    assert "@sha256:" in again.stdout
    assert "corrupt" not in again.stderr
    manifest = skopeo_raw(f"{registry.host}/e2e/killed:1")
    assert manifest["layers"][-1]["size"] > 40 << 20
    assert_cache_intact(cache)


def test_progress_bars_on_a_terminal(
    tmp_path: Path, registry: Registry, base_image_ref: str
) -> None:
    project = copy_project(tmp_path / "cli-app")
    log = tmp_path / "tty.log"
    image = f"{registry.host}/e2e/tty:1"
    command = f"{PYJIB} push {project} --from-image {base_image_ref} --image {image}"
    env = {**os.environ, "JIB_CACHE_DIR": str(tmp_path / "cache"), "TERM": "xterm"}
    # script(1) gives pyjib a pseudo-terminal, as when a person runs it.
    subprocess.run(
        ["script", "-qec", command, str(log)], env=env, check=True, capture_output=True, timeout=600
    )
    raw = log.read_text(errors="replace")
    assert "\x1b[" in raw  # drawn live with ANSI codes
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", raw)
    assert "━" in shown  # rich's bars
    assert re.search(r"application uploaded +━+ 1\.\d/1\.\d kB", shown), shown
    assert "application uploaded" in shown and "base layer 1/1 mounted" in shown
    assert "Timings: plan" in shown
