"""The end-to-end test bed: real registries, a real Python base image and an isolated Podman.

Everything here drives external tools (docker-registry, mmdebstrap, skopeo, podman). A missing tool
raises MissingToolError whose message tells the developer to run ``bash scripts/test.sh``, which
installs them; the test bed never skips silently.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

INSTALL_HINT = "run `bash scripts/test.sh` (it installs the test tools)"


class HarnessError(RuntimeError):
    """The test bed itself failed (a tool errored, a server did not come up)."""


class MissingToolError(HarnessError):
    """A tool the test bed drives is not installed."""


def require_tool(name: str) -> str:
    """The absolute path of ``name``, or MissingToolError with a one-line fix."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"{name} is not installed; {INSTALL_HINT}")
    return path


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, raising HarnessError with its stderr when it fails."""
    require_tool(argv[0])
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{_shown(argv)} timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        raise HarnessError(
            f"{_shown(argv)} exited {proc.returncode}:\n{proc.stderr.strip() or proc.stdout}"
        )
    return proc


def _shown(argv: Sequence[str]) -> str:
    """The command line for an error message, with credentials (--creds=u:p etc.) masked."""
    return " ".join(
        f"{arg.partition('=')[0]}=***" if arg.startswith("--") and "creds=" in arg else arg
        for arg in argv
    )
