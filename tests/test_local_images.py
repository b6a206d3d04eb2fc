"""Reading and writing images on disk: OCI layouts, docker-archives, OCI archives, the hybrid."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from testbed.images import memory_layer, tar_bytes

from jib.errors import JibError
from jib.image import mediatypes, mutate
from jib.image.config import ImageConfig
from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.reference import Reference
from jib.local import ocilayout, read_local, tarball


def _image(arch: str = "amd64", text: bytes = b"hello") -> Image:
    base = Image.build(ImageConfig.new(Platform("linux", arch)), [])
    layers = [
        (memory_layer({"etc/base": b"base " + arch.encode()}), {"created_by": "base"}),
        (memory_layer({"app/hello.txt": text}), {"created_by": "pyjib"}),
    ]
    image = mutate.append_layers(base, layers)
    return mutate.with_config(
        image, lambda c: c.with_entrypoint(["/bin/cat", "/app/hello.txt"]).with_env({"A": "1"})
    )


REF = Reference.parse("example.com/team/app:1.0")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_hybrid_tarball_round_trips_with_the_same_digest(tmp_path: Path) -> None:
    image = _image()
    out = tmp_path / "dist" / "app.tar"
    tarball.write_image(out, image, [REF, REF.with_tag("latest")])
    back = read_local(f"tar://{out}")
    assert back.digest == image.digest
    assert back.raw_config == image.raw_config
    assert [layer.digest for layer in back.layers] == [layer.digest for layer in image.layers]
    with back.layers[1].open() as stream:
        assert stream.read() == image.layers[1].open().read()


def test_hybrid_tarball_names_the_image_for_every_loader(tmp_path: Path) -> None:
    out = tmp_path / "app.tar"
    image = _image()
    tarball.write_image(out, image, [REF, REF.with_tag("latest")])
    members = _members(out)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(members["index.json"])["manifests"]
    assert entry["digest"] == str(image.digest)
    assert entry["annotations"] == {
        "io.containerd.image.name": "example.com/team/app:1.0",
        "org.opencontainers.image.ref.name": "1.0",
    }
    (docker,) = json.loads(members["manifest.json"])
    assert docker["RepoTags"] == ["example.com/team/app:1.0", "example.com/team/app:latest"]
    assert docker["Config"] == f"blobs/sha256/{image.config_digest.hex}"
    for path in [docker["Config"], *docker["Layers"]]:
        assert hashlib.sha256(members[path]).hexdigest() == path.rsplit("/", 1)[1]


def test_hybrid_tarball_bytes_are_reproducible(tmp_path: Path) -> None:
    tarball.write_image(tmp_path / "a.tar", _image(), [REF])
    tarball.write_image(tmp_path / "b.tar", _image(), [REF])
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_skopeo_accepts_the_tarball_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "app.tar"
    image = _image()
    tarball.write_image(out, image, [REF])
    for transport in ("oci-archive", "docker-archive"):
        result = subprocess.run(
            ["skopeo", "inspect", "--raw", f"{transport}:{out}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(result.stdout)["config"]["digest"] == str(image.config_digest)


def test_oci_layout_directory_round_trip_and_update(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    first = _image(text=b"one")
    ocilayout.write_directory(root, first, REF)
    second = _image(text=b"two")
    ocilayout.write_directory(root, second, REF)  # same name: replaces the entry
    index = json.loads((root / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [str(second.digest)]
    assert read_local(f"oci://{root}").digest == second.digest
    assert not [p for p in root.rglob("*.tmp")]


def test_multi_platform_layout_picks_the_platform(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    amd, arm = _image("amd64"), _image("arm64")
    ocilayout.write_directory(root, amd)
    ocilayout.write_directory(root, arm)
    # Rewrite index.json as a platform-annotated list, as a multi-arch layout has it.
    index = json.loads((root / "index.json").read_text())
    index["manifests"] = [
        amd.descriptor(with_platform=True).to_json(),
        arm.descriptor(with_platform=True).to_json(),
    ]
    (root / "index.json").write_text(json.dumps(index))
    assert read_local(f"oci://{root}", Platform.parse("linux/arm64")).digest == arm.digest
    assert read_local(f"oci://{root}", Platform.parse("linux/amd64")).digest == amd.digest
    with pytest.raises(JibError, match=r"no variant for platform linux/s390x.*linux/amd64"):
        read_local(f"oci://{root}", Platform.parse("linux/s390x"))


def _docker_save(path: Path, *, compress_outer: bool = False) -> tuple[bytes, list[bytes]]:
    """A classic ``docker save`` archive: uncompressed <id>/layer.tar files and a config."""
    layer_tars = [
        tar_bytes({"etc/os-release": b"ID=test\n"}),
        tar_bytes({"usr/bin/tool": b"#!/bin/sh\n"}),
    ]
    diff_ids = [f"sha256:{hashlib.sha256(t).hexdigest()}" for t in layer_tars]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["sh"]},
            "container_config": {"Hostname": "kept"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    files = {f"{hashlib.sha256(config).hexdigest()}.json": config}
    names = []
    for i, data in enumerate(layer_tars):
        files[f"layer{i}/layer.tar"] = data
        names.append(f"layer{i}/layer.tar")
    manifest = [{"Config": next(iter(files)), "RepoTags": ["base:1"], "Layers": names}]
    files["manifest.json"] = json.dumps(manifest).encode()
    data = tar_bytes(files)
    path.write_bytes(gzip.compress(data) if compress_outer else data)
    return config, layer_tars


@pytest.mark.parametrize("compress_outer", [False, True])
def test_docker_archive_is_read_as_a_base(tmp_path: Path, compress_outer: bool) -> None:
    path = tmp_path / "base.tar"
    config, layer_tars = _docker_save(path, compress_outer=compress_outer)
    image = read_local(f"tar://{path}")
    assert image.raw_config == config  # the image ID stays the one Docker knows
    assert image.media_type == mediatypes.DOCKER_MANIFEST
    assert image.config.to_dict()["container_config"] == {"Hostname": "kept"}
    for layer, data in zip(image.layers, layer_tars, strict=True):
        assert layer.media_type == mediatypes.DOCKER_LAYER
        assert layer.digest == layer.diff_id == Digest.of_bytes(data)
        with layer.open() as stream:
            assert stream.read() == data


def test_relative_paths_start_at_the_project(tmp_path: Path) -> None:
    _docker_save(tmp_path / "base.tar")
    assert read_local("tar://base.tar", base_dir=tmp_path).config.cmd == ("sh",)


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_and_non_tar_inputs_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(JibError) as err:
        read_local(f"tar://{tmp_path}/nope.tar")
    assert "does not exist" in _one_line(err)
    (tmp_path / "junk.tar").write_bytes(os.urandom(3000))
    with pytest.raises(JibError) as err:
        read_local(f"tar://{tmp_path}/junk.tar")
    assert "junk.tar" in _one_line(err)
    with pytest.raises(JibError) as err:
        read_local(f"oci://{tmp_path}/none")
    assert "not a directory" in _one_line(err)
    with pytest.raises(JibError, match="use tar://PATH or oci://DIR"):
        read_local("tar://")


def test_truncated_tarball_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    tarball.write_image(good, _image(), [REF])
    data = good.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(JibError) as err:
        read_local(f"tar://{cut}")
    assert "cut.tar" in _one_line(err)


def test_corrupt_layer_fails_the_write_and_leaves_no_output(tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    image = _image()
    tarball.write_image(good, image, [REF])
    data = bytearray(good.read_bytes())
    blob = gzip.compress(tar_bytes({"app/hello.txt": b"hello"}), mtime=0)
    at = bytes(data).index(blob)
    data[at + len(blob) // 2] ^= 0xFF  # flip one byte inside the app layer
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    base = read_local(f"tar://{bad}")
    out = tmp_path / "dist" / "out.tar"
    with pytest.raises(JibError) as err:
        tarball.write_image(out, base, [REF])
    assert "corrupt" in _one_line(err)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_tarball_needs_a_tagged_name(tmp_path: Path) -> None:
    digest_only = Reference.parse(f"example.com/app@{_image().digest}")
    with pytest.raises(JibError, match="give it a tag"):
        tarball.write_image(tmp_path / "x.tar", _image(), [digest_only])
