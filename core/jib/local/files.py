"""Read-only access to the files of an image archive, whether a directory or a tar.

OCI layouts and docker-archives are the same kind of thing stored two ways; readers ask for
files by their path inside, and a tar member is read in place (by offset), never extracted.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, Protocol

from jib.errors import ImageFormatError, JibError

#: The largest JSON document (manifest, config, index) read into memory; real ones are a few KB.
MAX_DOCUMENT = 16 << 20


class Files(Protocol):
    """Files by their ``/``-separated path inside an archive or directory."""

    description: str

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def opener(self, name: str) -> Callable[[], BinaryIO]: ...


def read_document(files: Files, name: str) -> bytes:
    """A small file (JSON) read whole; a missing or oversized one is a format error."""
    if not files.exists(name):
        raise ImageFormatError(f"{files.description} has no {name}")
    if files.size(name) > MAX_DOCUMENT:
        raise ImageFormatError(f"{files.description}: {name} is too large to be image metadata")
    with files.opener(name)() as stream:
        return stream.read()


def _unlink(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


def _normalize(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


class DirectoryFiles:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise JibError(f"{root} is not a directory: give oci://DIR an OCI image layout")
        self.root = root
        self.description = f"OCI layout {root}"

    def _path(self, name: str) -> Path:
        return self.root / _normalize(name)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        path = self._path(name)

        def open_file() -> BinaryIO:
            try:
                return path.open("rb")
            except OSError as err:
                raise JibError(f"cannot read {path}: {err.strerror}") from None

        return open_file


class _Section(io.RawIOBase):
    """``size`` bytes of a file from ``offset``, with its own handle (safe across threads)."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._file.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        count = self._file.readinto(view)
        if not count:
            raise ImageFormatError(f"{self._file.name} is truncated")
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


class TarFiles:
    """The members of an uncompressed tar, indexed once; a compressed tar is unpacked first."""

    def __init__(self, path: Path, scratch_dir: Path | None = None) -> None:
        self.description = f"image archive {path}"
        self._temp: Path | None = None
        self._cleanup: Callable[[], object] = lambda: None
        if not path.is_file():
            raise JibError(f"{path} does not exist or is not a file: give tar://PATH an image tar")
        self.path = self._uncompressed(path, scratch_dir)
        self._members: dict[str, tuple[int, int]] = {}
        try:
            self._index()
        except BaseException:
            self.close()
            raise

    def _uncompressed(self, path: Path, scratch_dir: Path | None) -> Path:
        """``docker save | gzip`` output is common; random access needs the plain tar."""
        with path.open("rb") as f:
            magic = f.read(2)
        if magic != b"\x1f\x8b":
            return path
        fd, name = tempfile.mkstemp(prefix="pyjib-archive-", suffix=".tar", dir=scratch_dir)
        self._temp = Path(name)
        self._cleanup = weakref.finalize(self, _unlink, self._temp)
        try:
            with gzip.open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            self.close()
            raise ImageFormatError(f"{path} is a corrupt or truncated gzip file ({err})") from None
        return self._temp

    def _index(self) -> None:
        total = self.path.stat().st_size
        links: dict[str, str] = {}
        try:
            with tarfile.open(self.path, "r:") as tar:
                for member in tar:
                    name = _normalize(member.name)
                    if member.isfile():
                        if member.offset_data + member.size > total:
                            raise ImageFormatError(
                                f"{self.description} is truncated (in {member.name})"
                            )
                        self._members[name] = (member.offset_data, member.size)
                    elif member.issym():
                        links[name] = _normalize(
                            posixpath.join(posixpath.dirname(name), member.linkname)
                        )
                    elif member.islnk():
                        links[name] = _normalize(member.linkname)
        except (tarfile.TarError, EOFError) as err:
            raise ImageFormatError(
                f"{self.description} is not a readable tar ({err}); check the file is complete"
            ) from None
        # docker save links duplicate layers to one file; resolve chains of links to their data.
        for name, target in links.items():
            for _ in range(16):
                if target in self._members or target not in links:
                    break
                target = links[target]
            if target in self._members:
                self._members[name] = self._members[target]

    def exists(self, name: str) -> bool:
        return _normalize(name) in self._members

    def size(self, name: str) -> int:
        return self._members[_normalize(name)][1]

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        offset, size = self._members[_normalize(name)]

        # The closure holds ``self``, so an unpacked copy lives as long as a layer that reads it.
        def open_member() -> BinaryIO:
            return io.BufferedReader(_Section(self.path, offset, size), 1 << 20)  # type: ignore[return-value]

        return open_member

    def close(self) -> None:
        """Remove the unpacked copy of a compressed archive, if one was made."""
        self._cleanup()
