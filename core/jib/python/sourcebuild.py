"""Building a dependency's wheel from its source (an sdist, a local path, a VCS checkout).

Only for pure-Python results (the build runs on the host, not the target): uv when available
(fast, cached build environments), else ``pip wheel``; both isolated. A private index reaches the
build subprocess as pyjib's own requests reach it: credentials by a private netrc file
(``jib.python.netrcfile``), TLS settings by a CA bundle, client certificate and trusted hosts
(``jib.python.indextls.subprocess_tls``); nothing secret goes in argv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from jib.errors import JibError
from jib.python.index import IndexAuth, IndexConfig, uv_index_args
from jib.python.indextls import IndexTLS, subprocess_tls
from jib.python.netrcfile import netrc_environment


def build_wheel(
    source: Path,
    out_dir: Path,
    config: IndexConfig,
    *,
    what: str,
    auth: IndexAuth | None = None,
    tls: Mapping[str, IndexTLS] | None = None,
) -> Path:
    """Build ``source`` (a project directory or an sdist) into one wheel, in an isolated env.

    uv when available (fast, cached build environments), else ``pip wheel`` (also isolated).
    The build runs on the host, which is why callers accept only pure-Python results. ``auth``
    and ``tls``: the indexes' credentials and TLS settings, for fetching the build backend from
    a private index.
    """
    from jib.python.locks.uvlock import uv_environment, uv_if_installed

    uv = uv_if_installed()
    if uv:
        argv = [uv, "build", "--wheel", "--out-dir", str(out_dir), "--python", sys.executable]
        argv += ["--no-config", "--quiet", *uv_index_args(config), str(source)]
        env = uv_environment()
    else:
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out_dir)]
        argv += ["--index-url", config.index_url, str(source)]
        for extra in config.extra_index_urls:
            argv[-1:-1] = ["--extra-index-url", extra]
        env = dict(os.environ)
    urls = [config.index_url, *config.extra_index_urls]
    try:
        with (
            netrc_environment(auth, urls) as netrc,
            subprocess_tls(tls or {}, urls, "uv" if uv else "pip") as (tls_env, tls_args),
        ):
            done = subprocess.run(
                [*argv[:-1], *tls_args, argv[-1]],
                capture_output=True,
                text=True,
                env={**env, **netrc, **tls_env},
                timeout=1800,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JibError(f"building {what} failed: {err}") from None
    wheels = sorted(out_dir.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        detail = " ".join(lines[-4:]) or f"exit status {done.returncode}"
        raise JibError(f"building a wheel of {what} failed: {detail}")
    return wheels[0]
