"""Digests, and the verifying reader that refuses corrupt blobs while streaming them."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile

import pytest

from jib.errors import DigestMismatchError, ImageFormatError, JibError
from jib.image.digest import Digest, VerifyingReader, verified_opener

#: What pytest.raises raises when the expected error does not come.
DID_NOT_RAISE = pytest.fail.Exception

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
BLOB = bytes(range(256)) * 9000  # ~2.2 MiB: crosses the reader's 1 MiB chunks


@pytest.mark.parametrize(
    "text",
    [f"sha256:{EMPTY_SHA256}", f"sha256:{ABC_SHA256}", f"sha512:{'0a' * 64}"],
)
def test_parse_str_round_trip(text):
    digest = Digest.parse(text)
    assert str(digest) == text
    assert Digest.parse(str(digest)) == digest
    assert digest.algorithm == text.split(":")[0]
    assert digest.encoded == text.split(":")[1]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        f":{ABC_SHA256}",
        f"sha256:{ABC_SHA256[:-1]}",
        f"sha256:{ABC_SHA256}0",
        f"sha256:{ABC_SHA256.upper()}",
        f"SHA256:{ABC_SHA256}",
        f"sha256:{'g' * 64}",
        f"md5:{'a' * 32}",
        f"sha1:{'a' * 40}",
        f"sha512:{ABC_SHA256}",
        f" sha256:{ABC_SHA256}",
        f"sha256:{ABC_SHA256} ",
        f"sha256 :{ABC_SHA256}",
        f"sha256:{ABC_SHA256}@x",
    ],
)
def test_parse_rejects_malformed(text):
    with pytest.raises(ImageFormatError) as info:
        Digest.parse(text)
    assert isinstance(info.value, JibError)
    assert "\n" not in str(info.value)


def test_parse_rejects_trailing_newline():
    with pytest.raises(ImageFormatError):
        Digest.parse(f"sha256:{ABC_SHA256}\n")


@pytest.mark.parametrize("value", [None, 5, ["sha256:x"]])
def test_parse_rejects_non_strings(value):
    with pytest.raises(ImageFormatError):
        Digest.parse(value)


def test_of_bytes_known_vectors():
    assert str(Digest.of_bytes(b"")) == f"sha256:{EMPTY_SHA256}"
    assert str(Digest.of_bytes(b"abc")) == f"sha256:{ABC_SHA256}"


def test_of_stream_gives_digest_and_size():
    digest, size = Digest.of_stream(io.BytesIO(BLOB))
    assert digest == Digest.of_bytes(BLOB)
    assert size == len(BLOB)


def test_of_stream_covers_only_what_is_left():
    stream = io.BytesIO(b"xxabc")
    stream.read(2)
    assert Digest.of_stream(stream) == (Digest.of_bytes(b"abc"), 3)


def test_digests_compare_and_hash_by_value():
    assert Digest.parse(f"sha256:{ABC_SHA256}") == Digest.of_bytes(b"abc")
    assert len({Digest.of_bytes(b"abc"), Digest.parse(f"sha256:{ABC_SHA256}")}) == 1
    assert Digest.of_bytes(b"abc") != Digest.of_bytes(b"abd")


def test_verify_accepts_matching_content():
    Digest.of_bytes(b"abc").verify(b"abc")
    Digest.parse(f"sha512:{hashlib.sha512(b'abc').hexdigest()}").verify(b"abc")


def test_verify_raises_naming_what_and_both_digests():
    expected = Digest.of_bytes(b"abc")
    with pytest.raises(DigestMismatchError) as info:
        expected.verify(b"abd", "layer blob")
    message = str(info.value)
    assert "layer blob" in message
    assert str(expected) in message
    assert str(Digest.of_bytes(b"abd")) in message
    assert "\n" not in message
    assert isinstance(info.value, JibError)


def _reader(data: bytes, size: int | None = len(BLOB)) -> VerifyingReader:
    return VerifyingReader(io.BytesIO(data), Digest.of_bytes(BLOB), size, "base layer")


@pytest.mark.parametrize("size", [len(BLOB), None])
def test_reader_passes_correct_content_through(size):
    with _reader(BLOB, size) as reader:
        assert reader.read() == BLOB


def test_reader_works_with_small_chunked_copies():
    out = io.BytesIO()
    with _reader(BLOB) as reader:
        shutil.copyfileobj(reader, out, 4096)
    assert out.getvalue() == BLOB


def test_reader_of_empty_blob():
    reader = VerifyingReader(io.BytesIO(b""), Digest.of_bytes(b""), 0, "empty")
    assert reader.read() == b""


def _corrupt(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0x01
    return bytes(changed)


BAD_STREAMS = {
    "corrupted byte": _corrupt(BLOB, len(BLOB) // 2),
    "corrupted last byte": _corrupt(BLOB, len(BLOB) - 1),
    "truncated": BLOB[:-1],
    "truncated to nothing": b"",
    "over-long": BLOB + b"\0",
}


@pytest.mark.parametrize("size", [len(BLOB), None])
@pytest.mark.parametrize("name", list(BAD_STREAMS))
def test_reader_refuses_bad_content(name, size):
    reader = _reader(BAD_STREAMS[name], size)
    with pytest.raises(DigestMismatchError) as info:
        reader.read()
    message = str(info.value)
    assert "base layer" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", list(BAD_STREAMS))
def test_reader_refuses_bad_content_in_chunked_copy(name):
    with pytest.raises(DigestMismatchError):
        shutil.copyfileobj(_reader(BAD_STREAMS[name]), io.BytesIO(), 4096)


def test_reader_raises_only_at_the_end():
    reader = _reader(BAD_STREAMS["corrupted last byte"])
    assert reader.read(1000) == BLOB[:1000]  # no premature verdict
    with pytest.raises(DigestMismatchError):
        reader.read()


def test_reader_close_closes_the_source():
    source = io.BytesIO(BLOB)
    reader = VerifyingReader(source, Digest.of_bytes(BLOB), len(BLOB), "blob")
    reader.close()
    assert source.closed


def test_verified_opener_gives_fresh_verified_readers():
    opened: list[io.BytesIO] = []

    def opener() -> io.BytesIO:
        opened.append(io.BytesIO(BLOB))
        return opened[-1]

    open_verified = verified_opener(opener, Digest.of_bytes(BLOB), len(BLOB), "blob")
    with open_verified() as first:
        assert first.read() == BLOB
    with open_verified() as second:
        assert second.read() == BLOB
    assert len(opened) == 2


@pytest.mark.parametrize("name", list(BAD_STREAMS))
def test_verified_opener_refuses_bad_content(name):
    data = BAD_STREAMS[name]
    open_verified = verified_opener(
        lambda: io.BytesIO(data), Digest.of_bytes(BLOB), len(BLOB), "config blob"
    )
    with pytest.raises(DigestMismatchError, match="config blob"):
        open_verified().read()


def test_reader_refuses_corrupt_blob_streamed_into_a_tar():
    reader = _reader(BAD_STREAMS["corrupted byte"])
    info = tarfile.TarInfo("blobs/sha256/layer")
    info.size = len(BLOB)
    with (
        tarfile.open(fileobj=io.BytesIO(), mode="w") as tar,
        pytest.raises(DigestMismatchError),
    ):
        tar.addfile(info, reader)
