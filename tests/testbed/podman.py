"""A Podman whose whole state lives in a temp dir, so tests never touch the machine's image store.

Flags that work on the test machines (Debian 12, root, hybrid cgroups):
- ``--runtime runc``: crun fails on this kernel's hybrid cgroup layout;
- ``--ulimit nofile=1024:1024 --ulimit nproc=1000:1000``: the default ulimits are refused;
- ``--storage-driver overlay``: native overlayfs works as root and is far faster than vfs (which
  is the fallback where overlay cannot work);
- ``--network none`` by default and a private ``--network-config-dir``, so no bridge or firewall
  rules are created on the host.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from . import HarnessError, require_tool, run_tool

RUN_FLAGS = (
    "--runtime",
    "runc",
    "--rm",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1000:1000",
)

_TIMEOUT = 600.0
_DRIVERS = ("overlay", "vfs")  # in order of preference


class Podman:
    """``podman`` with private storage; ``close()`` removes every container, image and mount."""

    def __init__(self, base_dir: Path | None = None, storage_driver: str | None = None) -> None:
        """``storage_driver=None`` picks overlay, or vfs where overlay cannot work (e.g. when
        the temp dir is itself on overlayfs, as in some CI containers)."""
        require_tool("podman")
        require_tool("runc")
        self._dir = Path(tempfile.mkdtemp(prefix="pyjib-podman-", dir=base_dir))
        self._closed = False
        atexit.register(self.close)
        self.global_args: list[str] = []
        drivers = (storage_driver,) if storage_driver else _DRIVERS
        for driver in drivers:
            self.global_args = self._global_args(driver)
            probe = self.call("info", "--format", "{{.Store.GraphDriverName}}", check=False)
            if probe.returncode == 0:
                self.storage_driver = driver
                return
        self.close()
        raise HarnessError(f"podman can use none of the storage drivers {', '.join(drivers)}")

    def _global_args(self, storage_driver: str) -> list[str]:
        # A store remembers its driver and refuses another, so each attempt gets its own dirs.
        state = self._dir / storage_driver
        for sub in ("root", "runroot", "tmp", "networks"):
            (state / sub).mkdir(parents=True)
        return [
            "podman",
            f"--root={state / 'root'}",
            f"--runroot={state / 'runroot'}",
            f"--tmpdir={state / 'tmp'}",
            f"--network-config-dir={state / 'networks'}",
            f"--storage-driver={storage_driver}",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ]

    def __enter__(self) -> Podman:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run any podman subcommand against the private store."""
        if self._closed:
            raise HarnessError("this Podman has been closed")
        return run_tool([*self.global_args, *args], timeout=_TIMEOUT, check=check)

    def load(self, tar_path: Path | str) -> list[str]:
        """Load an archive; returns the names podman gave it (``localhost/`` added if no host)."""
        out = self.call("load", "--input", str(tar_path)).stdout
        names: list[str] = []
        for line in out.splitlines():
            # podman 4 prints "Loaded image: a" or "Loaded image(s): a,b".
            head, sep, tail = line.partition(":")
            if sep and head.startswith("Loaded image"):
                names += [n.strip() for n in tail.split(",") if n.strip()]
        if not names:
            raise HarnessError(f"podman load printed no image name:\n{out}")
        return names

    def pull(
        self,
        ref: str,
        tls_verify: bool = False,
        cert_dir: Path | str | None = None,
        creds: tuple[str, str] | None = None,
    ) -> str:
        """Pull ``ref``; returns the image ID."""
        args = ["pull", "--quiet", f"--tls-verify={'true' if tls_verify else 'false'}"]
        if cert_dir is not None:
            args.append(f"--cert-dir={cert_dir}")
        if creds is not None:
            args.append(f"--creds={creds[0]}:{creds[1]}")
        return self.call(*args, ref).stdout.strip()

    def run(
        self,
        image: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        network: str = "none",
        extra: Sequence[str] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``podman run --rm`` with the flags that work here; ``extra`` goes before the image."""
        argv = ["run", *RUN_FLAGS, f"--network={network}"]
        for key, value in (env or {}).items():
            argv.append(f"--env={key}={value}")
        argv += [*extra, image, *args]
        return self.call(*argv, check=check)

    def image_names(self) -> list[str]:
        """Every name of every image in the private store."""
        images = json.loads(self.call("images", "--format", "json").stdout or "[]")
        return [name for image in images for name in image.get("Names") or []]

    def inspect(self, image: str) -> dict[str, Any]:
        data = json.loads(self.call("image", "inspect", image).stdout)
        if not data:
            raise HarnessError(f"podman image inspect {image} returned nothing")
        result: dict[str, Any] = data[0]
        return result

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.call("rm", "--all", "--force", "--time", "0", check=False)
            self.call("rmi", "--all", "--force", check=False)
        finally:
            self._closed = True
            _unmount_under(self._dir)
            shutil.rmtree(self._dir, ignore_errors=True)
            atexit.unregister(self.close)


def _unmount_under(root: Path) -> None:
    # Overlay mounts of a container that died mid-run would otherwise pin the temp dir forever.
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
