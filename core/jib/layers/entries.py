"""What goes into a layer: one ``LayerEntry`` per file, directory or symlink.

An entry carries everything the tar header will say, decided when the entry is made, so the layer
depends on the entry list alone and never on the host: not on its owners (uid/gid default to 0),
its umask or modes (files get 0o644, or 0o755 when the source's owner-execute bit is set; a
directory gets 0o755), nor its clocks (every mtime defaults to ``EPOCH_PLUS_SECOND``, as Jib's
``filesModificationTime`` does, since some tools read an mtime of 0 as "unset").

Only the owner-execute bit of a source is looked at because it is the one bit every umask in real
use (022, 002, 077) leaves alone, so the same checkout gives the same modes on every machine.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jib.errors import JibError

#: Jib's default file modification time: 1970-01-01T00:00:01Z.
EPOCH_PLUS_SECOND = 1

FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
DIRECTORY_MODE = 0o755
SYMLINK_MODE = 0o777  # what GNU tar and Go's archive/tar record; runtimes ignore it


class EntryKind(enum.Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


class LayerPathError(JibError, ValueError):
    """A target path that cannot be put in a layer."""


def normalize_target(path: str) -> str:
    """``path`` as an absolute, normalized POSIX path ("/app/x.py"), or a LayerPathError.

    "." and empty components are dropped; ".." is refused rather than resolved, since a
    path that climbs is almost always a mistake in the caller's mapping.
    """
    if not isinstance(path, str):
        raise LayerPathError(f"layer path {path!r} must be a string")
    if "\0" in path:
        raise LayerPathError(f"layer path {path!r} contains a NUL character: remove it")
    if not path.startswith("/"):
        raise LayerPathError(f"layer path {path!r} must be absolute: start it with '/'")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerPathError(f"layer path {path!r} contains '..': give the path it resolves to")
    normalized = "/" + "/".join(parts)
    try:
        normalized.encode("utf-8")
    except UnicodeEncodeError:
        raise LayerPathError(
            f"layer path {path!r} is not valid UTF-8: rename the file (image tools expect UTF-8)"
        ) from None
    return normalized


def _check_mode(mode: int, path: str) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise LayerPathError(f"mode {mode!r} of {path} must be an int between 0 and 0o7777")
    return mode


def _check_id(value: int, what: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise LayerPathError(f"{what} {value!r} of {path} must be an int between 0 and 2**32-1")
    return value


def _stat_source(src: Path) -> os.stat_result:
    try:
        return os.stat(src)
    except OSError as exc:
        raise JibError(
            f"cannot read {src}: {exc.strerror or exc}; check that it exists and is readable"
        ) from None


@dataclass(frozen=True)
class LayerEntry:
    """One file, directory or symlink of a layer, with the metadata its tar header gets.

    ``source`` is a ``Path`` (read when the layer is written) or ``bytes`` for a file, ``None``
    for a directory or symlink; ``link_target`` is a symlink's target, kept verbatim.
    Use the constructors (``file``, ``data``, ``directory``, ``symlink``) rather than this one.
    """

    path: str
    kind: EntryKind
    mode: int
    source: Path | bytes | None = None
    link_target: str = ""
    uid: int = 0
    gid: int = 0
    mtime: int = EPOCH_PLUS_SECOND

    def __post_init__(self) -> None:
        # Normalizing here too means no entry, however it was made, can carry a bad path.
        path = normalize_target(self.path)
        object.__setattr__(self, "path", path)
        if path == "/":
            raise LayerPathError("'/' itself cannot be a layer entry: add what goes under it")
        _check_mode(self.mode, path)
        _check_id(self.uid, "uid", path)
        _check_id(self.gid, "gid", path)
        if isinstance(self.mtime, bool) or not isinstance(self.mtime, int) or self.mtime < 0:
            raise LayerPathError(f"mtime {self.mtime!r} of {path} must be a non-negative int")
        if self.kind is EntryKind.FILE:
            if not isinstance(self.source, (Path, bytes)):
                raise LayerPathError(f"file entry {path} needs a Path or bytes source")
        elif self.source is not None:
            raise LayerPathError(f"{self.kind.value} entry {path} cannot have a source")
        if self.kind is EntryKind.SYMLINK:
            if not self.link_target or "\0" in self.link_target:
                raise LayerPathError(f"symlink {path} needs a non-empty target without NUL")
        elif self.link_target:
            raise LayerPathError(f"only a symlink can have a link target, not {path}")

    @classmethod
    def file(
        cls,
        src: str | os.PathLike[str],
        path: str,
        *,
        mode: int | None = None,
        uid: int = 0,
        gid: int = 0,
        mtime: int = EPOCH_PLUS_SECOND,
    ) -> LayerEntry:
        """The file at ``src`` on disk (symlinks followed), stored at ``path``.

        Without ``mode``, it is 0o755 if the source's owner may execute it, else 0o644; the
        content is read when the layer is written.
        """
        src_path = Path(src)
        if mode is None:
            st = _stat_source(src_path)
            if stat.S_ISDIR(st.st_mode):
                raise JibError(
                    f"{src_path} is a directory, not a file: use entries_from_tree() for a tree"
                )
            mode = EXECUTABLE_MODE if st.st_mode & stat.S_IXUSR else FILE_MODE
        return cls(path, EntryKind.FILE, mode, src_path, uid=uid, gid=gid, mtime=mtime)

    @classmethod
    def data(
        cls,
        content: bytes,
        path: str,
        *,
        mode: int = FILE_MODE,
        uid: int = 0,
        gid: int = 0,
        mtime: int = EPOCH_PLUS_SECOND,
    ) -> LayerEntry:
        """A file at ``path`` holding ``content`` (generated files: scripts, .pth, metadata)."""
        return cls(path, EntryKind.FILE, mode, bytes(content), uid=uid, gid=gid, mtime=mtime)

    @classmethod
    def directory(
        cls,
        path: str,
        *,
        mode: int = DIRECTORY_MODE,
        uid: int = 0,
        gid: int = 0,
        mtime: int = EPOCH_PLUS_SECOND,
    ) -> LayerEntry:
        return cls(path, EntryKind.DIRECTORY, mode, uid=uid, gid=gid, mtime=mtime)

    @classmethod
    def symlink(
        cls,
        path: str,
        target: str,
        *,
        uid: int = 0,
        gid: int = 0,
        mtime: int = EPOCH_PLUS_SECOND,
    ) -> LayerEntry:
        """A symlink at ``path`` pointing to ``target`` (relative or absolute, kept verbatim)."""
        return cls(
            path,
            EntryKind.SYMLINK,
            SYMLINK_MODE,
            link_target=target,
            uid=uid,
            gid=gid,
            mtime=mtime,
        )


#: ``mode_for(target_path, kind)`` returns the mode for that entry, or None for the default.
ModeFor = Callable[[str, EntryKind], int | None]


def entries_from_tree(
    src_dir: str | os.PathLike[str],
    into: str,
    *,
    mode_for: ModeFor | None = None,
    mtime: int = EPOCH_PLUS_SECOND,
    uid: int = 0,
    gid: int = 0,
) -> list[LayerEntry]:
    """Entries for everything under ``src_dir``, placed under ``into``, in sorted order.

    ``into`` itself becomes a directory entry (unless it is "/") and so does every
    subdirectory, so empty directories survive. Symlinks are kept as symlinks, never followed;
    sockets, FIFOs and devices are refused. Modes follow the module's defaults unless
    ``mode_for`` returns one.
    """
    root = Path(src_dir)
    into = normalize_target(into)
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise JibError(f"{root} is not a directory: give the directory to copy from")
    except OSError as exc:
        raise JibError(f"cannot read directory {root}: {exc.strerror or exc}") from None

    entries: list[LayerEntry] = []

    def target_of(rel: str) -> str:
        return f"{into.rstrip('/')}/{rel}" if rel else into

    def mode(target: str, kind: EntryKind, default: int) -> int:
        chosen = mode_for(target, kind) if mode_for is not None else None
        return default if chosen is None else chosen

    def add_dir(target: str) -> None:
        if target != "/":
            entries.append(
                LayerEntry.directory(
                    target,
                    mode=mode(target, EntryKind.DIRECTORY, DIRECTORY_MODE),
                    uid=uid,
                    gid=gid,
                    mtime=mtime,
                )
            )

    def walk(directory: Path, rel: str) -> None:
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise JibError(f"cannot list directory {directory}: {exc.strerror or exc}") from None
        for child in children:
            child_rel = f"{rel}/{child.name}" if rel else child.name
            target = target_of(child_rel)
            try:
                st = child.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    entries.append(
                        LayerEntry.symlink(
                            target, os.readlink(child.path), uid=uid, gid=gid, mtime=mtime
                        )
                    )
                    continue
            except OSError as exc:
                raise JibError(f"cannot read {child.path}: {exc.strerror or exc}") from None
            if stat.S_ISDIR(st.st_mode):
                add_dir(target)
                walk(Path(child.path), child_rel)
            elif stat.S_ISREG(st.st_mode):
                default = EXECUTABLE_MODE if st.st_mode & stat.S_IXUSR else FILE_MODE
                entries.append(
                    LayerEntry(
                        target,
                        EntryKind.FILE,
                        mode(target, EntryKind.FILE, default),
                        Path(child.path),
                        uid=uid,
                        gid=gid,
                        mtime=mtime,
                    )
                )
            else:
                raise JibError(
                    f"{child.path} is a socket, FIFO or device, which a layer cannot hold: "
                    "remove it or exclude it"
                )

    add_dir(into)
    walk(root, "")
    return entries
