"""The Python inside the target image: what wheels fit it and how to install into it.

Everything about the target is decided here, from the base image and ``[tool.jib.python]``,
never from the host: a build on x86_64 for linux/arm64 must pick aarch64 wheels.

Detection order (packaging notes §6): explicit ``[tool.jib.python]`` keys, then the image config
(``PYTHON_VERSION`` + ``PATH``, an Entrypoint/Cmd naming ``.../pythonX.Y``), then the layers'
file NAMES, read from tar headers only, top layer first. The layers are always scanned (once per
base image digest, then cached) because only they tell glibc from musl and the glibc version.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from jib.atomic import write_bytes
from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.image.image import Image

log = logging.getLogger(__name__)

#: OCI architecture (+ variant) -> ``platform.machine()`` inside such a container.
_MACHINES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "386": "i686",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
#: When layers give no libc version: manylinux2014's baseline, which every glibc image still in
#: use satisfies, so a wrong guess can only pick an older (still working) wheel.
DEFAULT_GLIBC = (2, 17)
DEFAULT_MUSL = (1, 2)  # every Alpine since 3.13
#: Known glibc of common bases (notes §6), used only when ``libc.so.6`` itself is not readable.
_OS_RELEASE_GLIBC = {
    ("debian", "10"): (2, 28),
    ("debian", "11"): (2, 31),
    ("debian", "12"): (2, 36),
    ("debian", "13"): (2, 41),
    ("ubuntu", "20.04"): (2, 31),
    ("ubuntu", "22.04"): (2, 35),
    ("ubuntu", "24.04"): (2, 39),
    ("rhel", "8"): (2, 28),
    ("rhel", "9"): (2, 34),
    ("amzn", "2023"): (2, 34),
}
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


def parse_version(text: str, what: str = "[tool.jib.python] version") -> tuple[int, int, int]:
    """``"3.12"`` -> ``(3, 12, 0)``; ``"3.12.4"`` -> ``(3, 12, 4)``."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.(\d+))?\S*\s*", text)
    if not match or match.group(1) != "3":
        raise JibError(f"{what} is {text!r}, not a Python 3 version like 3.12 or 3.12.4")
    return (3, int(match.group(2)), int(match.group(3) or 0))


@dataclass(frozen=True)
class TargetPython:
    """One platform's interpreter in the base image."""

    platform: Platform
    #: ``(3, 11, 2)``; the micro version may be unknown (0) when only ``X.Y`` was found.
    version: tuple[int, int, int]
    #: The interpreter's path inside the image, e.g. ``/usr/bin/python3.11``.
    executable: str
    #: ``"glibc"`` or ``"musl"``, with its ``(major, minor)`` version, e.g. ``("glibc", (2, 36))``.
    libc: tuple[str, tuple[int, int]]
    #: ABI flags beyond the default (``"t"`` for free-threaded builds), usually ``""``.
    abi_flags: str = ""

    @property
    def minor(self) -> str:
        """``"3.11"``."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def cache_tag(self) -> str:
        """``"cpython-311"``: the bytecode cache tag, which must equal the host's to precompile."""
        return f"cpython-{self.version[0]}{self.version[1]}{self.abi_flags}"

    @property
    def site_packages(self) -> str:
        """The venv-relative site-packages directory, ``lib/python3.11/site-packages``."""
        return f"lib/python{self.minor}{self.abi_flags}/site-packages"

    @property
    def full_version(self) -> str:
        """``"3.11.2"`` (``"3.11.0"`` when the micro version is unknown)."""
        return ".".join(map(str, self.version))

    @property
    def python_tag(self) -> str:
        """``"cp311"``: the interpreter part of a wheel tag."""
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def abi(self) -> str:
        """``"cp311"``, or ``"cp313t"`` for a free-threaded build."""
        return self.python_tag + self.abi_flags

    @property
    def machine(self) -> str:
        """``platform.machine()`` inside the container: ``x86_64``, ``aarch64``, ``armv7l``..."""
        arch = self.platform.architecture
        if arch == "arm":
            return f"armv{(self.platform.variant or 'v7').lstrip('v')}l"
        return _MACHINES.get(arch, arch)

    def describe(self) -> str:
        """``CPython 3.11.2 on linux/arm64 (glibc 2.36)``, for messages."""
        kind, (major, minor) = self.libc
        return f"CPython {self.full_version} on {self.platform} ({kind} {major}.{minor})"

    def check_requires_python(self, requires_python: str | None, what: str) -> None:
        """Fail, naming the base image's Python, when ``what`` cannot run on it.

        Called for the project's ``requires-python`` by ``resolve.load_dependencies`` (before
        any lock is read or resolver run) and for each lock's own ``requires-python``.
        """
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        if not requires_python or not requires_python.strip():
            return
        try:
            spec = SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise JibError(f"{what} has an invalid requires-python {requires_python!r}") from None
        if not spec.contains(self.full_version, prereleases=True):
            raise JibError(
                f"the base image's Python is {self.full_version} ({self.executable}, "
                f"{self.platform}) but {what} requires-python {requires_python!r}; use a base "
                "image whose Python satisfies it ([tool.jib.from] image) or change requires-python"
            )


# -- what the layers say ------------------------------------------------------------------------


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


