"""The project's wheel built in a build environment kept per backend (jib.python.buildenv): the
same wheel as a fresh isolated environment gives, the environment made once and reused, made
again when half-made or a day old, and pruned from the cache as one entry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from jib.cache.prune import entries, prune
from jib.cache.store import BUILD_ENV_MARKER, Cache
from jib.python import buildenv
from jib.python.project import build_wheel

APP_NATIVE = Path(__file__).resolve().parent / "projects" / "app-native"


def envs(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "build-envs").iterdir() if p.is_dir())


@pytest.fixture
def venv_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every ``uv venv`` pyjib runs (the expensive step a kept environment skips)."""
    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(argv: list[str], *args: object, **kwargs: object) -> object:
        if len(argv) > 1 and argv[1] == "venv":
            calls.append(list(argv))
        return real_run(argv, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(buildenv.subprocess, "run", run)
    return calls


def test_the_kept_environment_builds_the_same_wheel_and_is_made_once(
    tmp_path: Path, venv_calls: list[list[str]]
) -> None:
    fresh = build_wheel(APP_NATIVE, tmp_path / "fresh")  # python -m build's way
    cache = tmp_path / "cache"
    first = build_wheel(APP_NATIVE, tmp_path / "one", cache_dir=cache)
    second = build_wheel(APP_NATIVE, tmp_path / "two", cache_dir=cache)
    assert first.read_bytes() == fresh.read_bytes() == second.read_bytes()
    assert len(venv_calls) == 1
    (env,) = envs(cache)
    record = json.loads((env / BUILD_ENV_MARKER).read_text())
    assert any(r.startswith("hatchling") for r in record["installed"])
    # Isolated as build's own: the backend, not pip, not the host's site-packages.
    listed = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert listed == str(env)
    assert not (env / "bin" / "pip").exists()


def test_a_half_made_or_day_old_environment_is_made_again(
    tmp_path: Path, venv_calls: list[list[str]]
) -> None:
    cache = tmp_path / "cache"
    build_wheel(APP_NATIVE, tmp_path / "one", cache_dir=cache)
    (env,) = envs(cache)
    (env / BUILD_ENV_MARKER).unlink()  # as if killed while being made
    build_wheel(APP_NATIVE, tmp_path / "two", cache_dir=cache)
    assert len(venv_calls) == 2
    record = json.loads((env / BUILD_ENV_MARKER).read_text())
    record["created"] = time.time() - buildenv.MAX_AGE - 1
    (env / BUILD_ENV_MARKER).write_text(json.dumps(record))
    build_wheel(APP_NATIVE, tmp_path / "three", cache_dir=cache)
    assert len(venv_calls) == 3
    assert len(list((tmp_path / "three").glob("*.whl"))) == 1


def test_prune_removes_a_build_environment_whole(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    build_wheel(APP_NATIVE, tmp_path / "one", cache_dir=cache.root)
    (env,) = envs(cache.root)
    (entry,) = [e for e in entries(cache.root) if env in e.paths]
    assert entry.size > 1_000_000  # the venv with hatchling, counted once
    os.utime(env / BUILD_ENV_MARKER, (1, 1))  # the least recently used entry
    prune(cache, cache_size(cache) - 1)
    assert not env.exists() and not (cache.root / "build-envs" / f"{env.name}.lock").exists()
    # And the next build makes it again.
    shutil.rmtree(tmp_path / "one")
    assert build_wheel(APP_NATIVE, tmp_path / "one", cache_dir=cache.root).is_file()


def cache_size(cache: Cache) -> int:
    return sum(e.size for e in entries(cache.root))
