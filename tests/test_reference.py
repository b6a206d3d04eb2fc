"""Image references: distribution's grammar, Docker Hub normalization, and round trips."""

from __future__ import annotations

import pytest

from jib.errors import InvalidReferenceError, JibError
from jib.image.digest import Digest
from jib.image.reference import Reference

#: What pytest.raises raises when the expected error does not come.
DID_NOT_RAISE = pytest.fail.Exception

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"
OTHER = f"sha256:{'f' * 64}"

VALID = [
    # text, registry, repository, tag, digest
    ("python", "docker.io", "library/python", "latest", None),
    ("python:3.12-slim", "docker.io", "library/python", "3.12-slim", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("user/app:v1", "docker.io", "user/app", "v1", None),
    ("index.docker.io/x", "docker.io", "library/x", "latest", None),
    ("index.docker.io/user/x:1", "docker.io", "user/x", "1", None),
    ("docker.io/library/x", "docker.io", "library/x", "latest", None),
    ("docker.io/x", "docker.io", "library/x", "latest", None),
    ("localhost:5000/a/b:1", "localhost:5000", "a/b", "1", None),
    ("localhost:5000/a", "localhost:5000", "a", "latest", None),
    ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", None),
    ("localhost/x", "localhost", "x", "latest", None),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None),
    ("[::1]/x:2", "[::1]", "x", "2", None),
    ("ghcr.io/org/team/app:1.0", "ghcr.io", "org/team/app", "1.0", None),
    (
        "reg.example.com/a.b/c_d/e__f/g-h--i:T_1.x-y",
        "reg.example.com",
        "a.b/c_d/e__f/g-h--i",
        "T_1.x-y",
        None,
    ),
    ("Registry.Example.COM/x", "Registry.Example.COM", "x", "latest", None),
    ("python:" + "a" * 128, "docker.io", "library/python", "a" * 128, None),
    # no registry component and no '/': 'localhost:5000' is the image 'localhost', tag '5000'
    ("localhost:5000", "docker.io", "library/localhost", "5000", None),
    (f"python:3.12@{DIGEST}", "docker.io", "library/python", "3.12", DIGEST),
    (f"python@{DIGEST}", "docker.io", "library/python", None, DIGEST),
    (f"localhost:5000/a@{DIGEST}", "localhost:5000", "a", None, DIGEST),
    (f"[::1]:5000/x:t@{DIGEST}", "[::1]:5000", "x", "t", DIGEST),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), VALID)
def test_parse_normalizes(text, registry, repository, tag, digest):
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == (Digest.parse(digest) if digest else None)


@pytest.mark.parametrize("text", [case[0] for case in VALID])
def test_str_round_trips(text):
    ref = Reference.parse(text)
    again = Reference.parse(str(ref))
    assert again == ref
    assert str(again) == str(ref)
    assert Reference.parse(ref.familiar) == ref


def test_spellings_of_one_docker_hub_image_are_equal():
    spellings = [
        "python",
        "python:latest",
        "library/python",
        "docker.io/python",
        "docker.io/library/python:latest",
        "index.docker.io/library/python",
    ]
    refs = {Reference.parse(s) for s in spellings}
    assert len(refs) == 1
    assert str(refs.pop()) == "docker.io/library/python:latest"


@pytest.mark.parametrize(
    ("text", "name", "identifier", "api_host", "familiar"),
    [
        ("python", "docker.io/library/python", "latest", "registry-1.docker.io", "python:latest"),
        ("user/app:v1", "docker.io/user/app", "v1", "registry-1.docker.io", "user/app:v1"),
        ("index.docker.io/x", "docker.io/library/x", "latest", "registry-1.docker.io", "x:latest"),
        (
            "localhost:5000/a/b:1",
            "localhost:5000/a/b",
            "1",
            "localhost:5000",
            "localhost:5000/a/b:1",
        ),
        ("[::1]:5000/x", "[::1]:5000/x", "latest", "[::1]:5000", "[::1]:5000/x:latest"),
        (
            f"python:3.12@{DIGEST}",
            "docker.io/library/python",
            DIGEST,
            "registry-1.docker.io",
            f"python:3.12@{DIGEST}",
        ),
        (f"ghcr.io/o/a@{DIGEST}", "ghcr.io/o/a", DIGEST, "ghcr.io", f"ghcr.io/o/a@{DIGEST}"),
        (
            "docker.io/libraryx/app",
            "docker.io/libraryx/app",
            "latest",
            "registry-1.docker.io",
            "libraryx/app:latest",
        ),
    ],
)
def test_derived_forms(text, name, identifier, api_host, familiar):
    ref = Reference.parse(text)
    assert ref.name == name
    assert ref.identifier == identifier
    assert ref.api_host == api_host
    assert ref.familiar == familiar


