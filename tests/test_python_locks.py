"""Locked dependencies read for the target: every lock kind of one project gives the same set;
markers, extras and groups are applied for the image, not the host; uv resolves without a lock.

The fixture project (tests/projects/locks/app) has real locks: poetry.lock from ``poetry lock``,
uv.lock from ``uv lock``, pylock.toml and requirements.txt from ``uv export`` (see the README
there for the one hand-made addition: the ``idna`` extra, which exports resolve away).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.python.index import IndexConfig, index_config
from jib.python.locks import LOCK_ORDER, LockedPackage, LockSet, find_lock, read_lock
from jib.python.resolve import load_dependencies, resolve_unlocked, uv_platform
from jib.python.target import TargetPython

APP = Path(__file__).parent / "projects" / "locks" / "app"
KINDS = ("poetry.lock", "pylock.toml", "uv.lock", "requirements.txt")
PYPI = IndexConfig("https://pypi.org/simple")


def target(
    platform: str = "linux/arm64", version=(3, 11, 2), libc=("glibc", (2, 36))
) -> TargetPython:
    return TargetPython(Platform.parse(platform), version, "/usr/bin/python3.11", libc)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture project (some tests edit or delete its locks)."""
    copy = tmp_path / "app"
    shutil.copytree(APP, copy)
    return copy


@pytest.mark.parametrize("lock", KINDS)
def test_every_lock_kind_gives_the_same_packages(lock: str) -> None:
    plain = read_lock(APP, lock, target=target())
    assert [p.pin() for p in plain] == ["markupsafe==3.0.2", "six==1.17.0"]
    assert all(p.source_kind == "registry" and not p.is_local for p in plain)
    with_extra = read_lock(APP, lock, target=target(), extras=["IDNA"])
    assert with_extra.names == ("idna", "markupsafe", "six")
    assert with_extra.source == lock
    # Deterministic: another read is equal, fingerprint included.
    again = read_lock(APP, lock, target=target(), extras=["idna"])
    assert again == with_extra and again.fingerprint() == with_extra.fingerprint()


def test_fingerprint_is_about_what_the_target_gets() -> None:
    arm, x86 = target(), target("linux/amd64")
    prints = {read_lock(APP, k, target=arm).fingerprint() for k in KINDS[:3]}
    assert len(prints) == 1  # poetry, pylock and uv name the same files: same chosen wheels
    assert read_lock(APP, "pylock.toml", target=x86).fingerprint() not in prints
    assert read_lock(APP, "pylock.toml", target=arm, extras=["idna"]).fingerprint() not in prints


def test_uv_lock_exports_are_cached_by_their_inputs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jib.python.locks import uvlock

    cache = tmp_path / "cache"
    first = read_lock(project, "uv.lock", target=target(), cache_dir=cache)
    runs: list[list[str]] = []
    real_run_uv = uvlock.run_uv

    def counting_run_uv(args: list[str], cwd: Path, what: str) -> str:
        runs.append(list(args))
        return real_run_uv(args, cwd, what)

    monkeypatch.setattr(uvlock, "run_uv", counting_run_uv)
    # The same lock, project and arguments: the kept export, no uv run, the same packages.
    assert read_lock(project, "uv.lock", target=target(), cache_dir=cache) == first
    assert runs == []
    # Other arguments (an extra) or another lock: uv runs again.
    with_extra = read_lock(project, "uv.lock", target=target(), extras=["idna"], cache_dir=cache)
    assert with_extra.names == ("idna", "markupsafe", "six") and len(runs) == 1
    lock = project / "uv.lock"
    lock.write_text(lock.read_text() + "\n")
    read_lock(project, "uv.lock", target=target(), cache_dir=cache)
    assert len(runs) == 2


def test_auto_takes_the_contract_order(project: Path) -> None:
    for expected in LOCK_ORDER:
        assert find_lock(project) == project / expected
        assert read_lock(project, target=target()).source == expected
        (project / expected).unlink()
    assert find_lock(project) is None
    with pytest.raises(JibError, match="no lock file"):
        read_lock(project, target=target())
    with pytest.raises(JibError, match=r"\[tool.jib.python\] lock names"):
        find_lock(project, "missing.lock")


