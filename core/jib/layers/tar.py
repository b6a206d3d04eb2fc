"""Layer entries as a reproducible tar stream.

The headers are built here rather than by ``tarfile`` so that the bytes depend on pyjib's version
alone: ``tarfile``'s choices (when to emit PAX records, how to fill unused fields, record padding)
belong to the Python version, and the same layer must hash the same under every interpreter.

The stream is POSIX pax (ustar headers, plus an ``x`` extended header only when a field does
not fit: a name or link target longer than 100 bytes or not ASCII, or a number too big for its
octal field). Entries come out sorted by path component, each directory's missing parents
added first (0o755, root, ``EPOCH_PLUS_SECOND``, like Jib's). Owner names are empty, device and
inode numbers never written, and the archive ends with the two zero blocks the format requires,
without padding to a 10 KiB record (as Go's archive/tar, which the container runtimes use).

Duplicates: entries that are equal in every field collapse into one (two trees may both add
``/app``); two different entries for one path are an error, since "last wins" would make the
layer depend on the order the entries were listed in.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import Protocol

from jib.errors import JibError
from jib.layers.entries import EntryKind, LayerEntry

BLOCK = 512
READ_CHUNK = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)
_TYPEFLAG = {EntryKind.FILE: b"0", EntryKind.SYMLINK: b"2", EntryKind.DIRECTORY: b"5"}
# tarfile's name for the extended header: fixed, unlike POSIX's default "%d/PaxHeaders.%p/%f",
# whose %p (a process id) would make every build different.
_PAX_NAME = "././@PaxHeader"


class Sink(Protocol):
    """Where the tar bytes go. ``write`` must be done with ``data`` when it returns: the
    writer reuses its read buffer."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class DuplicateEntryError(JibError):
    """Two different entries for one path, or a path below something that is not a directory."""


def _sort_key(path: str) -> tuple[bytes, ...]:
    # Component-wise, as UTF-8 bytes: a directory's contents follow it directly ("/a", "/a/b",
    # "/a-b"), and the order is the same under every locale.
    return tuple(part.encode("utf-8") for part in path.split("/")[1:])


def plan(entries: Iterable[LayerEntry]) -> list[LayerEntry]:
    """The entries in the order they will be written, with implicit parents, deduplicated."""
    by_path: dict[str, LayerEntry] = {}
    for entry in entries:
        previous = by_path.get(entry.path)
        if previous is None:
            by_path[entry.path] = entry
        elif previous != entry:
            raise DuplicateEntryError(
                f"two different entries for {entry.path} in one layer "
                f"({_describe(previous)} and {_describe(entry)}): keep only one of them"
            )
    for path in list(by_path):
        parts = path.split("/")[1:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/" + "/".join(parts[:depth])
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = LayerEntry.directory(parent)
            elif existing.kind is not EntryKind.DIRECTORY:
                raise DuplicateEntryError(
                    f"{parent} is a {existing.kind.value} in this layer, but {path} needs it to "
                    "be a directory: remove one of them"
                )
    return sorted(by_path.values(), key=lambda e: _sort_key(e.path))


def _describe(entry: LayerEntry) -> str:
    if entry.kind is EntryKind.FILE:
        src = entry.source if not isinstance(entry.source, bytes) else "generated content"
        return f"file from {src}, mode {entry.mode:o}"
    if entry.kind is EntryKind.SYMLINK:
        return f"symlink to {entry.link_target}"
    return f"directory, mode {entry.mode:o}, owner {entry.uid}:{entry.gid}"


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: str, value: str) -> bytes:
    payload = f" {key}={value}\n".encode()
    # The record's length counts its own decimal digits, so find the fixed point.
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:
        length = len(str(length)) + len(payload)
    return str(length).encode("ascii") + payload


