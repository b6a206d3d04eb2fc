"""``.pyc`` bytes for the image, compiled in clean worker processes: reproducible and parallel.

marshal writes an object with a back-reference flag when something else in the process also
holds it (CPython issue #98819), so the same source compiles to different bytes in a process that
has, for example, click imported. Measured: click's 17 modules compiled in a fresh process and in
one that had imported click, rich and httpx gave different bytes. pyjib compiles in the Hatch
process, the Poetry process or its own CLI, each with other modules loaded; so it compiles in
``python -I -S`` workers instead, which load nothing but the few lines of ``_WORKER``: the bytes
depend only on the interpreter and the files.

The files of a layer go to ``WORKERS`` processes in turn, file ``i`` of each batch to worker
``i % WORKERS``, each worker compiling its share in the order given. ``WORKERS`` is a constant, not
the CPU count, so every machine splits the work alike (what a worker compiled before could in
principle change what it writes next). Workers start on first use; a layer with two Python files
starts two.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import IO

from jib.errors import JibError

WORKERS = 4

# PEP 552 hash-based pycs, exactly as py_compile writes them (its invalidation_mode, optimize=0,
# dfile), without a source or cache file on disk; a file that does not compile gets _FAILED.
_WORKER = r"""
import marshal, struct, sys, warnings
from importlib.util import MAGIC_NUMBER, source_hash
read, write = sys.stdin.buffer.read, sys.stdout.buffer.write
while True:
    head = read(9)
    if len(head) < 9:
        break
    name_size, size, checked = struct.unpack(">IIB", head)
    dfile, source = read(name_size).decode("utf-8", "surrogateescape"), read(size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, dfile, "exec", dont_inherit=True, optimize=0)
        flags = 0b01 | (0b10 if checked else 0)
        pyc = MAGIC_NUMBER + flags.to_bytes(4, "little") + source_hash(source) + marshal.dumps(code)
        del code
        write(struct.pack(">I", len(pyc)) + pyc)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        write(struct.pack(">I", 0xFFFFFFFF))
    sys.stdout.buffer.flush()
"""
_FAILED = 0xFFFFFFFF


class BytecodeCompiler:
    """Compiles sources to hash-based ``.pyc`` bytes in ``WORKERS`` clean processes, which run
    until ``close()`` (use it with ``contextlib.closing``)."""

    def __init__(self) -> None:
        self._workers: list[subprocess.Popen[bytes] | None] = [None] * WORKERS

    def compile_many(
        self, items: Sequence[tuple[bytes, str]], *, checked: bool
    ) -> list[bytes | None]:
        """The ``.pyc`` bytes of each ``(source, dfile)``, or None where it does not compile
        (Python 2 files, templates: skipped, as ``compileall`` skips them)."""
        results: list[bytes | None] = [None] * len(items)
        if not items:
            return results
        # One request in flight per worker: each is idle when written to, so no pipe fills up.
        for i in range(min(WORKERS, len(items))):
            self._send(i % WORKERS, *items[i], checked)
        for i in range(len(items)):
            results[i] = self._receive(i % WORKERS)
            if i + WORKERS < len(items):
                self._send(i % WORKERS, *items[i + WORKERS], checked)
        return results

    def close(self) -> None:
        for i, worker in enumerate(self._workers):
            if worker is None:
                continue
            self._workers[i] = None
            if worker.stdin is not None:
                worker.stdin.close()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()

    def _worker(self, index: int) -> subprocess.Popen[bytes]:
        worker = self._workers[index]
        if worker is None:
            try:
                worker = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _WORKER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,  # a failure is reported in one line below
                )
            except OSError as err:
                raise JibError(
                    f"cannot start the bytecode compiler ({sys.executable}): {err}; set "
                    "[tool.jib.python] compile-bytecode = false to build without bytecode"
                ) from None
            self._workers[index] = worker
        return worker

    def _send(self, index: int, source: bytes, dfile: str, checked: bool) -> None:
        name = dfile.encode("utf-8", "surrogateescape")
        stream = self._worker(index).stdin
        assert stream is not None
        try:
            stream.write(struct.pack(">IIB", len(name), len(source), checked) + name)
            stream.write(source)
            stream.flush()
        except BrokenPipeError:
            raise self._died() from None

    def _receive(self, index: int) -> bytes | None:
        worker = self._workers[index]
        assert worker is not None and worker.stdout is not None
        head = _read_exactly(worker.stdout, 4)
        (size,) = struct.unpack(">I", head)
        if size == _FAILED:
            return None
        return _read_exactly(worker.stdout, size)

    @staticmethod
    def _died() -> JibError:
        return JibError(
            f"the bytecode compiler ({sys.executable} -I -S) stopped unexpectedly; set "
            "[tool.jib.python] compile-bytecode = false to build without bytecode"
        )


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise BytecodeCompiler._died()
    return data