def test_unsatisfiable_requires_python_names_the_base_images_python(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('">=3.11"', '">=3.12"'))
    for lock in ("poetry.lock", "auto"):
        with pytest.raises(JibError, match=r"base image's Python is 3\.11\.2.*'>=3\.12'"):
            read_lock(project, lock, target=target())
    (project / "poetry.lock").unlink()
    (project / "pylock.toml").unlink()
    (project / "uv.lock").unlink()
    (project / "requirements.txt").unlink()
    with pytest.raises(JibError, match=r"base image's Python is 3\.11\.2"):
        load_dependencies(project, target=target(), index=PYPI)  # before uv runs


def test_poetry_groups_markers_and_old_locks(tmp_path: Path) -> None:
    lock = (APP / "poetry.lock").read_text()
    lock = lock.replace("[extras]", textwrap.dedent('''\
        [[package]]
        name = "colorama"
        version = "0.4.6"
        optional = false
        python-versions = "*"
        groups = ["main"]
        markers = "sys_platform == \\"win32\\""
        files = []

        [[package]]
        name = "pytest"
        version = "8.0.0"
        optional = false
        python-versions = "*"
        groups = ["dev"]
        files = []

        [[package]]
        name = "armonly"
        version = "1.0"
        optional = false
        python-versions = "*"
        groups = ["main", "dev"]
        markers = {main = "platform_machine == \\"aarch64\\"", dev = "python_version < \\"3\\""}
        files = []

        [extras]'''))  # fmt: skip
    (tmp_path / "poetry.lock").write_text(lock)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    arm = read_lock(tmp_path, target=target())
    assert arm.names == ("armonly", "markupsafe", "six")  # no win32 colorama, no dev pytest
    x86 = read_lock(tmp_path, target=target("linux/amd64"))
    assert x86.names == ("markupsafe", "six")
    dev = read_lock(tmp_path, target=target(), groups=["dev"])
    assert dev.names == ("pytest",)  # armonly's dev marker does not hold
    both = read_lock(tmp_path, target=target(), groups=["main", "dev"])
    assert both.names == ("armonly", "markupsafe", "pytest", "six")
    with pytest.raises(JibError, match="no extra nope"):
        read_lock(tmp_path, target=target(), extras=["nope"])
    (tmp_path / "poetry.lock").write_text(
        lock.replace('lock-version = "2.1"', 'lock-version = "2.0"')
    )
    with pytest.raises(JibError, match=r"lock-version 2\.0.*poetry lock"):
        read_lock(tmp_path, target=target())


def test_requirements_options_markers_and_local_entries(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "me"\nversion = "1"\n')
    (tmp_path / "libs" / "helper").mkdir(parents=True)
    (tmp_path / "libs" / "helper" / "pyproject.toml").write_text('[project]\nname = "Helper_Lib"\n')
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "tool-2.0-py3-none-any.whl").write_bytes(b"zip")
    (tmp_path / "base.txt").write_text("six==1.17.0 --hash=sha256:AA\n")
    (tmp_path / "requirements.txt").write_text(textwrap.dedent("""\
        # a comment
        --index-url https://mirror.example/simple
        --extra-index-url=https://extra.example/simple
        -r base.txt
        colorama==0.4.6 ; sys_platform == "win32"
        armonly==1.0 ; platform_machine == "aarch64" \\
            --hash=sha256:bb  # trailing comment
        -e ./libs/helper
        -e .
        ./wheels/tool-2.0-py3-none-any.whl
        remote @ https://files.example/remote-1.0.tar.gz#sha256=cc
        vcs @ git+https://git.example/vcs.git@0123abc
        """))  # fmt: skip
    found = read_lock(tmp_path, target=target())
    assert found.names == ("armonly", "helper-lib", "remote", "six", "tool", "vcs")
    assert found.index_url == "https://mirror.example/simple"
    assert found.extra_index_urls == ("https://extra.example/simple",)
    by = {p.name: p for p in found}
    assert by["six"].hashes == ("sha256:AA",) and by["six"].allowed_sha256 == {"aa"}
    assert by["armonly"].version == "1.0" and by["armonly"].allowed_sha256 == {"bb"}
    assert by["helper-lib"].source_kind == "directory" and by["helper-lib"].is_local
    assert by["helper-lib"].path == tmp_path / "libs" / "helper"
    assert by["tool"].source_kind == "path" and by["tool"].files[0].filename.endswith(".whl")
    assert by["remote"].source_kind == "url" and not by["remote"].is_local
    assert (
        by["vcs"].source_kind == "git"
        and by["vcs"].url == "git+https://git.example/vcs.git@0123abc"
    )
    assert "armonly" not in read_lock(tmp_path, target=target("linux/amd64")).names
    (tmp_path / "requirements.txt").write_text("six>=1.0\n")
    with pytest.raises(JibError, match=r"requirements.txt line 1: six is not pinned"):
        read_lock(tmp_path, target=target())


