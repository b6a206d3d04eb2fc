"""Files that appear whole or not at all.

Every file pyjib writes for a user or its cache goes through ``atomic_file``: the data lands in a
temporary file beside the target, which is renamed over it only when complete. An error, a
Ctrl-C or a crash leaves the old file (or none), never a partial one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK = 1 << 20


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """A writable file that becomes ``target`` when the block ends without an exception."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes 0600 files; what pyjib writes is for the user's tools too (umask rules).
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(name, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(name)
        raise


def _umask() -> int:
    # Reading the umask means setting it; done once, at import, before any thread writes files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_file(target) as f:
        f.write(data)


def write_stream(target: Path, stream: BinaryIO) -> None:
    with atomic_file(target) as f:
        while chunk := stream.read(COPY_CHUNK):
            f.write(chunk)