def test_str_of_digest_only_reference_has_no_tag():
    ref = Reference.parse(f"ghcr.io/o/a@{DIGEST}")
    assert str(ref) == f"ghcr.io/o/a@{DIGEST}"
    assert ":latest" not in str(ref)


def test_with_tag_replaces_tag_and_drops_digest():
    ref = Reference.parse(f"ghcr.io/o/a:1@{DIGEST}")
    tagged = ref.with_tag("2.0_rc-1")
    assert str(tagged) == "ghcr.io/o/a:2.0_rc-1"
    assert tagged.identifier == "2.0_rc-1"
    assert str(ref) == f"ghcr.io/o/a:1@{DIGEST}"  # the original is unchanged
    assert Reference.parse(str(tagged)) == tagged


def test_with_digest_pins_and_keeps_tag():
    ref = Reference.parse("localhost:5000/a:1")
    pinned = ref.with_digest(Digest.parse(OTHER))
    assert str(pinned) == f"localhost:5000/a:1@{OTHER}"
    assert pinned.identifier == OTHER
    assert ref.digest is None
    assert Reference.parse(str(pinned)) == pinned


@pytest.mark.parametrize("tag", ["-x", ".x", "", "a" * 129, "a/b", "a b", "a:b", "a@b"])
def test_with_tag_rejects_invalid_tags(tag):
    with pytest.raises(InvalidReferenceError):
        Reference.parse("python").with_tag(tag)


INVALID = [
    "",
    " ",
    " python",
    "python ",
    "python\t",
    "python\n",
    "pyt hon",
    "python:-x",
    "python:.x",
    "python:" + "a" * 129,
    "python:",
    "python:a/b",
    "python@",
    "python@sha256:abc",
    f"python@sha256:{HEX.upper()}",
    f"python@sha256:{HEX}0",
    f"python@md5:{'a' * 32}",
    f"python@{HEX}",
    f"python@{DIGEST}@{DIGEST}",
    f"@{DIGEST}",
    ":latest",
    "/python",
    "a//b",
    "a/",
    "-a/b",
    "a_/b",
    "a--/b",
    "localhost:port/x",
    "exa_mple.com:5000/x",
    "[::1/x",
    "example.com/" + "a" * 244,  # name of 256 characters
    "a" * 256,
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references_raise_one_line_naming_the_input(text):
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    message = str(info.value)
    assert isinstance(info.value, JibError)
    assert "\n" not in message
    assert text.strip() in message


def test_longest_allowed_name_is_255_characters():
    ref = Reference.parse("example.com/" + "a" * 243)
    assert len(ref.name) == 255


@pytest.mark.parametrize("text", ["Python", "User/App", "ghcr.io/Org/app:1", "localhost/X"])
def test_uppercase_repository_rejected_with_hint(text):
    with pytest.raises(InvalidReferenceError, match="lowercase") as info:
        Reference.parse(text)
    assert text in str(info.value)


@pytest.mark.parametrize("text", ["python:café", "python:v\u0661"])
def test_non_ascii_tag_rejected(text):
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        f"python:1\n@{DIGEST}",
        f"python\n@{DIGEST}",
        f"localhost:5000\n/x@{DIGEST}",
    ],
)
def test_embedded_newline_rejected(text):
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)


def test_with_tag_rejects_trailing_newline():
    with pytest.raises(InvalidReferenceError):
        Reference.parse("python").with_tag("v1\n")