def test_pylock_environments_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "me"\nversion = "1"\n')
    pylock = (APP / "pylock.toml").read_text()
    windows_only = pylock.replace(
        'extras = ["idna"]', 'extras = ["idna"]\nenvironments = ["sys_platform == \'win32\'"]'
    )
    (tmp_path / "pylock.toml").write_text(windows_only)
    with pytest.raises(JibError, match=r"locked for sys_platform == 'win32'.*linux/arm64"):
        read_lock(tmp_path, target=target())
    a, b = LockedPackage("Six", "1.0"), LockedPackage("six", "2.0")
    with pytest.raises(JibError, match="two entries for six"):
        LockSet.from_packages([a, b], target(), source="test")
    merged = LockSet.from_packages(
        [LockedPackage("b", "1"), a, LockedPackage("b", "1")], target(), source="t"
    )
    assert merged.names == ("b", "six")


def test_uv_platform_is_clamped_to_what_uv_knows() -> None:
    assert uv_platform(target(libc=("glibc", (2, 36)))) == "aarch64-manylinux_2_36"
    assert uv_platform(target("linux/amd64", libc=("glibc", (2, 99)))) == "x86_64-manylinux_2_40"
    assert uv_platform(target("linux/amd64", libc=("glibc", (2, 30)))) == "x86_64-manylinux_2_28"
    assert uv_platform(target(libc=("musl", (1, 2)))) == "aarch64-unknown-linux-musl"
    with pytest.raises(JibError, match=r"linux/arm/v7.*commit a lock"):
        uv_platform(target("linux/arm/v7"))


def test_no_lock_resolves_for_the_target_with_uv(project: Path) -> None:
    for name in KINDS:
        (project / name).unlink()
    resolved = load_dependencies(project, target=target(), extras=["idna"], index=PYPI)
    assert [p.pin() for p in resolved] == ["idna==3.10", "markupsafe==3.0.2", "six==1.17.0"]
    assert resolved.source == "uv pip compile"
    assert all(p.allowed_sha256 for p in resolved)
    # A marker for the target's machine and Python, decided for arm64 on this x86_64 host.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '"six==1.17.0"]',
        '"six==1.17.0", "idna==3.10; platform_machine == \'aarch64\'", '
        '"colorama==0.4.6; python_version < \'3.11\'"]',
    ))  # fmt: skip
    arm = resolve_unlocked(project, target=target(), index=PYPI)
    assert arm.names == ("idna", "markupsafe", "six")
    x86 = resolve_unlocked(project, target=target("linux/amd64"), index=PYPI)
    assert x86.names == ("markupsafe", "six")
    with pytest.raises(JibError, match="no extra 'nope'"):
        resolve_unlocked(project, target=target(), extras=["nope"], index=PYPI)


def test_index_settings_precedence(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://conf/simple\nextra-index-url = https://e1 https://e2\n"
    )
    files = [conf]
    assert index_config(environ={}, config_files=[]) == IndexConfig("https://pypi.org/simple")
    from_conf = index_config(environ={}, config_files=files)
    assert from_conf == IndexConfig("https://conf/simple", ("https://e1", "https://e2"))
    env = {"UV_DEFAULT_INDEX": "https://uv/simple/", "PIP_EXTRA_INDEX_URL": "https://pe"}
    assert index_config(environ=env, config_files=files) == IndexConfig(
        "https://uv/simple", ("https://pe",)
    )
    env["PIP_INDEX_URL"] = "https://pip/simple"
    assert index_config(environ=env, config_files=files).index_url == "https://pip/simple"
    assert (
        index_config(lock_index_url="https://lock", environ=env, config_files=files).index_url
        == "https://lock"
    )
    explicit = index_config(
        "https://mine",
        ["https://x"],
        lock_index_url="https://lock",
        environ=env,
        config_files=files,
    )
    assert explicit == IndexConfig("https://mine", ("https://x",))
