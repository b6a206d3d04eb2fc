"""Images built, read back and changed: digests, media types and layers stay consistent."""

from __future__ import annotations

import json

import pytest
from testbed.images import memory_layer

from jib.errors import DigestMismatchError, ImageFormatError, JibError
from jib.image import mediatypes as mt
from jib.image.config import ImageConfig
from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.layer import BlobLayer
from jib.image.manifest import parse_manifest
from jib.image.mutate import append_layers, with_annotations, with_config, with_format

#: What pytest.raises raises when the expected error does not come.
DID_NOT_RAISE = pytest.fail.Exception

AMD64 = Platform("linux", "amd64")


def make_layer(name: str, content: bytes, media_type: str = mt.OCI_LAYER_GZIP) -> BlobLayer:
    return memory_layer({name: content}, media_type)


def base_image(annotations: dict[str, str] | None = None, cmd: str = "python3") -> Image:
    layers = [make_layer("etc/os-release", b"ID=debian\n"), make_layer("usr/bin/python3", b"x")]
    config = ImageConfig.new(AMD64).with_cmd([cmd])
    for i, layer in enumerate(layers):
        config = config.with_layer_added(layer.diff_id, {"created_by": f"layer {i}"})
    return Image.build(config, layers, annotations=annotations)


def test_build_names_itself_by_its_bytes():
    image = base_image({"org.opencontainers.image.version": "1.0"})
    assert image.digest == Digest.of_bytes(image.raw_manifest)
    assert image.media_type == mt.OCI_MANIFEST
    assert parse_manifest(image.raw_manifest) == image.manifest
    assert image.manifest.config.digest == Digest.of_bytes(image.raw_config)
    assert image.manifest.config.size == len(image.raw_config)
    assert image.manifest.config.media_type == mt.OCI_CONFIG
    assert image.config_digest == Digest.of_bytes(image.raw_config)
    assert ImageConfig.parse(image.raw_config) == image.config
    assert image.manifest.annotations == {"org.opencontainers.image.version": "1.0"}
    assert image.platform == AMD64
    for descriptor, layer in zip(image.manifest.layers, image.layers, strict=True):
        assert (descriptor.digest, descriptor.size) == (layer.digest, layer.size)
        assert descriptor.media_type == mt.OCI_LAYER_GZIP
        with layer.open() as blob:
            assert Digest.of_stream(blob) == (layer.digest, layer.size)


def test_same_inputs_give_same_digest():
    first, second = base_image({"a": "1"}), base_image({"a": "1"})
    assert first.raw_manifest == second.raw_manifest
    assert first.raw_config == second.raw_config
    assert first.digest == second.digest
    assert base_image(cmd="bash").digest != first.digest
    assert base_image({"a": "2"}).digest != first.digest


def test_build_refuses_layer_count_mismatch():
    config = ImageConfig.new(AMD64)
    with pytest.raises(ImageFormatError):
        Image.build(config, [make_layer("a", b"a")])


def test_build_keeps_given_raw_config_bytes():
    image = base_image()
    pretty = json.dumps(image.config.to_dict(), indent=2).encode()
    rebuilt = Image.build(image.config, image.layers, raw_config=pretty)
    assert rebuilt.raw_config == pretty
    assert rebuilt.config_digest == Digest.of_bytes(pretty)
    assert rebuilt.manifest.config.size == len(pretty)


