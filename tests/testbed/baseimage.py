"""A real Debian bookworm + Python 3.11 base image, built once and cached on disk.

mmdebstrap makes the root filesystem; the wrapping into a ``docker save``-style archive uses the
standard library only, so a bug in pyjib's own image code can never hide in its test fixture.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import HarnessError, run_tool

if TYPE_CHECKING:
    from .registry import Registry

# Bump when the archive layout or config changes so stale cache entries are never reused.
FORMAT_VERSION = 1
SUITE = "bookworm"
REPO_TAG = "pyjib-test/python:3.11-bookworm"
PUSH_REPOSITORY = "pyjib-test/python"
PUSH_TAG = "3.11"
EPOCH = "1970-01-01T00:00:00Z"
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
CMD = ["python3"]

# Debian architecture names -> the Go names OCI configs use.
_GO_ARCH = {
    "amd64": "amd64",
    "arm64": "arm64",
    "armhf": "arm",
    "i386": "386",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

_MMDEBSTRAP_TIMEOUT = 1200.0
_SKOPEO_TIMEOUT = 600.0
_STALE_BUILD_SECONDS = 2 * _MMDEBSTRAP_TIMEOUT


def debian_arch() -> str:
    return run_tool(["dpkg", "--print-architecture"], timeout=30).stdout.strip()


def go_arch(deb_arch: str) -> str:
    try:
        return _GO_ARCH[deb_arch]
    except KeyError:
        raise HarnessError(f"no Go architecture name known for Debian arch {deb_arch!r}") from None


def mmdebstrap_argv(deb_arch: str, output: str) -> list[str]:
    # --skip=output/dev leaves the device nodes out: runtimes mount their own /dev, and nodes in
    # a layer would make the image impossible to unpack without root.
    return [
        "mmdebstrap",
        "--variant=essential",
        "--include=python3,libstdc++6,ca-certificates",
        f"--architectures={deb_arch}",
        "--skip=output/dev",
        "--format=tar",
        SUITE,
        output,
    ]


def cache_dir() -> Path:
    env = os.environ.get("PYJIB_TESTBED_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pyjib-testbed"


def cache_key(deb_arch: str) -> str:
    """A hash of everything that shapes the archive; any change means a rebuild."""
    inputs = {
        "format": FORMAT_VERSION,
        "argv": mmdebstrap_argv(deb_arch, "OUTPUT"),
        "suite": SUITE,
        "arch": deb_arch,
        "repo_tag": REPO_TAG,
        "env": ENV,
        "cmd": CMD,
    }
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def base_image_tar(cache: Path | None = None) -> Path:
    """The cached docker-archive of the base image, building it first if needed."""
    deb_arch = debian_arch()
    root = cache if cache is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"python-3.11-{SUITE}-{deb_arch}-{cache_key(deb_arch)}.tar"
    if final.exists():
        return final
    # Concurrent pytest sessions (several developers share this machine) wait for one build.
    with _locked(final.with_suffix(".lock")):
        if final.exists():
            return final
        _remove_stale_builds(root)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=root) as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            run_tool(mmdebstrap_argv(deb_arch, str(rootfs)), timeout=_MMDEBSTRAP_TIMEOUT)
            partial = Path(tmp) / "image.tar"
            write_docker_archive(rootfs, partial, arch=go_arch(deb_arch), repo_tag=REPO_TAG)
            _fsync(partial)
            # Same filesystem, so the rename is atomic: a crash leaves no half-written entry.
            os.replace(partial, final)
            _fsync(root)
    return final


def _remove_stale_builds(root: Path) -> None:
    # A build killed mid-way leaves its temp dir behind; one this old cannot still be running.
    cutoff = time.time() - _STALE_BUILD_SECONDS
    for build in root.glob(".build-*"):
        with contextlib.suppress(OSError):
            if build.stat().st_mtime < cutoff:
                shutil.rmtree(build)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_docker_archive(rootfs_tar: Path, dest: Path, *, arch: str, repo_tag: str) -> None:
    """Wrap a root filesystem tar as a single-layer archive laid out like ``docker save``'s."""
    diff_hex = _sha256_file(rootfs_tar)
    history = {
        "created": EPOCH,
        "created_by": " ".join(mmdebstrap_argv("<arch>", "rootfs.tar")),
        "comment": "pyjib test bed base image",
    }
    image_config = {"Env": ENV, "Cmd": CMD}
    config = _json_bytes(
        {
            "architecture": arch,
            "os": "linux",
            "created": EPOCH,
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_hex}"]},
            "history": [history],
        }
    )
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    repo, tag = repo_tag.rsplit(":", 1)
    layer_name = f"{diff_hex}/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": [layer_name]}]
    # The legacy v1 files docker save still writes next to each layer; loaders ignore them.
    v1_json = {
        "id": diff_hex,
        "created": EPOCH,
        "os": "linux",
        "architecture": arch,
        "config": image_config,
    }

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        _add_dir(out, f"{diff_hex}/")
        _add_bytes(out, f"{diff_hex}/VERSION", b"1.0")
        _add_bytes(out, f"{diff_hex}/json", _json_bytes(v1_json))
        info = _member(layer_name, rootfs_tar.stat().st_size)
        with open(rootfs_tar, "rb") as layer:
            out.addfile(info, layer)
        _add_bytes(out, config_name, config)
        _add_bytes(out, "manifest.json", _json_bytes(manifest))
        _add_bytes(out, "repositories", _json_bytes({repo: {tag: diff_hex}}))


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def _add_dir(out: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    out.addfile(info)


def _add_bytes(out: tarfile.TarFile, name: str, data: bytes) -> None:
    out.addfile(_member(name, len(data)), io.BytesIO(data))


def push_base_image(
    tar: Path,
    registry: Registry,
    repository: str = PUSH_REPOSITORY,
    tag: str = PUSH_TAG,
) -> str:
    """Copy the archive into ``registry`` with skopeo; returns ``HOST/REPOSITORY:TAG``."""
    ref = f"{registry.host}/{repository}:{tag}"
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet"]
    if registry.ca_path is not None:
        argv.append(f"--dest-cert-dir={registry.cert_dir}")
    else:
        argv.append("--dest-tls-verify=false")
    creds = registry.credentials
    if creds is None:
        # Keep any auth.json / docker config on this machine out of the picture.
        argv.append("--dest-no-creds")
    else:
        argv.append(f"--dest-creds={creds[0]}:{creds[1]}")
    argv += [f"docker-archive:{tar}", f"docker://{ref}"]
    run_tool(argv, timeout=_SKOPEO_TIMEOUT)
    return ref
