"""``uv.lock``, read through ``uv export --format pylock.toml`` (packaging notes §3.2).

uv.lock is uv's own, unstandardized schema; its export is PEP 751, universal (every platform's
wheels, markers kept) and already limited to the asked extras and groups, so the pylock reader
then selects for the target. ``--frozen`` keeps uv from touching the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from jib.atomic import write_bytes
from jib.errors import JibError
from jib.image.digest import Digest
from jib.python.locks.model import LockedPackage
from jib.python.locks.pylock import read_pylock
from jib.python.target import TargetPython


def find_uv() -> str:
    """The uv binary: the ``uv`` package's own (a pyjib dependency), else one on PATH."""
    found = uv_if_installed()
    if not found:
        raise JibError(
            "pyjib needs uv for this (uv.lock or resolving without a lock): pip install uv"
        )
    return found


def uv_if_installed() -> str | None:
    """``find_uv()``, or None where uv is not installed (for callers with a fallback)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def uv_identity(uv: str) -> list[object]:
    """What names this uv binary in a cache key: its path, size and mtime (a new uv may export
    or install differently, without a cheap way to ask its version)."""
    stat = Path(uv).stat()
    return [uv, stat.st_size, stat.st_mtime_ns]


def uv_environment() -> dict[str, str]:
    """The environment uv runs in: never download a Python (notes §3.4), no color codes."""
    env = dict(os.environ)
    env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "UV_NO_PROGRESS": "1"})
    return env


def run_uv(args: Sequence[str], cwd: Path, what: str) -> str:
    """Run uv; a failure becomes a JibError carrying uv's own last error line."""
    try:
        done = subprocess.run(
            [find_uv(), *args],
            cwd=cwd,
            env=uv_environment(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JibError(f"{what} failed: {err}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        detail = " ".join(lines[-6:]) or f"exit status {done.returncode}"
        raise JibError(f"{what} failed: {detail}")
    return done.stdout


def read_uv_lock(
    lock_path: Path,
    *,
    target: TargetPython,
    extras: Collection[str] = (),
    groups: Sequence[str] | None = None,
    project_dir: Path | None = None,
    project_name: str | None = None,
    cache_dir: Path | None = None,
) -> list[LockedPackage]:
    """The packages of ``uv.lock`` for ``target``.

    ``cache_dir`` keeps each export by what it is made from (the lock, the project's
    pyproject.toml, the arguments and the uv binary), so an unchanged lock costs no uv run.
    """
    project_dir = project_dir or lock_path.parent
    args = ["export", "--frozen", "--format", "pylock.toml", "--no-emit-project", "--quiet"]
    # Runtime dependencies only unless groups are asked for (uv's default groups include dev).
    args.append("--no-default-groups")
    for group in groups or ():
        args += ["--group", group]
    for extra in extras:
        args += ["--extra", extra]
    with tempfile.TemporaryDirectory(prefix="pyjib-uv-export-") as tmp:
        out = Path(tmp) / "pylock.toml"  # uv insists on this file name
        cached = _cached_export(lock_path, args, cache_dir)
        if cached is not None and cached.is_file():
            shutil.copyfile(cached, out)
        else:
            run_uv(
                [*args, "--output-file", str(out)],
                lock_path.parent,
                f"uv export of {lock_path.name}",
            )
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(cached, out.read_bytes())
        return read_pylock(
            out,
            target=target,
            groups=(),
            project_dir=project_dir,
            project_name=project_name,
            display_name=f"{lock_path.name} (uv export)",
            # uv writes relative paths from the project, wherever the output file goes.
            base_dir=lock_path.parent,
        )


def _cached_export(lock_path: Path, args: Sequence[str], cache_dir: Path | None) -> Path | None:
    """Where the export for these inputs is kept, or None without a cache."""
    if cache_dir is None:
        return None
    key = Digest.of_bytes(
        json.dumps(
            [
                Digest.of_file(lock_path)[0].encoded,
                _digest_if_file(lock_path.parent / "pyproject.toml"),
                list(args),
                uv_identity(find_uv()),
            ]
        ).encode()
    )
    return cache_dir / "uv-exports" / f"{key.encoded}.toml"


def _digest_if_file(path: Path) -> str | None:
    return Digest.of_file(path)[0].encoded if path.is_file() else None