def _cached_scan(image: Image, cache_dir: Path | None) -> ImageScan:
    if cache_dir is None:
        return scan_layers(image)
    entry = cache_dir / "python-targets" / f"{image.digest.encoded}.json"
    if entry.is_file() and (scan := ImageScan.from_json(entry.read_bytes())) is not None:
        return scan
    scan = scan_layers(image)
    entry.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(entry, scan.to_json())
    return scan


# -- putting it together ------------------------------------------------------------------------


def _path_dirs(env: dict[str, str]) -> list[str]:
    return [d.rstrip("/") for d in env.get("PATH", "").split(":") if d.startswith("/")]


def _from_command(image: Image) -> tuple[str, int] | None:
    """``("/usr/bin/python3.11", 11)`` when the Entrypoint or Cmd runs a versioned python."""
    for argv in (image.config.entrypoint, image.config.cmd):
        for arg in (argv or ())[:1]:
            if m := re.search(r"^(/.*)?/python3\.(\d+)t?$", arg):
                return arg, int(m.group(2))
    return None


def _pick_interpreter(scan: ImageScan, minor: int | None, path_dirs: Sequence[str]) -> str | None:
    """The topmost ``bin/python3.N`` (of ``minor`` if known), preferring PATH order in a tie."""
    candidates = [(i, p) for i, (p, m, _) in enumerate(scan.interpreters) if minor in (None, m)]
    if not candidates:
        return None

    def rank(item: tuple[int, str]) -> tuple[int, int]:
        parent = item[1].rpartition("/")[0]
        in_path = path_dirs.index(parent) if parent in path_dirs else len(path_dirs)
        return (in_path, item[0])

    return min(candidates, key=rank)[1]


def detect_target(
    image: Image,
    *,
    version: str | None = None,
    executable: str | None = None,
    cache_dir: Path | None = None,
) -> TargetPython:
    """The Python of ``image`` (one platform), as ``[tool.jib.python]`` or the image says.

    ``cache_dir`` (the build cache) keeps the layer scan as a small JSON file keyed by the
    image digest, so a warm build never rereads the base layers.
    """
    env = image.config.env
    path_dirs = _path_dirs(env)
    scan = _cached_scan(image, cache_dir)
    wanted = parse_version(version) if version else None
    if wanted is None and env.get("PYTHON_VERSION"):
        wanted = parse_version(env["PYTHON_VERSION"], "the base image's PYTHON_VERSION")
    command = _from_command(image)
    if wanted is None and command is not None:
        wanted = (3, command[1], 0)
    if wanted is None and executable and (m := re.search(r"python3\.(\d+)t?$", executable)):
        wanted = (3, int(m.group(1)), 0)
    if wanted is None and scan.interpreters:
        wanted = (3, scan.interpreters[0][1], 0)  # topmost layer wins
    if wanted is None:
        raise JibError(
            f"cannot tell which Python the base image ({image.platform}) has: no PYTHON_VERSION, "
            "no python3.X in its entrypoint or files; set [tool.jib.python] version and executable"
        )
    minor = wanted[1]
    if wanted[2] == 0:  # "3.12" asked: the micro version from the image, where it says so
        env_version = env.get("PYTHON_VERSION", "")
        full = scan.full_versions.get(f"3.{minor}")
        if env_version.startswith(f"3.{minor}."):
            wanted = parse_version(env_version, "the base image's PYTHON_VERSION")
        elif full:
            wanted = parse_version(full)

    if executable is None and command is not None and command[1] == minor:
        executable = command[0] if command[0].startswith("/") else None
    if executable is None:
        executable = _pick_interpreter(scan, minor, path_dirs)
    if executable is None and env.get("PYTHON_VERSION") and path_dirs and not scan.interpreters:
        # An image that only says so in its config (layers unreadable or synthetic): the
        # docker-library convention is /usr/local/bin, else the first PATH entry.
        home = "/usr/local/bin" if "/usr/local/bin" in path_dirs else path_dirs[0]
        executable = f"{home}/python3.{minor}"
    if executable is None:
        found = ", ".join(p for p, _, _ in scan.interpreters) or "none"
        raise JibError(
            f"the base image ({image.platform}) has no python3.{minor} interpreter (found: "
            f"{found}); set [tool.jib.python] executable, or a matching [tool.jib.python] version"
        )

    abi_flags = next((flags for m, flags, _ in scan.dynload if m == minor), "")
    if executable.endswith("t"):
        abi_flags = "t"
    return TargetPython(
        platform=image.platform,
        version=wanted,
        executable=executable,
        libc=_libc(scan),
        abi_flags=abi_flags,
    )


def _libc(scan: ImageScan) -> tuple[str, tuple[int, int]]:
    kind = scan.libc
    if kind is None and any(multiarch.endswith("musl") for _, _, multiarch in scan.dynload):
        kind = "musl"
    if kind == "musl":
        return "musl", DEFAULT_MUSL
    if scan.libc_version:
        return "glibc", (scan.libc_version[0], scan.libc_version[1])
    if scan.os_release and (known := _OS_RELEASE_GLIBC.get(tuple(scan.os_release))):  # type: ignore[arg-type]
        return "glibc", known
    return "glibc", DEFAULT_GLIBC