def test_to_docker_and_back():
    oci = base_image({"org.opencontainers.image.version": "1.0"})
    docker = with_format(oci, "docker")
    assert docker.format == "docker"
    assert docker.media_type == mt.DOCKER_MANIFEST
    document = json.loads(docker.raw_manifest)
    assert document["mediaType"] == mt.DOCKER_MANIFEST
    assert document["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert {layer["mediaType"] for layer in document["layers"]} == {mt.DOCKER_LAYER_GZIP}
    assert {layer.media_type for layer in docker.layers} == {mt.DOCKER_LAYER_GZIP}
    assert "annotations" not in document
    assert docker.digest == Digest.of_bytes(docker.raw_manifest)

    back = with_format(docker, "oci")
    document = json.loads(back.raw_manifest)
    assert back.format == "oci"
    assert document["mediaType"] == mt.OCI_MANIFEST
    assert document["config"]["mediaType"] == mt.OCI_CONFIG
    assert {layer["mediaType"] for layer in document["layers"]} == {mt.OCI_LAYER_GZIP}
    assert {layer.media_type for layer in back.layers} == {mt.OCI_LAYER_GZIP}
    assert back.digest == base_image().digest  # the annotations are gone

    for image in (docker, back):
        assert [d.digest for d in image.manifest.layers] == [d.digest for d in oci.manifest.layers]
        assert [layer.diff_id for layer in image.layers] == [x.diff_id for x in oci.layers]
        assert image.config_digest == oci.config_digest
        for layer, original in zip(image.layers, oci.layers, strict=True):
            assert layer.open().read() == original.open().read()


def test_uncompressed_layers_convert_too():
    layer = make_layer("a", b"a", mt.OCI_LAYER)
    config = ImageConfig.new(AMD64).with_layer_added(layer.diff_id, {})
    docker = with_format(Image.build(config, [layer]), "docker")
    assert docker.manifest.layers[0].media_type == mt.DOCKER_LAYER
    assert docker.manifest.layers[0].digest == layer.digest


def test_docker_build_has_no_annotations():
    image = base_image()
    docker = Image.build(
        image.config, image.layers, media_type=mt.DOCKER_MANIFEST, annotations={"a": "b"}
    )
    assert "annotations" not in json.loads(docker.raw_manifest)
    assert with_format(image, "docker").digest == docker.digest


def test_with_format_to_own_format_changes_nothing_and_unknown_formats_raise():
    image = base_image({"a": "b"})
    assert with_format(image, "oci").raw_manifest == image.raw_manifest
    docker = with_format(image, "docker")
    assert with_format(docker, "docker").raw_manifest == docker.raw_manifest
    with pytest.raises(ValueError):
        with_format(base_image(), "schema1")


def _as_source(image: Image) -> tuple[bytes, bytes]:
    """The image's manifest and config as a registry might store them: pretty, unsorted."""
    config = json.dumps(dict(reversed(list(image.config.to_dict().items()))), indent=2).encode()
    manifest = image.manifest.to_json()
    manifest["config"]["digest"] = str(Digest.of_bytes(config))
    manifest["config"]["size"] = len(config)
    return json.dumps(manifest, indent=3).encode(), config


def test_from_raw_keeps_the_source_bytes():
    image = base_image()
    raw_manifest, raw_config = _as_source(image)
    source = Image.from_raw(raw_manifest, raw_config, image.layers)
    assert source.raw_manifest == raw_manifest
    assert source.raw_config == raw_config
    assert source.digest == Digest.of_bytes(raw_manifest)
    assert source.config_digest == Digest.of_bytes(raw_config)
    assert source.config == image.config
    same = Image.from_raw(image.raw_manifest, image.raw_config, image.layers)
    assert same.digest == image.digest


def test_from_raw_rejects_config_with_other_digest():
    image = base_image()
    with pytest.raises(DigestMismatchError) as info:
        Image.from_raw(image.raw_manifest, image.raw_config + b" ", image.layers, name="base")
    assert "base" in str(info.value)


@pytest.mark.parametrize("drop", ["blob", "manifest layer", "diff_id"])
def test_from_raw_rejects_layer_count_mismatch(drop):
    image = base_image()
    manifest, config, layers = image.manifest.to_json(), image.config.to_dict(), image.layers
    if drop == "blob":
        layers = layers[:-1]
    elif drop == "manifest layer":
        manifest["layers"].pop()
    else:
        config["rootfs"]["diff_ids"].pop()
    raw_config = json.dumps(config).encode()
    manifest["config"].update(digest=str(Digest.of_bytes(raw_config)), size=len(raw_config))
    with pytest.raises(ImageFormatError) as info:
        Image.from_raw(json.dumps(manifest).encode(), raw_config, layers, name="base")
    assert isinstance(info.value, JibError)


def test_from_raw_rejects_layers_that_are_not_the_manifests():
    image = base_image()
    swapped = (image.layers[1], image.layers[0])
    with pytest.raises(ImageFormatError):
        Image.from_raw(image.raw_manifest, image.raw_config, swapped)


def test_from_raw_rejects_an_index():
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    with pytest.raises(ImageFormatError):
        Image.from_raw(index.encode(), b"{}", [])


def test_with_config_changes_config_only():
    image = base_image()
    changed = with_config(image, lambda c: c.with_cmd(["serve"]).with_env({"A": "1"}))
    assert changed.config.cmd == ("serve",)
    assert changed.config.env == {"A": "1"}
    assert changed.config_digest == Digest.of_bytes(changed.raw_config)
    assert changed.config_digest != image.config_digest
    assert changed.manifest.layers == image.manifest.layers
    assert image.config.cmd == ("python3",)


def test_with_config_refuses_to_change_diff_ids():
    image = base_image()
    with pytest.raises(ValueError):
        with_config(image, lambda c: c.with_layer_added(Digest.of_bytes(b"x"), {}))


def test_append_layers_in_order():
    image = base_image({"a": "b"})
    deps, app = make_layer("site-packages/x.py", b"dep"), make_layer("app/main.py", b"app")
    grown = append_layers(image, [(deps, {"created_by": "deps"}), (app, {"created_by": "app"})])
    assert grown.config.diff_ids == (*image.config.diff_ids, deps.diff_id, app.diff_id)
    assert [h["created_by"] for h in grown.config.history] == ["layer 0", "layer 1", "deps", "app"]
    assert [d.digest for d in grown.manifest.layers] == [
        *(d.digest for d in image.manifest.layers),
        deps.digest,
        app.digest,
    ]
    assert grown.layers[-2:] == (deps, app)
    assert grown.manifest.annotations == image.manifest.annotations
    assert len(image.layers) == 2 and len(image.config.history) == 2
    assert grown.digest == Digest.of_bytes(grown.raw_manifest)


def test_append_layers_keeps_docker_format():
    docker = with_format(base_image(), "docker")
    grown = append_layers(docker, [(make_layer("a", b"a"), {})])
    assert grown.media_type == mt.DOCKER_MANIFEST
    assert grown.manifest.layers[-1].media_type == mt.DOCKER_LAYER_GZIP


def test_with_annotations_merges():
    image = base_image({"a": "1", "b": "2"})
    annotated = with_annotations(image, {"b": "3", "c": "4"})
    assert dict(annotated.manifest.annotations) == {"a": "1", "b": "3", "c": "4"}
    assert json.loads(annotated.raw_manifest)["annotations"] == {"a": "1", "b": "3", "c": "4"}
    assert dict(image.manifest.annotations) == {"a": "1", "b": "2"}
    assert annotated.config_digest == image.config_digest


def test_descriptor_points_at_the_manifest():
    image = base_image()
    descriptor = image.descriptor(with_platform=True)
    assert descriptor.digest == image.digest
    assert descriptor.size == len(image.raw_manifest)
    assert descriptor.media_type == mt.OCI_MANIFEST
    assert descriptor.platform == AMD64
    assert image.descriptor().platform is None


def _source() -> Image:
    image = base_image()
    return Image.from_raw(*_as_source(image), image.layers)


def test_with_format_keeps_the_source_config_blob():
    source = _source()
    for fmt in ("docker", "oci"):
        converted = with_format(source, fmt)
        assert converted.raw_config == source.raw_config
        assert converted.config_digest == source.config_digest
        source = converted


def test_with_annotations_keeps_the_source_config_blob():
    source = _source()
    annotated = with_annotations(source, {"a": "b"})
    assert annotated.raw_config == source.raw_config
    assert annotated.config_digest == source.config_digest


def test_build_refuses_layers_that_are_not_the_configs():
    layer, other = make_layer("a", b"a"), make_layer("b", b"b")
    config = ImageConfig.new(AMD64).with_layer_added(other.diff_id, {})
    with pytest.raises(ImageFormatError):
        Image.build(config, [layer])
