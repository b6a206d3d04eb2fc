"""Platforms, descriptors, and picking one platform's manifest out of an index."""

from __future__ import annotations

import base64

import pytest

from jib.errors import DigestMismatchError, ImageFormatError, JibError
from jib.image import mediatypes
from jib.image.descriptor import Descriptor, Platform, select_platform
from jib.image.digest import Digest

#: What pytest.raises raises when the expected error does not come.
DID_NOT_RAISE = pytest.fail.Exception

EMPTY = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/x86-64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        (" linux/s390x ", Platform("linux", "s390x")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_platform_parse(text, expected):
    assert Platform.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "linux",
        "amd64",
        "x86_64",
        "linux/",
        "/amd64",
        "linux//v8",
        "linux/arm/v7/x",
        "linux/amd64/",
    ],
)
def test_platform_parse_rejects(text):
    with pytest.raises(JibError) as info:
        Platform.parse(text)
    assert "\n" not in str(info.value)
    assert repr(text) in str(info.value) or text.strip() in str(info.value)


@pytest.mark.parametrize("text", ["linux/amd64", "linux/arm64/v8", "windows/arm/v7"])
def test_platform_str_round_trips(text):
    assert str(Platform.parse(text)) == text
    assert Platform.parse(str(Platform.parse(text))) == Platform.parse(text)


@pytest.mark.parametrize(
    ("entry", "wanted", "ok"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm/v7", "linux/arm", True),
        ("linux/arm", "linux/arm/v7", True),
        ("linux/arm/v7", "linux/arm/v7", True),
        ("linux/arm/v7", "linux/arm/v6", False),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm64/v8", "linux/arm64/v9", False),
        ("linux/amd64", "linux/arm64", False),
        ("windows/amd64", "linux/amd64", False),
        ("linux/arm64/v8", "linux/amd64", False),
    ],
)
def test_satisfies(entry, wanted, ok):
    assert Platform.parse(entry).satisfies(Platform.parse(wanted)) is ok


def test_satisfies_os_version_and_features():
    entry = Platform("windows", "amd64", os_version="10.0.17763.1", os_features=("win32k",))
    assert entry.satisfies(Platform("windows", "amd64"))
    assert entry.satisfies(Platform("windows", "amd64", os_features=("win32k",)))
    assert not entry.satisfies(Platform("windows", "amd64", os_version="10.0.20348.1"))
    assert not entry.satisfies(Platform("windows", "amd64", os_features=("other",)))


def test_platform_json_round_trip():
    data = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.1",
        "os.features": ["win32k"],
        "variant": "v3",
        "features": ["sse4"],
    }
    platform = Platform.from_json(data)
    assert platform.os_version == "10.0.17763.1"
    assert platform.os_features == ("win32k",)
    assert platform.to_json() == data
    assert Platform.from_json(platform.to_json()) == platform


def test_platform_to_json_omits_absent_fields():
    assert Platform("linux", "amd64").to_json() == {"architecture": "amd64", "os": "linux"}


@pytest.mark.parametrize("data", [{"os": "linux"}, {"architecture": "amd64"}, {}])
def test_platform_from_json_requires_os_and_architecture(data):
    with pytest.raises(ImageFormatError):
        Platform.from_json(data)


FULL = {
    "mediaType": mediatypes.OCI_EMPTY,
    "digest": EMPTY_DIGEST,
    "size": 2,
    "annotations": {"org.opencontainers.image.title": "x", "b": ""},
    "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
    "urls": ["https://example.com/blob"],
    "artifactType": "application/vnd.example+type",
    "data": "e30=",
}


def test_descriptor_json_round_trip_with_every_field():
    descriptor = Descriptor.from_json(FULL)
    assert descriptor.digest == Digest.parse(EMPTY_DIGEST)
    assert descriptor.size == 2
    assert dict(descriptor.annotations) == FULL["annotations"]
    assert descriptor.platform == Platform("linux", "arm64", "v8")
    assert descriptor.urls == ("https://example.com/blob",)
    assert descriptor.artifact_type == "application/vnd.example+type"
    assert descriptor.data == EMPTY
    assert descriptor.to_json() == FULL
    assert Descriptor.from_json(descriptor.to_json()) == descriptor


def test_minimal_descriptor_to_json_has_only_required_fields():
    descriptor = Descriptor(mediatypes.OCI_CONFIG, Digest.of_bytes(EMPTY), 2)
    assert descriptor.to_json() == {
        "mediaType": mediatypes.OCI_CONFIG,
        "digest": EMPTY_DIGEST,
        "size": 2,
    }