def _ustar(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes,
) -> bytes:
    header = b"".join(
        (
            name[:100].ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(uid, 8),
            _octal(gid, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b" " * 8,  # checksum, computed over the header with this field as spaces
            typeflag,
            linkname[:100].ljust(100, b"\0"),
            b"ustar\x0000",
            bytes(32),  # uname: empty, never the host's user
            bytes(32),  # gname
            bytes(16),  # devmajor, devminor: no devices here, so left empty (as tarfile does)
            bytes(155),  # prefix: unused, long names go in a PAX record instead
        )
    ).ljust(BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def header(entry: LayerEntry, size: int) -> bytes:
    """The header block(s) for ``entry`` whose content is ``size`` bytes long."""
    name = entry.path[1:] + ("/" if entry.kind is EntryKind.DIRECTORY else "")
    name_b = name.encode("utf-8")
    link_b = entry.link_target.encode("utf-8")
    pax: dict[str, str] = {}
    if len(name_b) > 100 or not name.isascii():
        pax["path"] = name
    if len(link_b) > 100 or not entry.link_target.isascii():
        pax["linkpath"] = entry.link_target
    numbers = {
        "uid": (entry.uid, 8),
        "gid": (entry.gid, 8),
        "size": (size, 12),
        "mtime": (entry.mtime, 12),
    }
    fitted: dict[str, int] = {}
    for key, (value, width) in numbers.items():
        if value >= 8 ** (width - 1):
            pax[key] = str(value)
            fitted[key] = 0
        else:
            fitted[key] = value
    main = _ustar(
        name_b,
        entry.mode,
        fitted["uid"],
        fitted["gid"],
        fitted["size"],
        fitted["mtime"],
        _TYPEFLAG[entry.kind],
        link_b,
    )
    if not pax:
        return main
    records = b"".join(_pax_record(key, pax[key]) for key in sorted(pax))
    ext = _ustar(_PAX_NAME.encode(), 0o644, 0, 0, len(records), 0, b"x", b"")
    return ext + records + _padding(len(records)) + main


def _padding(size: int) -> bytes:
    return _ZERO_BLOCK[: -size % BLOCK]


def _source_error(entry: LayerEntry, exc: OSError | str) -> JibError:
    reason = exc if isinstance(exc, str) else (exc.strerror or str(exc))
    return JibError(
        f"cannot read {entry.source} (for {entry.path} in the layer): {reason}; "
        "check that it exists, is a readable regular file, and is not changed during the build"
    )


def _write_file(entry: LayerEntry, sink: Sink, buffer: bytearray) -> None:
    assert entry.source is not None
    if isinstance(entry.source, bytes):
        sink.write(header(entry, len(entry.source)))
        sink.write(entry.source)
        sink.write(_padding(len(entry.source)))
        return
    # O_NONBLOCK so that a FIFO in the file's place fails below instead of hanging the build.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(entry.source, flags)
    except OSError as exc:
        raise _source_error(entry, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise _source_error(entry, f"it is {what}")
        # Only now: FileIO itself refuses a directory, with an OSError that would be misread.
        f = open(fd, "rb", buffering=0, closefd=True)  # noqa: SIM115 - closed by the with below
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise _source_error(entry, exc) from None
        raise
    with f:
        size = st.st_size
        sink.write(header(entry, size))
        view = memoryview(buffer)
        remaining = size
        while remaining:
            try:
                n = f.readinto(view[: min(remaining, len(view))])
            except OSError as exc:
                raise _source_error(entry, exc) from None
            if not n:
                raise _source_error(entry, "it shrank while the layer was being written")
            sink.write(view[:n])
            remaining -= n
        try:
            grew = f.read(1)
        except OSError as exc:
            raise _source_error(entry, exc) from None
        if grew:
            raise _source_error(entry, "it grew while the layer was being written")
        sink.write(_padding(size))


def write_tar(entries: Iterable[LayerEntry], sink: Sink) -> None:
    """Write the layer tar for ``entries`` to ``sink``, streaming file contents in chunks."""
    buffer = bytearray(READ_CHUNK)
    for entry in plan(entries):
        if entry.kind is EntryKind.FILE:
            _write_file(entry, sink, buffer)
        else:
            sink.write(header(entry, 0))
    sink.write(_ZERO_BLOCK * 2)
