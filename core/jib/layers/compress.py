"""Gzip for layers, byte-identical on every machine that runs the same pyjib version.

A layer's digest covers its *compressed* bytes, so "same inputs, same digest" needs a deflate
encoder whose output depends on nothing but its input and its version. What was found:

* Stdlib ``zlib`` is whatever zlib the interpreter links: distros differ (Fedora 40+ replaced
  zlib with zlib-ng-compat, fedoraproject.org/wiki/Changes/ZlibNGTransition), and so do the
  bytes. Jib has the same flaw through the JDK's zlib (GoogleContainerTools/jib#3874).
* zlib-ng picks kernels at run time by CPU feature, including its hash function ("Hash table
  implementation using CRC32-C intrinsics on x86 and ARM", same Fedora page); its output differs
  between x86-64 and aarch64 (trifectatechfoundation/zlib-rs#91) and its maintainers do not
  promise stable bytes (zlib-ng/zlib-ng#795).
* ISA-L (python-isal) dispatches hand-written assembly per CPU (SSE/AVX2/AVX-512, NEON), and its
  maintainers say "the compression output may differ if you run the compression on different
  cpu architectures" (intel/isa-l#140).
* libdeflate: "No version of libdeflate has ever been non-deterministic, but the output has
  varied across versions" (ebiggers/libdeflate#400). Reading the 1.26 sources that
  ``deflate==0.9.0`` bundles and statically links: run-time CPU dispatch exists only for the
  checksums and the *decompressor* (``arch_select_*`` in lib/crc32.c, lib/adler32.c,
  lib/deflate_decompress.c); the compressor's only arch-specific code, ``matchfinder_init`` and
  ``matchfinder_rebase`` (lib/x86/ and lib/arm/matchfinder_impl.h, chosen at compile time), are a
  vectorized memset and saturating subtract with exactly the generic C's results; hashing is a
  32-bit multiply on endian-normalized loads, and block splitting is integer-only ("To avoid
  needing to use floating point arithmetic", deflate_compress.c). CRC-32 is a function of the
  data, however computed.

So the default is libdeflate through ``deflate``, pinned with ``==`` in pyproject.toml: the
wheel carries its own compiled libdeflate, so neither the distro nor the CPU can change the bytes.
Checked, not just read: libdeflate 1.26 built for x86-64 (-O0, -march=haswell, musl) and for
aarch64 (NEON and +nosimd, run under qemu) gave byte-identical members for a 152 MB
site-packages layer and for tests/test_layer_reproducible.py's golden layer. A ``deflate``
built from source against some other libdeflate (its LIBDEFLATE_PREFIX option) would not, so
the first use checks a probe's output and refuses a library that differs.
The price: upgrading that pin may change every compressed digest (diff_ids never change), so
the pin moves only in a pyjib release that says so.

libdeflate compresses whole buffers only, so the tar stream is cut into ``MEMBER_SIZE`` pieces
(fixed offsets of the stream, never of how it was written), each compressed as its own gzip
member, concatenated. RFC 1952 §2.2 defines a gzip file as a series of members; GNU gzip,
Python's gzip, Go's compress/gzip (multistream by default, as used by containerd, moby and
containers/storage) read it, as they read estargz layers built the same way. A member costs 18
bytes and a fresh 32 KiB window per MiB (the benchmark tree comes out 0.34% bigger than as one
stream), and buys parallelism: libdeflate releases the GIL, so members are compressed on a
thread pool and written in order, giving the same bytes for any number of threads.

The other encoders stay available (``Compression("zlib-ng", 1)``...) for benchmarks and for
users who value speed over reproducible digests; only ``libdeflate`` is ``reproducible``.
Every encoder writes the same fixed gzip header: no name, MTIME 0, XFL 0, OS 255 ("unknown").
"""

from __future__ import annotations

import collections
import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from jib.errors import JibError

#: Uncompressed bytes per gzip member for libdeflate. Part of the output format: changing it
#: changes every digest.
MEMBER_SIZE = 1 << 20

# ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255: nothing about the host or the time.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

_LEVELS = {
    "libdeflate": range(1, 13),
    "zlib": range(0, 10),
    "zlib-ng": range(0, 10),
    "isal": range(0, 4),
}
_DEFAULT_LEVELS = {"libdeflate": 6, "zlib": 6, "zlib-ng": 6, "isal": 2}


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


@dataclass(frozen=True)
class Compression:
    """A gzip encoder and its level, e.g. ``Compression("libdeflate", 6)``."""

    algorithm: str = "libdeflate"
    level: int = 6

    def __post_init__(self) -> None:
        levels = _LEVELS.get(self.algorithm)
        if levels is None:
            raise JibError(
                f"unknown compression {self.algorithm!r}: use one of {', '.join(_LEVELS)}"
            )
        if self.level not in levels:
            raise JibError(
                f"compression level {self.level} is out of range for {self.algorithm}: "
                f"use {levels.start} to {levels.stop - 1}"
            )

    @classmethod
    def parse(cls, text: str) -> Compression:
        """``"libdeflate"``, ``"zlib:9"``, ``"isal:1"``... (level defaults per algorithm)."""
        algorithm, _, level = text.partition(":")
        if not level:
            return cls(algorithm, _DEFAULT_LEVELS.get(algorithm, 6))
        if not level.isdigit():
            raise JibError(f"bad compression {text!r}: write ALGORITHM or ALGORITHM:LEVEL")
        return cls(algorithm, int(level))

    @property
    def reproducible(self) -> bool:
        """Whether the bytes are the same on every machine (see the module docstring)."""
        return self.algorithm == "libdeflate"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.level}"


