"""Wheels for the target, from real PyPI: chosen by the target's tags, verified against the lock,
cached by sha256; sdists used only when they build a pure-Python wheel."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.python.locks import read_lock
from jib.python.locks.uvlock import find_uv
from jib.python.target import TargetPython
from jib.python.wheels import fetch_wheels

APP = Path(__file__).parent / "projects" / "locks" / "app"
ARM_WHEEL_SHA = "2cb8438c3cbb25e220c2ab33bb226559e7afb3baec11c4f218ffa7308603c832"
EM_X86_64, EM_AARCH64 = 62, 183


def target(platform: str = "linux/arm64") -> TargetPython:
    return TargetPython(
        Platform.parse(platform), (3, 11, 2), "/usr/bin/python3.11", ("glibc", (2, 36))
    )


def elf_machines(wheel: Path) -> set[int]:
    """``e_machine`` of every shared object in a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            int.from_bytes(archive.read(name)[18:20], "little")
            for name in archive.namelist()
            if name.endswith(".so")
        }


def cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "wheels").rglob("*") if p.is_file()) if cache.exists() else []


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel cache for the module: each test's downloads warm it for the next."""
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.mark.parametrize("lock", ["pylock.toml", "poetry.lock", "uv.lock", "requirements.txt"])
def test_arm64_fetch_gives_aarch64_wheels_from_every_lock(lock: str, cache: Path) -> None:
    lockset = read_lock(APP, lock, target=target(), extras=["idna"])
    wheels = fetch_wheels(lockset, target(), cache_dir=cache, jobs=3)
    assert [(w.name, w.version) for w in wheels] == [
        ("idna", "3.10"),
        ("markupsafe", "3.0.2"),
        ("six", "1.17.0"),
    ]
    by = {w.name: w for w in wheels}
    markupsafe = by["markupsafe"]
    assert markupsafe.filename.endswith(
        "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    )
    assert elf_machines(markupsafe.path) == {EM_AARCH64}
    assert markupsafe.sha256 == ARM_WHEEL_SHA
    assert markupsafe.path.parent == cache / "wheels" / "sha256" / ARM_WHEEL_SHA
    assert by["six"].filename.lower() == "six-1.17.0-py2.py3-none-any.whl"
    for wheel in wheels:
        assert hashlib.sha256(wheel.path.read_bytes()).hexdigest() == wheel.sha256
        assert wheel.source_kind == "registry"


def test_amd64_gets_the_x86_64_wheel_and_cache_hits_skip_the_network(cache: Path) -> None:
    lockset = read_lock(APP, "pylock.toml", target=target("linux/amd64"))
    first = fetch_wheels(lockset, target("linux/amd64"), cache_dir=cache)
    assert elf_machines(first[0].path) == {EM_X86_64}

    class NoNetwork:
        def stream(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("downloaded although cached")

    again = fetch_wheels(lockset, target("linux/amd64"), cache_dir=cache, client=NoNetwork())  # type: ignore[arg-type]
    assert again == first


@pytest.mark.parametrize("lock", ["pylock.toml", "poetry.lock", "uv.lock", "requirements.txt"])
def test_tampered_lock_hash_fails_naming_the_package_and_caches_nothing(
    lock: str, tmp_path: Path
) -> None:
    project = tmp_path / "app"
    shutil.copytree(APP, project)
    tampered = "0" * 64
    text = (project / lock).read_text()
    assert ARM_WHEEL_SHA in text
    (project / lock).write_text(text.replace(ARM_WHEEL_SHA, tampered))
    lockset = read_lock(project, lock, target=target())
    cache = tmp_path / "cache"
    with pytest.raises(JibError) as err:
        fetch_wheels(lockset, target(), cache_dir=cache)
    message = str(err.value)
    assert "markupsafe==3.0.2" in message and "does not match the lock" in message
    assert f"got sha256:{ARM_WHEEL_SHA}" in message
    if lock != "requirements.txt":  # requirements list 60 hashes: the message counts them
        assert f"expected sha256:{tampered}" in message
    assert not any("markupsafe" in p.name.lower() for p in cached_files(cache))
    assert not any((cache / "wheels" / "tmp").iterdir())


# -- sdists and local packages ------------------------------------------------------------------

SETUP_NATIVE = """\
from setuptools import setup
from setuptools.dist import Distribution


class BinaryDistribution(Distribution):
    # Claims compiled code without needing a compiler: the wheel gets the host's platform tag.
    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution)
"""


def make_source(root: Path, name: str, *, native: bool = False) -> Path:
    project = root / name
    (project / name).mkdir(parents=True)
    (project / name / "__init__.py").write_text(f"NAME = {name!r}\n")
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1.0"
        """))  # fmt: skip
    if native:
        (project / "setup.py").write_text(SETUP_NATIVE)
    return project


def make_sdist(project: Path, out: Path) -> Path:
    subprocess.run(
        [find_uv(), "build", "--sdist", "--quiet", "--out-dir", str(out), str(project)],
        check=True,
        capture_output=True,
    )
    (sdist,) = out.glob(f"{project.name}-*.tar.gz")
    return sdist


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``nativepkg`` (platform-specific when built) and ``purepkg`` sdists, in a local PEP 503
    index directory (``index/<name>/<file>``) as an sdist-only release would be on an index."""
    root = tmp_path_factory.mktemp("sdists")
    index = root / "index"
    out = {}
    for name, native in (("nativepkg", True), ("purepkg", False)):
        sdist = make_sdist(make_source(root / "src", name, native=native), index / name)
        out[name] = sdist
    return out


def requirements_project(tmp_path: Path, body: str) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "1"\n')
    (project / "requirements.txt").write_text(textwrap.dedent(body))
    return project


def test_sdist_only_dependency_that_builds_native_fails_naming_it(
    sdists: dict[str, Path], tmp_path: Path
) -> None:
    index = sdists["nativepkg"].parent.parent
    project = requirements_project(tmp_path, f"""\
        --index-url {index.as_uri()}
        --extra-index-url https://pypi.org/simple
        nativepkg==0.1.0 --hash=sha256:{sha256(sdists["nativepkg"])}
        """)  # fmt: skip
    lockset = read_lock(project, target=target())
    cache = tmp_path / "cache"
    with pytest.raises(JibError) as err:
        fetch_wheels(lockset, target(), cache_dir=cache)
    message = str(err.value)
    assert "nativepkg==0.1.0 has no wheel for CPython 3.11.2 on linux/arm64" in message
    assert "not a pure-Python" in message and "\n" not in message
    assert not any(p.suffix == ".whl" for p in cached_files(cache))


def test_pure_sdists_and_local_packages_are_built_and_used(
    sdists: dict[str, Path], tmp_path: Path
) -> None:
    index = sdists["purepkg"].parent.parent
    local_dir = make_source(tmp_path / "libs", "localdir")
    local_sdist = make_sdist(make_source(tmp_path / "other", "localsdist"), tmp_path / "dist")
    repo = make_source(tmp_path / "repos", "gitpkg")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    project = requirements_project(tmp_path, f"""\
        --index-url {index.as_uri()}
        --extra-index-url https://pypi.org/simple
        purepkg==0.1.0 --hash=sha256:{sha256(sdists["purepkg"])}
        -e {local_dir}
        {local_sdist} --hash=sha256:{sha256(local_sdist)}
        gitpkg @ git+{repo.as_uri()}@{commit.stdout.strip()}
        """)  # fmt: skip
    lockset = read_lock(project, target=target())
    cache = tmp_path / "cache"
    wheels = {w.name: w for w in fetch_wheels(lockset, target(), cache_dir=cache)}
    assert set(wheels) == {"purepkg", "localdir", "localsdist", "gitpkg"}
    assert wheels["purepkg"].filename == "purepkg-0.1.0-py3-none-any.whl"
    assert wheels["purepkg"].source_kind == "registry"
    assert wheels["localdir"].source_kind == "directory"
    assert wheels["localsdist"].source_kind == "path"
    assert wheels["gitpkg"].source_kind == "git" and wheels["gitpkg"].version == "0.1.0"
    for wheel in wheels.values():
        assert wheel.path.is_file() and wheel.filename.endswith("-py3-none-any.whl")
        assert wheel.path.parent.name == wheel.sha256 == sha256(wheel.path)
    # The first build of a locked sdist is reused, so the layer built from it stays the same.
    again = {w.name: w for w in fetch_wheels(lockset, target(), cache_dir=cache)}
    assert again["purepkg"] == wheels["purepkg"]
