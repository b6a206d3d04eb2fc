"""Where a built image goes besides a registry: a tarball, an OCI layout, the local engine, and
the small files that tell CI what was built."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jib import atomic
from jib.errors import JibError
from jib.image.image import Image
from jib.image.index import ImageIndex
from jib.image.reference import Reference
from jib.local import ocilayout, tarball

Built = Image | ImageIndex


@dataclass(frozen=True)
class OutputPaths:
    """Files written after a build (the contract's ``[tool.jib.output-paths]``)."""

    digest: Path | None = None
    image_id: Path | None = None
    image_json: Path | None = None


def image_id(built: Built) -> str:
    """What ``docker images`` shows as the ID: the config digest (the index's, for several)."""
    return str(built.config_digest if isinstance(built, Image) else built.digest)


def write_tarball(path: Path, built: Built, refs: Sequence[Reference]) -> Path:
    tarball.write_image(path, built, refs)
    return path


def write_oci_layout(root: Path, built: Built, ref: Reference) -> Path:
    ocilayout.write_directory(root, built, ref)
    return root


def load_into_engine(built: Built, refs: Sequence[Reference], scratch: Path) -> str:
    """``docker load`` if a Docker engine answers, else ``podman load``; returns which one.

    Both read the hybrid tarball; extra tags beyond the first are set with ``tag``, since an
    OCI archive carries one name.
    """
    engine = _engine()
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pyjib-load-", dir=scratch) as tmp:
        path = Path(tmp) / "image.tar"
        tarball.write_image(path, built, refs)
        _run([engine, "load", "-i", str(path)], f"{engine} load")
    for ref in refs[1:]:
        _run([engine, "tag", str(refs[0]), str(ref)], f"{engine} tag")
    return engine


def _engine() -> str:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "info"], capture_output=True, timeout=30, check=False
        ).returncode
        == 0
    ):
        return "docker"
    if shutil.which("podman"):
        return "podman"
    raise JibError(
        "found no container engine to load the image into: start Docker or install Podman, "
        "or build a tarball (`tar`) instead"
    )


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise JibError(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'}")


def write_output_paths(
    paths: OutputPaths, built: Built, refs: Sequence[Reference], *, pushed: bool
) -> None:
    """The digest, image ID and a JSON summary, each written whole (CI reads them)."""
    digest = str(built.digest)
    for target, text in ((paths.digest, digest), (paths.image_id, image_id(built))):
        if target is not None:
            _write(target, text.encode())
    if paths.image_json is not None:
        summary = {
            "image": str(refs[0]),
            "imageId": image_id(built),
            "imageDigest": digest,
            "tags": [ref.tag for ref in refs if ref.tag],
            "imagePushed": pushed,
        }
        _write(paths.image_json, json.dumps(summary, indent=2).encode() + b"\n")


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, data)
    except OSError as err:
        raise JibError(f"cannot write {path}: {err.strerror or err}") from None
