"""A Python project as dependency / local-dependency / application layers (jib.python.layers)
and the project's own wheel built by its backend (jib.python.project)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from test_python_install import make_wheel, target

from jib.cache import Cache
from jib.errors import JibError
from jib.pipeline.assemble import build_planned
from jib.python.layers import (
    APPLICATION,
    DEPENDENCIES,
    LOCAL_DEPENDENCIES,
    container_env,
    python_layer_plans,
    python_layers,
)
from jib.python.project import load_project

ROOT = Path(__file__).resolve().parents[1]
APP_NATIVE = ROOT / "tests" / "projects" / "app-native"
SITE = "app/.venv/lib/python3.11/site-packages"


def layer_members(path: Path) -> dict[str, tarfile.TarInfo]:
    with gzip.open(path) as raw, tarfile.open(fileobj=raw) as tar:
        return {member.name: member for member in tar.getmembers()}


def stdlib_wheel(directory: Path, name: str, packages: tuple[str, ...]) -> Path:
    """A wheel carrying real stdlib packages under another name: plenty of varied code
    (sets, f-strings, nested functions) for bytecode determinism."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = {}
    for package in packages:
        for source in sorted((stdlib / package).glob("*.py")):
            files[f"{name}/{package}/{source.name}"] = source.read_bytes()
    files[f"{name}/__init__.py"] = b""
    return make_wheel(directory, name, "1.0", files)


def deps(directory: Path) -> list[Path]:
    return [
        make_wheel(directory, "six", "1.17.0", {"six.py": b"PY3 = True\n"}),
        make_wheel(
            directory,
            "markupsafe",
            "3.0.2",
            {"markupsafe/__init__.py": b"", "markupsafe/_speedups.so": b"\x7fELF"},
            tag="cp311-cp311-manylinux_2_17_x86_64",
            purelib=False,
        ),
    ]


def test_layers_bottom_to_top_each_with_its_own_files(tmp_path: Path) -> None:
    project = make_wheel(
        tmp_path / "p",
        "my-app",
        "1.0",
        {"my_app/__init__.py": b""},
        entry_points="[console_scripts]\nmy-app = my_app:main\n",
    )
    local = make_wheel(tmp_path / "l", "my-lib", "0.1", {"my_lib/__init__.py": b""})
    layers = python_layers(
        target(),
        dependency_wheels=deps(tmp_path / "d"),
        local_wheels=[local],
        project_wheel=project,
        out_dir=tmp_path / "out",
    )
    assert [layer.name for layer in layers.layers] == [
        DEPENDENCIES,
        LOCAL_DEPENDENCIES,
        APPLICATION,
    ]
    assert [h["comment"] for _, h in layers.additions()] == [
        "dependencies",
        "local-dependencies",
        "application",
    ]
    dep = layer_members(layers.layers[0].layer.path)
    assert {"app/.venv/pyvenv.cfg", f"{SITE}/six.py", f"{SITE}/markupsafe/_speedups.so"} <= set(dep)
    assert dep["app/.venv/bin/python3.11"].linkname == "/usr/bin/python3.11"
    assert not any("my_app" in name or "my_lib" in name for name in dep)
    loc = layer_members(layers.layers[1].layer.path)
    assert f"{SITE}/my_lib/__init__.py" in loc and "app/.venv/pyvenv.cfg" not in loc
    app = layer_members(layers.layers[2].layer.path)
    assert f"{SITE}/my_app/__init__.py" in app and "app/.venv/bin/my-app" in app
    assert app["app/.venv/bin/my-app"].mode == 0o755
    assert not any("six" in name for name in app)


def test_empty_layers_are_dropped_but_the_venv_skeleton_stays(tmp_path: Path) -> None:
    layers = python_layers(
        target(), dependency_wheels=[], project_wheel=None, out_dir=tmp_path / "out"
    )
    assert [layer.name for layer in layers.layers] == [DEPENDENCIES]
    assert "app/.venv/pyvenv.cfg" in layer_members(layers.layers[0].layer.path)
    assert layers.get(APPLICATION) is None


_REBUILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_python_install import target
from jib.python.layers import python_layers
wheels = [Path(p) for p in json.loads(sys.argv[3])]
layers = python_layers(target(), dependency_wheels=wheels, project_wheel=Path(sys.argv[4]),
                       out_dir=Path(sys.argv[2]))
print(json.dumps({l.name: str(l.layer.digest) for l in layers.layers}))
"""


def test_same_wheels_same_digests_in_two_fresh_processes(tmp_path: Path) -> None:
    wheels = [
        stdlib_wheel(tmp_path / "w", "vendored_a", ("json", "email", "asyncio")),
        stdlib_wheel(tmp_path / "w", "vendored_b", ("importlib", "concurrent/futures")),
        *deps(tmp_path / "w"),
    ]
    project = make_wheel(tmp_path / "p", "app", "1.0", {"app/__main__.py": b"print(1)\n"})
    results = []
    for run, seed in enumerate(("0", "12345")):
        # Different hash seeds and out dirs (so no memo): digests may only depend on inputs.
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _REBUILD,
                str(Path(__file__).parent),
                str(tmp_path / f"out{run}"),
                json.dumps([str(w) for w in wheels]),
                str(project),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        results.append(json.loads(out.stdout))
    assert results[0] == results[1]
    if sys.implementation.cache_tag == "cpython-311":  # bytecode was part of what matched
        dep = next((tmp_path / "out0").rglob(results[0][DEPENDENCIES].split(":")[1] + "*"))
        assert any(name.endswith(".cpython-311.pyc") for name in layer_members(dep))


def _build_layers(project_dir: Path, dep_wheels: list[Path], out: Path) -> dict[str, Path]:
    project = load_project(project_dir, out / "wheel")
    layers = python_layers(
        target(), dependency_wheels=dep_wheels, project_wheel=project.path, out_dir=out / "layers"
    )
    return {layer.name: layer.layer.path for layer in layers.layers}


def test_version_bump_and_code_change_only_touch_the_application_layer(tmp_path: Path) -> None:
    project_dir = tmp_path / "app-native"
    shutil.copytree(APP_NATIVE, project_dir)
    dep_wheels = deps(tmp_path / "deps")
    first = _build_layers(project_dir, dep_wheels, tmp_path / "v1")

    pyproject = project_dir / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
    bumped = _build_layers(project_dir, dep_wheels, tmp_path / "v2")
    # Built afresh in another out dir (no memo): same name, same bytes.
    assert bumped[DEPENDENCIES].name == first[DEPENDENCIES].name
    assert bumped[DEPENDENCIES].read_bytes() == first[DEPENDENCIES].read_bytes()
    assert bumped[APPLICATION].name != first[APPLICATION].name

    cli = project_dir / "src" / "app_native" / "cli.py"
    cli.write_text(cli.read_text().replace("escaped:", "escaped now:"))
    changed = _build_layers(project_dir, dep_wheels, tmp_path / "v3")
    assert changed[DEPENDENCIES].read_bytes() == first[DEPENDENCIES].read_bytes()
    assert changed[APPLICATION].name not in (first[APPLICATION].name, bumped[APPLICATION].name)


def test_unchanged_layers_are_reused_and_a_code_change_rebuilds_fast(tmp_path: Path) -> None:
    dep_wheels = [stdlib_wheel(tmp_path / "w", "big", ("email", "json", "asyncio"))]
    project_v1 = make_wheel(tmp_path / "p1", "app", "1.0", {"app/__main__.py": b"print(1)\n"})
    project_v2 = make_wheel(tmp_path / "p2", "app", "1.0", {"app/__main__.py": b"print(2)\n"})
    out = tmp_path / "out"
    first = python_layers(
        target(), dependency_wheels=dep_wheels, project_wheel=project_v1, out_dir=out
    )

    first_deps = first.get(DEPENDENCIES)
    assert first_deps is not None
    written = first_deps.layer.path.stat().st_mtime_ns
    second = python_layers(
        target(), dependency_wheels=dep_wheels, project_wheel=project_v2, out_dir=out
    )
    # The dependency layer came from the cache, not a rebuild: the very same file, untouched.
    assert second.get(DEPENDENCIES) == first_deps
    assert first_deps.layer.path.stat().st_mtime_ns == written
    assert second.get(APPLICATION) != first.get(APPLICATION)

    # A memo whose blob has gone is not trusted: the layer is built again, identically.
    dep_layer = first.get(DEPENDENCIES)
    assert dep_layer is not None
    dep_layer.layer.path.unlink()
    third = python_layers(
        target(), dependency_wheels=dep_wheels, project_wheel=project_v1, out_dir=out
    )
    assert third.get(DEPENDENCIES) == dep_layer and dep_layer.layer.path.is_file()


def test_container_env_puts_the_venv_first_and_keeps_the_base() -> None:
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "0"}
    env = container_env(target(), "/app", base)
    assert env == {
        "PATH": "/app/.venv/bin:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "0",  # the base chose; ours is only a default
        "VIRTUAL_ENV": "/app/.venv",
    }
    again = container_env(target(), "/app", env)
    assert again["PATH"] == env["PATH"]  # not listed twice on a pyjib-built base
    bare = container_env(target(), "/srv")
    assert bare["PATH"].startswith("/srv/.venv/bin:/usr/local/sbin:")
    assert bare["PYTHONUNBUFFERED"] == "1" and bare["VIRTUAL_ENV"] == "/srv/.venv"


@pytest.mark.parametrize("wheel_given", [True, False])
def test_load_project_reads_the_built_or_given_wheel(tmp_path: Path, wheel_given: bool) -> None:
    given = make_wheel(tmp_path / "given", "app-native", "9.9", requires=("six",))
    project = load_project(APP_NATIVE, tmp_path / "out", wheel=given if wheel_given else None)
    if wheel_given:
        assert (project.version, project.requires_dist) == ("9.9", ("six",))
        return
    assert project.path.parent == tmp_path / "out"
    assert (project.name, project.version) == ("app-native", "1.0.0")
    assert project.requires_dist == ("markupsafe>=2.1", "six>=1.16")
    assert project.scripts == {"app-native": "app_native.cli:main"}
    assert project.packages == ("app_native",) and project.is_pure


def test_backend_failure_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    project_dir = tmp_path / "broken"
    shutil.copytree(APP_NATIVE, project_dir)
    pyproject = project_dir / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six>=1.16"', '"six >= = 1"'))
    with pytest.raises(JibError) as err:
        load_project(project_dir, tmp_path / "out")
    message = str(err.value)
    assert message.startswith("building the wheel of broken failed: ValueError: Dependency #2")
    assert "\n" not in message
    with pytest.raises(JibError, match=r"has no pyproject\.toml"):
        load_project(tmp_path, tmp_path / "out")


def test_files_modification_time_reaches_every_installed_file(tmp_path: Path) -> None:
    project = make_wheel(tmp_path / "p", "my-app", "1.0", {"my_app/__init__.py": b"x = 1\n"})
    when = 1577836800  # 2020-01-01T00:00:00Z, as [tool.jib.container] files-modification-time
    cache = Cache(tmp_path / "cache")
    plans = python_layer_plans(
        target(), dependency_wheels=deps(tmp_path / "d"), project_wheel=project, mtime=when
    )
    default = python_layer_plans(
        target(), dependency_wheels=deps(tmp_path / "d"), project_wheel=project
    )
    for planned, other in zip(plans, default, strict=True):
        assert planned.selector != other.selector  # a different time is a different layer
        layer, _ = build_planned(cache, planned)
        files = [m for m in layer_members(layer.path).values() if m.isfile()]
        assert files and {m.mtime for m in files} == {when}
