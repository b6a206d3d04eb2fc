"""Content digests (``sha256:<hex>``), the names every blob goes by."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jib.errors import DigestMismatchError, ImageFormatError

_HEX = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")

CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """An ``algorithm:hex`` content digest; ``str()`` gives the wire form."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not isinstance(text, str):
            raise ImageFormatError(f"invalid digest {text!r}: expected a sha256:<hex> string")
        match = _DIGEST_RE.fullmatch(text)
        if not match:
            raise ImageFormatError(f"invalid digest {text!r}: expected sha256:<64 hex digits>")
        algorithm, encoded = match.groups()
        length = _HEX.get(algorithm)
        if length is None:
            raise ImageFormatError(f"unsupported digest algorithm in {text!r}: use sha256")
        if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
            raise ImageFormatError(
                f"invalid digest {text!r}: expected {length} lowercase hex digits "
                f"after {algorithm}:"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    @classmethod
    def of_stream(cls, stream: BinaryIO) -> tuple[Digest, int]:
        """The sha256 digest and size of what is left in ``stream``, read in chunks."""
        h = hashlib.sha256()
        size = 0
        while chunk := stream.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
        return cls("sha256", h.hexdigest()), size

    @classmethod
    def of_file(cls, path: Path) -> tuple[Digest, int]:
        """The sha256 digest and size of the file at ``path``, read in chunks."""
        with path.open("rb") as stream:
            return cls.of_stream(stream)

    @property
    def encoded(self) -> str:
        return self.hex

    def verify(self, data: bytes, what: str = "content") -> None:
        actual = Digest(self.algorithm, hashlib.new(self.algorithm, data).hexdigest())
        if actual != self:
            raise DigestMismatchError(f"{what} has digest {actual}, expected {self}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class VerifyingReader(io.RawIOBase):
    """Reads ``stream`` through, and raises at its end unless digest and size are the expected.

    Lets a consumer stream a blob (into a tar, a registry upload, a cache file) and still refuse
    corrupt content, without a second read.
    """

    def __init__(self, stream: BinaryIO, expected: Digest, size: int | None, what: str) -> None:
        super().__init__()
        self._stream = stream
        self._expected = expected
        self._size = size
        self._what = what
        self._hash = hashlib.new(expected.algorithm)
        self._seen = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        if not data:
            self._check()
            return 0
        buffer[: len(data)] = data
        self._hash.update(data)
        self._seen += len(data)
        if self._size is not None and self._seen > self._size:
            raise DigestMismatchError(
                f"{self._what} is larger than the {self._size} bytes it should have"
            )
        if self._seen == self._size:
            # Consumers such as tarfile read exactly ``size`` bytes and never see EOF.
            self._check()
        return len(data)

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._size is not None and self._seen != self._size:
            raise DigestMismatchError(
                f"{self._what} is truncated: {self._seen} of {self._size} bytes"
            )
        actual = Digest(self._expected.algorithm, self._hash.hexdigest())
        if actual != self._expected:
            raise DigestMismatchError(
                f"{self._what} is corrupt: its digest is {actual}, expected {self._expected}"
            )

    def close(self) -> None:
        self._stream.close()
        super().close()


def verified_opener(
    opener: Callable[[], BinaryIO], expected: Digest, size: int | None, what: str
) -> Callable[[], BinaryIO]:
    """An opener whose readers raise at the end unless the content is ``expected``."""

    def open_verified() -> BinaryIO:
        return VerifyingReader(opener(), expected, size, what)  # type: ignore[return-value]

    return open_verified