DEFAULT_COMPRESSION = Compression("libdeflate", 6)


class GzipWriter(Protocol):
    """Takes the uncompressed stream through ``write``; ``close`` writes what remains."""

    def write(self, data: bytes | memoryview, /) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Stop without writing the rest (after an error); safe to call more than once."""
        ...


def _trailer(crc: int, size: int) -> bytes:
    return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def _missing(package: str, algorithm: str) -> JibError:
    return JibError(
        f"compression {algorithm!r} needs the {package!r} package: pip install {package}"
    )


class _StreamingGzip:
    """One gzip member from a zlib-style ``compressobj`` (stdlib zlib, zlib-ng, ISA-L)."""

    def __init__(self, module: ModuleType, level: int, out: Sink) -> None:
        self._out = out
        self._compressor = module.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc32: Callable[[bytes | memoryview, int], int] = module.crc32
        self._crc = 0
        self._size = 0
        out.write(GZIP_HEADER)

    def write(self, data: bytes | memoryview, /) -> None:
        self._crc = self._crc32(data, self._crc)
        self._size += len(data)
        if compressed := self._compressor.compress(data):
            self._out.write(compressed)

    def close(self) -> None:
        self._out.write(self._compressor.flush())
        self._out.write(_trailer(self._crc, self._size))

    def abort(self) -> None:
        pass


# sha256 of libdeflate 1.26's level-6 raw deflate of _probe(), the same on every platform.
_PROBE_SHA256 = "d393230e15fc74d5214ce871c3f9f29b9deea481ee89280a7e90349cb1d4b52c"
_probe_ok = False


def _probe() -> bytes:
    return b"".join(b"%05d pyjib probe %d\n" % (i, (i * 7919) % 1013) for i in range(3000))


def check_libdeflate() -> None:
    """Refuse a ``deflate`` whose libdeflate is not the pinned one (once per process, ~1 ms)."""
    global _probe_ok
    if _probe_ok:
        return
    try:
        import deflate
    except ImportError:
        raise _missing("deflate", "libdeflate") from None
    if hashlib.sha256(deflate.deflate_compress(_probe(), 6)).hexdigest() != _PROBE_SHA256:
        raise JibError(
            "the installed 'deflate' package compresses differently from deflate==0.9.0's wheel "
            "(built against another libdeflate?), so layer digests would not be reproducible: "
            "reinstall it with pip install --force-reinstall --only-binary deflate deflate==0.9.0"
        )
    _probe_ok = True


def _member(data: bytearray, level: int) -> bytes:
    import deflate

    body = deflate.deflate_compress(data, level)
    return b"".join((GZIP_HEADER, body, _trailer(deflate.crc32(data), len(data))))


class _LibdeflateMembers:
    """Fixed-size gzip members from libdeflate, compressed on up to ``threads`` threads."""

    def __init__(self, level: int, out: Sink, threads: int) -> None:
        self._level = level
        self._out = out
        self._threads = threads
        self._pending = bytearray()
        self._members = 0
        self._pool: ThreadPoolExecutor | None = None
        self._queue: collections.deque[Future[bytes]] = collections.deque()

    def write(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        while len(self._pending) + len(view) >= MEMBER_SIZE:
            take = MEMBER_SIZE - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            self._submit(self._pending)
            self._pending = bytearray()
        self._pending += view

    def _submit(self, chunk: bytearray) -> None:
        self._members += 1
        if self._threads <= 1:
            self._out.write(_member(chunk, self._level))
            return
        if self._pool is None:
            # Started on the first full member, so a small layer never pays for threads.
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="jib-deflate")
        self._queue.append(self._pool.submit(_member, chunk, self._level))
        # Bounded so memory stays at a few members whatever the layer size.
        while len(self._queue) > 2 * self._threads:
            self._out.write(self._queue.popleft().result())

    def close(self) -> None:
        if self._pending or self._members == 0:
            self._submit(self._pending)
            self._pending = bytearray()
        try:
            while self._queue:
                self._out.write(self._queue.popleft().result())
        finally:
            self.abort()

    def abort(self) -> None:
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_threads() -> int:
    """Compression threads: the CPUs this process may use, at most 4 (beyond that, reading
    and hashing the tar on one thread is the limit)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def gzip_writer(compression: Compression, out: Sink, *, threads: int | None = None) -> GzipWriter:
    """A writer that gzips what it is given into ``out``."""
    if compression.algorithm == "libdeflate":
        check_libdeflate()
        return _LibdeflateMembers(
            compression.level, out, default_threads() if threads is None else threads
        )
    if compression.algorithm == "zlib":
        return _StreamingGzip(zlib, compression.level, out)
    if compression.algorithm == "zlib-ng":
        try:
            from zlib_ng import zlib_ng
        except ImportError:
            raise _missing("zlib-ng", "zlib-ng") from None
        return _StreamingGzip(zlib_ng, compression.level, out)
    try:
        from isal import isal_zlib
    except ImportError:
        raise _missing("isal", "isal") from None
    return _StreamingGzip(isal_zlib, compression.level, out)
