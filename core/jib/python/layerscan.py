"""What a base image's layers say about its Python and libc: file NAMES from tar headers, top
layer first, plus the few small files that hold versions (patchlevel.h, build-details.json,
libc.so.6, os-release, the dpkg and apk databases).

Reading layers means downloading them, so ``jib.python.target`` only comes here when the image
config and ``[tool.jib.python]`` leave something unknown; the result is cached per image digest.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from jib.atomic import write_bytes
from jib.image.image import Image

log = logging.getLogger(__name__)

_CACHE_FORMAT = 1
_MAX_READ = 32 << 20  # no file we read the contents of (libc, dpkg status) is near this

_INTERPRETER = re.compile(r"(?:^|/)bin/python(3)\.(\d+)(t?)$")
_DYNLOAD = re.compile(r"/python(3)\.(\d+)t?/lib-dynload/[^/]+\.cpython-3(\d+)([td]*)-([^/]+)\.so$")
_SYSCONFIG = re.compile(r"/python3\.(\d+)t?/_sysconfigdata_([td]*)_linux_([^/]+)\.py$")
_PATCHLEVEL = re.compile(r"include/python3\.\d+t?/patchlevel\.h$")
_BUILD_DETAILS = re.compile(r"lib/python3\.\d+t?/build-details\.json$")
_LIBC_NAME = re.compile(r"(?:^|/)libc(?:\.so\.6|-(\d+)\.(\d+)\.so)$")
_GLIBC_RELEASE = re.compile(rb"release version (\d+)\.(\d+)")
_GLIBC_SYMVER = re.compile(rb"GLIBC_2\.(\d+)")
_CONTENTS = (
    _PATCHLEVEL,
    _BUILD_DETAILS,
    re.compile(r"(?:^|/)(?:etc|usr/lib)/os-release$"),
    re.compile(r"^etc/alpine-release$"),
    re.compile(r"^var/lib/dpkg/status$"),
    re.compile(r"^lib/apk/db/installed$"),
)


@dataclass
class ImageScan:
    """Facts read from a base image's layers; cached as JSON by the image digest."""

    #: ``[path, minor, abi_flags]`` for each ``bin/python3.N``, topmost layer first.
    interpreters: list[list[Any]] = field(default_factory=list)
    #: ``[minor, abi_flags, multiarch]`` from ``lib-dynload/*.cpython-3XY*-<multiarch>.so``.
    dynload: list[list[Any]] = field(default_factory=list)
    #: ``"3.11"`` -> ``"3.11.2"``, from patchlevel.h, build-details.json, dpkg or apk databases.
    full_versions: dict[str, str] = field(default_factory=dict)
    libc: str | None = None  # "glibc" | "musl"
    libc_version: list[int] | None = None
    os_release: list[str] | None = None  # [ID, VERSION_ID]

    def to_json(self) -> bytes:
        return json.dumps({"format": _CACHE_FORMAT, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ImageScan | None:
        try:
            data = json.loads(raw)
            if data.pop("format") != _CACHE_FORMAT:
                return None
            return cls(**data)
        except (ValueError, TypeError, KeyError):
            return None  # a damaged or older cache entry is simply rescanned


def _open_tar_stream(blob: IO[bytes]) -> IO[bytes] | None:
    """The uncompressed tar bytes of a layer blob, streamed; None for a format we cannot read.

    ``gzip.GzipFile`` reads non-seekable streams and multi-member gzip (pyjib's own layers).
    """
    head = blob.read(4)
    rest = _Prepend(head, blob)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=rest, mode="rb")  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        log.warning("skipping a zstd-compressed base layer while looking for Python")
        return None
    return rest  # type: ignore[return-value]


class _Prepend:
    """A reader that replays the bytes already consumed to sniff the compression."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            data, self._head = self._head, b""
            return data + self._stream.read()
        data, self._head = self._head[:size], self._head[size:]
        return data + self._stream.read(size - len(data)) if size > len(data) else data


def _members(blob: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    stream = _open_tar_stream(blob)
    if stream is None:
        return
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            yield member, tar


def _normalize(name: str) -> str:
    """``./usr/bin/`` -> ``usr/bin`` (tar writers differ in how they spell member names)."""
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return "" if name == "." else name.rstrip("/")


def _is_hidden(path: str, whiteouts: set[str], opaque: set[str]) -> bool:
    parts = PurePosixPath(path).parts
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if prefix in whiteouts or (i < len(parts) and prefix in opaque):
            return True
    return False


def scan_layers(image: Image) -> ImageScan:
    """Read every layer's tar headers, top first, plus the few small files that hold versions."""
    scan = ImageScan()
    seen: set[str] = set()
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    for layer in reversed(image.layers):
        layer_whiteouts: set[str] = set()
        layer_opaque: set[str] = set()
        with layer.open() as blob:
            for member, tar in _members(blob):
                path = _normalize(member.name)
                parent, _, base = path.rpartition("/")
                if base == ".wh..wh..opq":
                    layer_opaque.add(parent)
                    continue
                if base.startswith(".wh."):
                    layer_whiteouts.add(f"{parent}/{base[4:]}".lstrip("/"))
                    continue
                if path in seen or _is_hidden(path, whiteouts, opaque):
                    continue  # shadowed by an upper layer
                seen.add(path)
                _note(scan, path, member, tar)
        whiteouts |= layer_whiteouts
        opaque |= layer_opaque
    return scan


def _read(member: tarfile.TarInfo, tar: tarfile.TarFile) -> bytes:
    if not member.isfile() or member.size > _MAX_READ:
        return b""
    extracted = tar.extractfile(member)
    return extracted.read() if extracted else b""


def _note(scan: ImageScan, path: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
    """Record what one (visible) file says about the Python and libc of the image."""
    if member.isdir():
        return
    if m := _INTERPRETER.search(path):
        if not path.startswith(("usr/share/", "usr/lib/", "usr/local/lib/")):
            scan.interpreters.append(["/" + path, int(m.group(2)), m.group(3)])
        return
    if m := _DYNLOAD.search("/" + path):
        entry = [int(m.group(2)), m.group(4).replace("d", ""), m.group(5)]
        if entry not in scan.dynload:
            scan.dynload.append(entry)
        return
    if m := _SYSCONFIG.search("/" + path):
        entry = [int(m.group(1)), m.group(2).replace("d", ""), m.group(3)]
        if entry not in scan.dynload:
            scan.dynload.append(entry)
        return
    base = path.rpartition("/")[2]
    if base.startswith("ld-musl-") and ".so" in base:
        scan.libc = scan.libc or "musl"
        return
    if base.startswith("ld-linux") and ".so" in base:
        scan.libc = scan.libc or "glibc"
        return
    if m := _LIBC_NAME.search(path):
        if scan.libc_version is None:
            if m.group(1):  # glibc < 2.34 named its library libc-2.N.so
                scan.libc_version = [int(m.group(1)), int(m.group(2))]
            elif data := _read(member, tar):
                found = _GLIBC_RELEASE.search(data)
                if found:
                    scan.libc_version = [int(found.group(1)), int(found.group(2))]
                elif minors := [int(x) for x in _GLIBC_SYMVER.findall(data)]:
                    scan.libc_version = [2, max(minors)]
        return
    if any(pattern.search(path) for pattern in _CONTENTS) and (data := _read(member, tar)):
        _note_contents(scan, path, data.decode("utf-8", "replace"))


def _note_contents(scan: ImageScan, path: str, text: str) -> None:
    versions = scan.full_versions
    if path.endswith("patchlevel.h"):
        if m := re.search(r'#define\s+PY_VERSION\s+"(3\.\d+\.\d+)', text):
            versions.setdefault(m.group(1).rpartition(".")[0], m.group(1))
    elif path.endswith("build-details.json"):
        try:
            release = json.loads(text)["language"]["version_info"]
            full = f"{release['major']}.{release['minor']}.{release['micro']}"
            versions.setdefault(full.rpartition(".")[0], full)
        except (ValueError, KeyError, TypeError):
            pass
    elif path.endswith("os-release"):
        fields = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.M))
        scan.os_release = scan.os_release or [fields.get("ID", ""), fields.get("VERSION_ID", "")]
    elif path.endswith("alpine-release"):
        scan.libc = scan.libc or "musl"
    elif path.endswith("dpkg/status"):
        # Debian's interpreter package: "Package: python3.11 ... Version: 3.11.2-6+deb12u6".
        for m in re.finditer(
            r"^Package: python3\.(\d+)-minimal\n(?:.+\n)*?Version: (\S+)", text, re.M
        ):
            if v := re.match(r"(3\.\d+\.\d+)", m.group(2)):
                versions.setdefault(f"3.{m.group(1)}", v.group(1))
    elif path.endswith("apk/db/installed"):
        for m in re.finditer(r"^P:python3\nV:(3\.\d+\.\d+)", text, re.M):
            versions.setdefault(m.group(1).rpartition(".")[0], m.group(1))


def cached_scan(image: Image, cache_dir: Path | None) -> ImageScan:
    """The scan of ``image``, from the cache when this base digest was read before."""
    entry = cache_dir / "python-targets" / f"{image.digest.encoded}.json" if cache_dir else None
    if entry and entry.is_file() and (scan := ImageScan.from_json(entry.read_bytes())) is not None:
        return scan
    log.info(
        "reading the base image's layers (%s) to find its Python and libc, once per base image; "
        "a full [tool.jib.python] version and executable on a base that names its distribution "
        "avoid it",
        image.platform,
    )
    scan = scan_layers(image)
    if entry is None:
        return scan
    entry.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(entry, scan.to_json())
    return scan
