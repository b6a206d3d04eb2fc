"""Parsing manifests and indexes as registries serve them, and writing them canonically."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jib.errors import ImageFormatError, JibError
from jib.image import mediatypes as mt
from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.manifest import Index, Manifest, descriptor_of, parse, parse_manifest


def _desc(media_type: str, name: str, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": str(Digest.of_bytes(name.encode())),
        "size": size,
        **extra,
    }


def image_manifest(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    docker = media_type == mt.DOCKER_MANIFEST
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "config": _desc(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, "config", 1234),
        "layers": [
            _desc(mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP, f"layer{i}", 100 + i)
            for i in range(3)
        ],
        **extra,
    }
    if media_type:
        data["mediaType"] = media_type
    return data


def image_index(media_type: str | None = mt.OCI_INDEX, **extra: Any) -> dict[str, Any]:
    entry = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_MANIFEST_LIST else mt.OCI_MANIFEST
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [
            _desc(entry, "amd64", platform={"architecture": "amd64", "os": "linux"}),
            _desc(
                entry, "arm64", platform={"architecture": "arm64", "os": "linux", "variant": "v8"}
            ),
        ],
        **extra,
    }
    if media_type:
        data["mediaType"] = media_type
    return data


def raw(data: Any, **dumps: Any) -> bytes:
    return json.dumps(data, **dumps).encode()


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
def test_parse_image_manifest(media_type):
    data = image_manifest(media_type)
    manifest = parse(raw(data))
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == media_type
    assert manifest.config.digest == Digest.parse(data["config"]["digest"])
    assert manifest.config.size == 1234
    assert [str(layer.digest) for layer in manifest.layers] == [
        layer["digest"] for layer in data["layers"]
    ]
    assert [layer.size for layer in manifest.layers] == [100, 101, 102]


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_parse_index(media_type):
    index = parse(raw(image_index(media_type)))
    assert isinstance(index, Index)
    assert index.media_type == media_type
    assert [m.platform for m in index.manifests] == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64", "v8"),
    ]


def test_empty_index_is_valid():
    index = parse(raw({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}))
    assert isinstance(index, Index)
    assert index.manifests == ()


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (image_manifest(None), None, mt.OCI_MANIFEST),
        (image_index(None), None, mt.OCI_INDEX),
        (image_manifest(None), "application/json", mt.OCI_MANIFEST),
        (image_manifest(None), mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        (image_manifest(None), f"{mt.DOCKER_MANIFEST}; charset=utf-8", mt.DOCKER_MANIFEST),
        (image_index(None), mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
        (image_index(None), "application/json; charset=utf-8", mt.OCI_INDEX),
        # the document's own mediaType wins over the Content-Type it came with
        (image_manifest(mt.DOCKER_MANIFEST), mt.OCI_MANIFEST, mt.DOCKER_MANIFEST),
    ],
)
def test_media_type_from_content_type_or_shape(data, content_type, expected):
    assert parse(raw(data), content_type).media_type == expected


SCHEMA1 = {"schemaVersion": 1, "name": "library/x", "tag": "1", "fsLayers": [], "history": []}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (SCHEMA1, None),
        (SCHEMA1, "application/json"),
        ({**SCHEMA1, "signatures": [{}]}, mt.DOCKER_SCHEMA1_SIGNED),
        ({**SCHEMA1, "mediaType": mt.DOCKER_SCHEMA1}, None),
        ({**SCHEMA1, "mediaType": mt.DOCKER_SCHEMA1_SIGNED}, None),
        (image_manifest(None), mt.DOCKER_SCHEMA1_SIGNED),
    ],
)
def test_schema1_refused_with_advice(data, content_type):
    with pytest.raises(ImageFormatError) as info:
        parse(raw(data), content_type, "docker.io/library/old:1")
    message = str(info.value)
    assert "\n" not in message
    assert "schema1" in message
    assert "docker.io/library/old:1" in message
    assert "re-push" in message  # says what to do about it


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"{",
        b"\xff\xfe\x00",
        b"[]",
        b'"manifest"',
        b"null",
        b"42",
        raw({k: v for k, v in image_manifest().items() if k != "config"}),
        raw({k: v for k, v in image_manifest().items() if k != "layers"}),
        raw(image_manifest(config=None)),
        raw(image_manifest(config="sha256:abc")),
        raw(image_manifest(layers={"0": {}})),
        raw(image_manifest(layers=[{"mediaType": mt.OCI_LAYER}])),
        raw(image_manifest(layers=[_desc(mt.OCI_LAYER, "l", -1)])),
        raw(image_manifest(schemaVersion=3)),
        raw({k: v for k, v in image_manifest().items() if k != "schemaVersion"}),
        raw(image_manifest(annotations=["a=b"])),
        raw(image_manifest("application/vnd.example.thing+json")),
        raw(image_index(manifests=None)),
        raw(image_index(manifests=[42])),
        raw(image_index(subject="sha256:abc")),
    ],
)
def test_malformed_documents_raise_image_format_error(document):
    with pytest.raises(ImageFormatError) as info:
        parse(document)
    assert isinstance(info.value, JibError)
    assert "\n" not in str(info.value)


SUBJECT = _desc(mt.OCI_MANIFEST, "subject")
DOCUMENTS = {
    "oci manifest": image_manifest(),
    "docker manifest": image_manifest(mt.DOCKER_MANIFEST),
    "oci index": image_index(),
    "docker list": image_index(mt.DOCKER_MANIFEST_LIST),
    "manifest with extras": image_manifest(
        annotations={
            "org.opencontainers.image.base.name": "docker.io/library/python:3.12",
            "a": "",
        },
        subject=SUBJECT,
        artifactType="application/vnd.example+type",
    ),
    "index with extras": image_index(
        annotations={"z": "1", "a": "2"}, subject=SUBJECT, artifactType="application/x"
    ),
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_to_bytes_is_canonical_and_round_trips(name):
    data = DOCUMENTS[name]
    pretty = raw(data, indent=3)  # as a registry might serve it, keys in any order
    parsed = parse(pretty)
    out = parsed.to_bytes()
    assert out == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    assert json.loads(out) == data
    assert parse(out) == parsed
    assert parse(out).to_bytes() == out


def test_annotations_subject_and_artifact_type_survive():
    manifest = parse(raw(DOCUMENTS["manifest with extras"]))
    assert manifest.annotations["org.opencontainers.image.base.name"] == (
        "docker.io/library/python:3.12"
    )
    assert manifest.annotations["a"] == ""
    assert manifest.subject is not None
    assert str(manifest.subject.digest) == SUBJECT["digest"]
    assert manifest.artifact_type == "application/vnd.example+type"


def test_same_manifest_gives_same_bytes_whatever_the_input_order():
    data = image_manifest(annotations={"b": "2", "a": "1"})
    reordered = dict(reversed(list(data.items())))
    assert parse(raw(data)).to_bytes() == parse(raw(reordered, indent=1)).to_bytes()


def test_non_ascii_annotations_written_as_utf8():
    manifest = parse(raw(image_manifest(annotations={"title": "café"})))
    assert "café".encode() in manifest.to_bytes()


@pytest.mark.parametrize("media_type", [mt.OCI_LAYER_ZSTD, "application/vnd.example.layer"])
def test_unknown_or_zstd_layer_types_are_tolerated(media_type):
    data = image_manifest(layers=[_desc(media_type, "l")])
    assert parse(raw(data)).layers[0].media_type == media_type


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_parse_manifest_refuses_index(media_type):
    with pytest.raises(ImageFormatError, match="index"):
        parse_manifest(raw(image_index(media_type)))


def test_parse_manifest_returns_manifest():
    assert isinstance(parse_manifest(raw(image_manifest())), Manifest)


def test_descriptor_of_names_the_document():
    document = parse(raw(image_manifest())).to_bytes()
    descriptor = descriptor_of(document, mt.OCI_MANIFEST, annotations={"k": "v"})
    assert descriptor.digest == Digest.of_bytes(document)
    assert descriptor.size == len(document)
    assert descriptor.media_type == mt.OCI_MANIFEST
    assert dict(descriptor.annotations) == {"k": "v"}


@pytest.mark.parametrize("digest", [None, 7])
def test_non_string_config_digest_raises_image_format_error(digest):
    data = image_manifest()
    data["config"]["digest"] = digest
    with pytest.raises(ImageFormatError):
        parse(raw(data))
