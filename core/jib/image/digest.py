"""Content digests (``sha256:<hex>``), the names every blob goes by."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from jib.errors import DigestMismatchError, ImageFormatError

_HEX = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")

CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """An ``algorithm:hex`` content digest; ``str()`` gives the wire form."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if not match:
            raise ImageFormatError(f"invalid digest {text!r}: expected sha256:<64 hex digits>")
        algorithm, encoded = match.groups()
        length = _HEX.get(algorithm)
        if length is None:
            raise ImageFormatError(f"unsupported digest algorithm in {text!r}: use sha256")
        if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
            raise ImageFormatError(
                f"invalid digest {text!r}: expected {length} lowercase hex digits after {algorithm}:"
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

    @property
    def encoded(self) -> str:
        return self.hex

    def verify(self, data: bytes, what: str = "content") -> None:
        actual = Digest(self.algorithm, hashlib.new(self.algorithm, data).hexdigest())
        if actual != self:
            raise DigestMismatchError(f"{what} has digest {actual}, expected {self}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"
