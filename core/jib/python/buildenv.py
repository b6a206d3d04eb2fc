"""A build environment per build backend, kept in the cache, so a warm build does not make one.

``python -m build`` creates a fresh virtual environment and installs the backend into it for
every build: ~0.5 s with uv, most of a warm ``pyjib push`` whose only change is one source file.
pyjib keeps one environment per (build requirements, host Python, uv) under
``<cache>/build-envs/``, made as ``build`` makes it (a venv without pip, the requirements
installed by ``uv pip install``) and isolated the same way: the backend sees only what the
project asks for. It is made anew after a day, so a new backend release is picked up as a fresh
environment would pick it up.

Concurrent builds share an environment: it is made or extended under an exclusive lock on
``<env>.lock`` and used under a shared one, so it is never remade while another build runs in it.
A half-made environment has no ``pyjib-build-env.json`` and is made again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from jib.atomic import write_bytes
from jib.cache.store import BUILD_ENV_MARKER, BUILD_ENVS
from jib.image.digest import Digest
from jib.python.locks.uvlock import uv_environment, uv_identity

log = logging.getLogger(__name__)

#: After this many seconds an environment is made again (newer backends, as a fresh env gets).
MAX_AGE = 24 * 3600


class BuildEnv:
    """A venv that ``build.ProjectBuilder.from_isolated_env`` runs a backend in."""

    def __init__(self, path: Path, uv: str) -> None:
        self.path = path
        self._uv = uv

    @property
    def python_executable(self) -> str:
        return str(self.path / "bin" / "python")

    def make_extra_environ(self) -> dict[str, str]:
        return {"PATH": os.pathsep.join([str(self.path / "bin"), os.environ.get("PATH", "")])}

    def install(self, requirements: Collection[str]) -> None:
        """Install ``requirements`` not yet recorded as installed (raises CalledProcessError)."""
        record = self._record()
        missing = sorted(set(requirements) - set(record.get("installed", [])))
        if not missing:
            return
        subprocess.run(
            [self._uv, "pip", "install", "--quiet", "--python", self.python_executable, *missing],
            check=True,
            capture_output=True,
            text=True,
            env=uv_environment(),
        )
        record["installed"] = sorted({*record.get("installed", []), *missing})
        self._write_record(record)

    def _write_record(self, record: dict[str, object]) -> None:
        write_bytes(self.path / BUILD_ENV_MARKER, json.dumps(record, sort_keys=True).encode())

    def _record(self) -> dict[str, object]:
        try:
            value = json.loads((self.path / BUILD_ENV_MARKER).read_bytes())
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}


@contextmanager
def cached_build_env(cache_dir: Path, requires: Collection[str], uv: str) -> Iterator[BuildEnv]:
    """The environment kept for ``requires``, locked shared while in use; the caller installs
    ``requires`` into it (a no-op when they already are).

    Raises ``subprocess.CalledProcessError`` when the environment cannot be made (nothing
    half-made is kept).
    """
    inputs = [sorted(requires), sys.executable, sys.version, uv_identity(uv)]
    key = Digest.of_bytes(json.dumps(inputs).encode()).encoded[:32]
    root = cache_dir / BUILD_ENVS
    root.mkdir(parents=True, exist_ok=True)
    env = BuildEnv(root / key, uv)
    with open(root / f"{key}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _fresh(env):
                _make(env, requires, uv)
            else:
                log.debug("reusing the build environment %s", env.path)
                os.utime(env.path / BUILD_ENV_MARKER)  # last used now, for the cache's LRU pruning
        except BaseException:
            shutil.rmtree(env.path, ignore_errors=True)
            raise
        fcntl.flock(lock, fcntl.LOCK_SH)  # others may use it too, none may remake it
        yield env


def _fresh(env: BuildEnv) -> bool:
    created = env._record().get("created")
    return isinstance(created, (int, float)) and time.time() - created < MAX_AGE


def _make(env: BuildEnv, requires: Collection[str], uv: str) -> None:
    """A new, empty venv at ``env.path`` (whatever was there is removed)."""
    log.debug("making the build environment %s for %s", env.path, ", ".join(sorted(requires)))
    shutil.rmtree(env.path, ignore_errors=True)
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(env.path)],
        check=True,
        capture_output=True,
        text=True,
        env=uv_environment(),
    )
    # The requirements are installed by the caller (``BuildEnv.install``), which records them.
    env._write_record({"created": time.time(), "requires": sorted(requires), "installed": []})
