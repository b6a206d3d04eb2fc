"""Issue 4's "done when" for installation, layers and entrypoint: a project with a native
(markupsafe) and a pure (six) dependency becomes an image on the Debian base that runs its
console script under Podman; built for linux/arm64 on this x86_64 host, its libraries are
aarch64 ones.

Dependency wheels are resolved with uv for the target and fetched by jib.python.wheels.
"""

from __future__ import annotations

import gzip
import tarfile
import time
from pathlib import Path

import pytest

from jib.image import mutate
from jib.image.descriptor import Platform
from jib.image.reference import Reference
from jib.local import read_local, tarball
from jib.python import wheels
from jib.python.entrypoint import infer_entrypoint
from jib.python.layers import APPLICATION, DEPENDENCIES, container_env, python_layers
from jib.python.project import ProjectWheel, load_project
from jib.python.resolve import load_dependencies
from jib.python.target import TargetPython

pytestmark = pytest.mark.e2e

APP_NATIVE = Path(__file__).resolve().parent / "projects" / "app-native"
#: ELF e_machine values.
EM_X86_64 = 62
EM_AARCH64 = 183
HISTORY_CREATED = "1970-01-01T00:00:00Z"

# The Debian 12 base of tests/testbed/baseimage.py: Python 3.11.2 at /usr/bin/python3.11.
DEBIAN_PYTHON = {
    "version": (3, 11, 2),
    "executable": "/usr/bin/python3.11",
    "libc": ("glibc", (2, 36)),
}


def debian_target(arch: str) -> TargetPython:
    return TargetPython(platform=Platform("linux", arch), **DEBIAN_PYTHON)  # type: ignore[arg-type]


def fetch_wheels(project_dir: Path, target: TargetPython, cache: Path) -> list[Path]:
    """The project's dependencies resolved and fetched for ``target``, as a build does it."""
    lockset = load_dependencies(project_dir, target=target, cache_dir=cache)
    return [w.path for w in wheels.fetch_wheels(lockset, target, cache_dir=cache)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> ProjectWheel:
    return load_project(APP_NATIVE, tmp_path_factory.mktemp("project-wheel"))


def elf_machines(layer: Path) -> dict[str, int]:
    """``{path: e_machine}`` for every ``.so`` in a layer, read from the ELF header."""
    machines = {}
    with gzip.open(layer) as raw, tarfile.open(fileobj=raw) as tar:
        for member in tar:
            if member.isfile() and (member.name.endswith(".so") or ".so." in member.name):
                f = tar.extractfile(member)
                assert f is not None
                header = f.read(20)
                assert header[:4] == b"\x7fELF", member.name
                order: str = "little" if header[5] == 1 else "big"
                machines[member.name] = int.from_bytes(header[18:20], order)  # type: ignore[arg-type]
    return machines


def test_native_app_runs_from_its_console_script(
    tmp_path: Path, project: ProjectWheel, base_image_tar: Path, podman: object
) -> None:
    target = debian_target("amd64")
    started = time.perf_counter()
    wheels = fetch_wheels(APP_NATIVE, target, tmp_path / "cache")
    assert {w.name.split("-")[0].lower() for w in wheels} == {"markupsafe", "six"}
    layers = python_layers(
        target,
        dependency_wheels=wheels,
        project_wheel=project.path,
        out_dir=tmp_path / "layers",
    )
    assert [layer.name for layer in layers.layers] == [DEPENDENCIES, APPLICATION]
    dep_layer = layers.get(DEPENDENCIES)
    assert dep_layer is not None
    machines = elf_machines(dep_layer.layer.path)
    assert machines and set(machines.values()) == {EM_X86_64}

    entrypoint = infer_entrypoint(project.scripts, project.packages, project.has_main)
    assert entrypoint == ["/app/.venv/bin/app-native"]
    base = read_local(f"tar://{base_image_tar}")
    image = mutate.append_layers(
        base,
        [(layer, {"created": HISTORY_CREATED, **history}) for layer, history in layers.additions()],
    )
    image = mutate.with_config(
        image,
        lambda c: (
            c.with_entrypoint(entrypoint)
            .with_cmd(None)
            .with_env(container_env(target, "/app", c.env))
            .with_working_dir("/app")
        ),
    )
    ref = Reference.parse("localhost/pyjib-test/app-native:1.0.0")
    out = tmp_path / "app-native-image.tar"
    tarball.write_image(out, image, [ref])
    built = time.perf_counter() - started

    assert str(ref) in podman.load(out)  # type: ignore[attr-defined]
    result = podman.run(str(ref))  # type: ignore[attr-defined]
    assert result.stdout.splitlines() == [
        "escaped: &lt;b&gt;",
        "six: six True",
        "native: _speedups.cpython-311-x86_64-linux-gnu.so",
        "data: hello from package data",
        "prefix: /app/.venv",
    ], result.stderr
    # The venv is an ordinary environment to tools inside the image, its python comes first on
    # PATH, and a non-root user can use it (modes 0644/0755, nothing written at import).
    meta = podman.run(  # type: ignore[attr-defined]
        str(ref),
        "-c",
        "import importlib.metadata as m, shutil; "
        "print(m.version('app-native'), m.distribution('six').read_text('INSTALLER').strip(), "
        "shutil.which('python'))",
        extra=["--entrypoint", "python", "--user", "65534:65534", "--read-only"],
    )
    assert meta.stdout.split() == ["1.0.0", "pyjib", "/app/.venv/bin/python"]
    config = podman.inspect(str(ref))["Config"]  # type: ignore[attr-defined]
    assert config["Entrypoint"] == entrypoint
    assert "VIRTUAL_ENV=/app/.venv" in config["Env"]
    assert "PYTHONUNBUFFERED=1" in config["Env"]
    print(f"wheels fetched, layers built, image written in {built:.2f}s")


def test_arm64_build_on_x86_64_carries_aarch64_libraries(
    tmp_path: Path, project: ProjectWheel
) -> None:
    target = debian_target("arm64")
    wheels = fetch_wheels(APP_NATIVE, target, tmp_path / "cache")
    assert any("aarch64" in w.name for w in wheels)
    layers = python_layers(
        target,
        dependency_wheels=wheels,
        project_wheel=project.path,
        out_dir=tmp_path / "layers",
    )
    dep_layer = layers.get(DEPENDENCIES)
    assert dep_layer is not None
    machines = elf_machines(dep_layer.layer.path)
    assert machines, "expected markupsafe's compiled extension in the dependency layer"
    assert all(machine == EM_AARCH64 for machine in machines.values()), machines
    assert EM_X86_64 not in machines.values()
    app_layer = layers.get(APPLICATION)
    assert app_layer is not None and not elf_machines(app_layer.layer.path)