def test_descriptor_annotations_are_read_only():
    descriptor = Descriptor.from_json(FULL)
    with pytest.raises(TypeError):
        descriptor.annotations["new"] = "x"  # type: ignore[index]


def test_inline_data_is_verified_against_the_digest():
    wrong = {**FULL, "data": base64.b64encode(b"[]").decode()}
    with pytest.raises(DigestMismatchError):
        Descriptor.from_json(wrong)


@pytest.mark.parametrize(
    "data",
    [
        {"digest": EMPTY_DIGEST, "size": 2},
        {"mediaType": "x", "size": 2},
        {"mediaType": "x", "digest": EMPTY_DIGEST},
        {"mediaType": "x", "digest": "sha256:abc", "size": 2},
        {"mediaType": "x", "digest": EMPTY_DIGEST, "size": "2"},
        {"mediaType": "x", "digest": EMPTY_DIGEST, "size": 2.0},
        {"mediaType": 1, "digest": EMPTY_DIGEST, "size": 2},
        {"mediaType": "x", "digest": EMPTY_DIGEST, "size": -1},
        {"mediaType": "x", "digest": EMPTY_DIGEST, "size": 2, "annotations": ["a"]},
        {"mediaType": "x", "digest": EMPTY_DIGEST, "size": 2, "platform": {"os": "linux"}},
        ["mediaType"],
        "sha256:abc",
        None,
    ],
)
def test_malformed_descriptors_raise_image_format_error(data):
    with pytest.raises(ImageFormatError):
        Descriptor.from_json(data, "layer 0")


def test_negative_size_rejected_on_construction():
    with pytest.raises(ImageFormatError):
        Descriptor(mediatypes.OCI_CONFIG, Digest.of_bytes(EMPTY), -1)


@pytest.mark.parametrize("digest", [None, 5])
def test_non_string_digest_raises_image_format_error(digest):
    with pytest.raises(ImageFormatError):
        Descriptor.from_json({"mediaType": "x", "digest": digest, "size": 2})


def test_invalid_base64_data_raises_image_format_error():
    with pytest.raises(ImageFormatError):
        Descriptor.from_json({**FULL, "data": "not base64!"})


def test_inline_data_is_verified_against_the_size():
    with pytest.raises(JibError):
        Descriptor.from_json({**FULL, "size": 7})


def test_non_object_platform_raises_image_format_error():
    with pytest.raises(ImageFormatError):
        Descriptor.from_json({**FULL, "platform": "linux/amd64"})


def _entry(platform: str, n: int, **annotations: str) -> Descriptor:
    os_, arch, *variant = platform.split("/")
    return Descriptor(
        mediatypes.OCI_MANIFEST,
        Digest.of_bytes(f"{platform}{n}".encode()),
        100 + n,
        annotations=annotations,
        platform=Platform(os_, arch, variant[0] if variant else None),
    )


ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}
INDEX = [
    _entry("unknown/unknown", 0, **ATTESTATION),
    _entry("linux/amd64", 1),
    _entry("linux/arm64/v8", 2),
    _entry("unknown/unknown", 3, **ATTESTATION),
    _entry("linux/arm/v7", 4),
    _entry("linux/amd64", 5),
]


@pytest.mark.parametrize(
    ("wanted", "index"),
    [("linux/amd64", 1), ("linux/arm64", 2), ("linux/arm64/v8", 2), ("linux/arm", 4)],
)
def test_select_platform_picks_first_match(wanted, index):
    assert select_platform(INDEX, Platform.parse(wanted)) is INDEX[index]


def test_select_platform_skips_attestations_even_if_first():
    # an attestation that claims a real platform is still never an image to run
    fake = _entry("linux/amd64", 9, **ATTESTATION)
    unknown = _entry("unknown/unknown", 8)
    assert select_platform([fake, unknown, *INDEX], Platform.parse("linux/amd64")) is INDEX[1]
    with pytest.raises(JibError):
        select_platform([unknown], Platform("unknown", "unknown"))


def test_select_platform_without_match_lists_available_platforms():
    with pytest.raises(JibError) as info:
        select_platform(INDEX, Platform.parse("linux/arm/v6"), "docker.io/library/python:3.12")
    message = str(info.value)
    assert "\n" not in message
    assert "docker.io/library/python:3.12" in message
    assert "linux/arm/v6" in message
    for available in ("linux/amd64", "linux/arm64/v8", "linux/arm/v7"):
        assert available in message
    assert "unknown" not in message


def test_select_platform_on_empty_index_raises():
    with pytest.raises(JibError):
        select_platform([], Platform.parse("linux/amd64"))
