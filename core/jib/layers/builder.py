"""Build a layer blob in one streaming pass: entries -> tar -> sha256 (diff_id) -> gzip ->
sha256 (digest) -> a temporary file in the output directory, renamed to ``<digest-hex>.tar.gz``
only once complete.

Nothing holds a whole layer in memory (file contents go through in 1 MiB reads, compression in
``MEMBER_SIZE`` pieces), and nothing partial is left behind: on any exception, Ctrl-C included,
the temporary file is removed before the exception propagates.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jib.errors import JibError
from jib.image.digest import Digest
from jib.image.mediatypes import OCI_LAYER_GZIP
from jib.layers.compress import DEFAULT_COMPRESSION, Compression, Sink, gzip_writer
from jib.layers.entries import LayerEntry
from jib.layers.tar import write_tar

LAYER_SUFFIX = ".tar.gz"
_TEMP_PREFIX = ".partial-layer-"


@dataclass(frozen=True)
class BuiltLayer:
    """A gzipped layer blob on disk; satisfies ``jib.image.layer.Layer``."""

    path: Path
    digest: Digest
    diff_id: Digest
    size: int
    uncompressed_size: int
    media_type: str = OCI_LAYER_GZIP

    def open(self) -> BinaryIO:
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise JibError(
                f"layer {self.digest} is missing from {self.path.parent} "
                f"({exc.strerror or exc}): delete that directory and build again"
            ) from None


class _Hashing:
    """A sink that hashes and counts what passes through it on the way to ``out``."""

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> None:
        self._hash.update(data)
        self.size += len(data)
        self._out.write(data)

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())


class _OutputError(Exception):
    """An OSError writing the output, told apart from one reading a source file."""


class _Output:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def write(self, data: bytes | memoryview, /) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise _OutputError(exc) from exc


def _output_error(out_dir: Path, exc: OSError) -> JibError:
    hint = (
        "free some disk space"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT)
        else "check that it is a writable directory"
    )
    return JibError(f"cannot write a layer to {out_dir}: {exc.strerror or exc}; {hint}")


def build_layer(
    entries: Iterable[LayerEntry],
    out_dir: str | os.PathLike[str],
    *,
    compression: Compression = DEFAULT_COMPRESSION,
    threads: int | None = None,
    media_type: str = OCI_LAYER_GZIP,
) -> BuiltLayer:
    """Write the gzipped layer tar of ``entries`` to ``out_dir/<digest-hex>.tar.gz``.

    The same entries (same contents, paths, modes, owners, mtimes) and the same pyjib version
    give the same bytes, whatever the host. ``threads`` only changes the speed.
    Failures are JibErrors that name the file at fault; nothing partial is left in ``out_dir``.
    """
    return _build(
        lambda tar: write_tar(entries, tar),
        out_dir,
        compression=compression,
        threads=threads,
        media_type=media_type,
    )


def compress_tar(
    stream: BinaryIO,
    out_dir: str | os.PathLike[str],
    *,
    compression: Compression = DEFAULT_COMPRESSION,
    threads: int | None = None,
    media_type: str = OCI_LAYER_GZIP,
) -> BuiltLayer:
    """An existing uncompressed layer tar (a ``docker save`` layer), gzipped the same
    reproducible way, with its diff_id computed on the way."""

    def copy(tar: Sink) -> None:
        while chunk := stream.read(1 << 20):
            tar.write(chunk)

    return _build(copy, out_dir, compression=compression, threads=threads, media_type=media_type)


def _build(
    produce: Callable[[Sink], None],
    out_dir: str | os.PathLike[str],
    *,
    compression: Compression,
    threads: int | None,
    media_type: str,
) -> BuiltLayer:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".tmp", dir=out)
    except OSError as exc:
        raise _output_error(out, exc) from None
    temp = Path(temp_name)
    try:
        with open(fd, "wb", buffering=1 << 20) as file:
            compressed = _Hashing(_Output(file))
            gzip = gzip_writer(compression, compressed, threads=threads)
            try:
                tar = _Hashing(gzip)
                produce(tar)
                gzip.close()
            finally:
                gzip.abort()
            file.flush()
            # A cache entry named by its digest must never be a torn file after a crash.
            os.fsync(file.fileno())
        # mkstemp made it 0o600; a cache may be shared by users or read by other tools.
        os.chmod(temp, 0o644)
        final = out / f"{compressed.digest().hex}{LAYER_SUFFIX}"
        os.replace(temp, final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(exc, _OutputError):
            raise _output_error(out, exc.args[0]) from None
        if isinstance(exc, OSError):
            raise _output_error(out, exc) from None
        raise
    return BuiltLayer(
        path=final,
        digest=compressed.digest(),
        diff_id=tar.digest(),
        size=compressed.size,
        uncompressed_size=tar.size,
        media_type=media_type,
    )
