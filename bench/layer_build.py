"""Layer-build throughput: pyjib's pipeline with each gzip encoder, beside the floors.

    python bench/layer_build.py [--tree DIR] [--repeat N] [--quick]

Without ``--tree`` it builds (once, then reuses) ``bench/out/site-packages`` by pip-installing a
fixed set of real wheels. Every row is measured in the same run, and speeds are also shown
relative to ``tar -c | gzip -6`` on the same tree, because this machine is shared and noisy.
MB/s are of the uncompressed tar (10**6 bytes); ratio is compressed / uncompressed size.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from jib.layers import DEFAULT_COMPRESSION, Compression, build_layer
from jib.layers.compress import default_threads
from jib.layers.entries import entries_from_tree
from jib.layers.tar import write_tar

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
# Real site-packages: many small .py files plus large native libraries, ~150 MB.
PACKAGES = ["numpy==2.2.6", "pandas==2.2.3"]
INTO = "/app/.venv/lib/python3/site-packages"
CANDIDATES = [
    ("zlib", 1),
    ("zlib", 6),
    ("zlib", 9),
    ("zlib-ng", 1),
    ("zlib-ng", 6),
    ("isal", 1),
    ("isal", 2),
    ("isal", 3),
    ("libdeflate", 1),
    ("libdeflate", 4),
    ("libdeflate", 6),
    ("libdeflate", 9),
]


def default_tree() -> Path:
    tree = OUT / "site-packages"
    if not (tree / ".complete").exists():
        shutil.rmtree(tree, ignore_errors=True)
        print(f"installing {' '.join(PACKAGES)} into {tree} ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--target",
                str(tree),
                *PACKAGES,
            ],
            check=True,
        )
        (tree / ".complete").touch()
    return tree


class _Null:
    def write(self, data: bytes | memoryview, /) -> None:
        pass


class _Hash:
    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> None:
        self.h.update(data)
        self.size += len(data)


def best(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeat`` runs (the others were slowed by neighbours) and its result."""
    timed = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = run()
        timed.append((time.perf_counter() - start, result))
    return min(timed, key=lambda pair: pair[0])


def tar_gzip_baseline(tree: Path, out: Path) -> int:
    target = out / "baseline.tar.gz"
    with target.open("wb") as f:
        tar = subprocess.Popen(["tar", "-c", "-C", str(tree), "."], stdout=subprocess.PIPE)
        subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=f, check=True)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait():
            raise SystemExit("tar failed")
    return target.stat().st_size


def small_rebuild_ms(out: Path, runs: int = 30) -> float:
    # A typical "I edited my app" layer: a handful of modules, ~5 KB in all.
    src = out / "small-app"
    shutil.rmtree(src, ignore_errors=True)
    (src / "myapp").mkdir(parents=True)
    for i in range(6):
        (src / "myapp" / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * 20)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        build_layer(entries_from_tree(src, "/app/src"), out / "small-layers")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="directory to build the layer from")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the best counts")
    parser.add_argument("--quick", action="store_true", help="skip the slowest encoders")
    args = parser.parse_args()

    tree = args.tree or default_tree()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="layer-bench-", dir=OUT))
    try:
        entries = entries_from_tree(tree, INTO)
        sink = _Hash()
        write_tar(entries, sink)  # also warms the page cache for every row below
        n = sink.size
        blob = bytes(min(n, 256 << 20))
        rows: list[tuple[str, float, float | None, str]] = []

        t, _ = best(args.repeat, lambda: hashlib.sha256(blob).digest())
        rows.append(("sha256 alone, in memory", len(blob) / t, None, "floor"))
        t, _ = best(args.repeat, lambda: write_tar(entries, _Hash()))
        rows.append(("tar + sha256, no compression", n / t, None, "floor of the pipeline"))
        t, size = best(args.repeat, lambda: tar_gzip_baseline(tree, work))
        baseline = n / t
        rows.append(("tar -c | gzip -6 (GNU, 1 thread)", baseline, size / n, "baseline"))

        threads = default_threads()
        digests: dict[str, str] = {}
        for algorithm, level in CANDIDATES:
            if args.quick and (algorithm, level) in {("zlib", 9), ("libdeflate", 9)}:
                continue
            compression = Compression(algorithm, level)
            variants = [1, threads] if algorithm == "libdeflate" and threads > 1 else [1]
            for nthreads in variants:
                try:
                    t, layer = best(
                        args.repeat,
                        lambda c=compression, k=nthreads: build_layer(
                            entries, work / "layers", compression=c, threads=k
                        ),
                    )
                except Exception as exc:  # a missing optional encoder: say so, go on
                    rows.append((f"pyjib {compression}", 0.0, None, f"unavailable: {exc}"))
                    break
                note = "reproducible" if compression.reproducible else "host-dependent bytes"
                if compression == DEFAULT_COMPRESSION and nthreads == threads:
                    note += "  <- default"
                label = f"pyjib {compression}" + (f", {nthreads} threads" if nthreads > 1 else "")
                rows.append((label, n / t, layer.size / n, note))
                # Thread count must never change the bytes: check it on the real tree too.
                first = digests.setdefault(str(compression), layer.digest.hex)
                if first != layer.digest.hex:
                    raise SystemExit(f"{compression}: {nthreads} threads changed the digest")

        print(f"tree: {tree}  ({len(entries)} entries, tar {n / 1e6:.1f} MB)")
        print(f"{'pipeline':44} {'MB/s':>8} {'x gzip-6':>9} {'ratio':>7}  note")
        for label, speed, ratio, note in rows:
            ratio_s = f"{ratio:7.3f}" if ratio is not None else "      -"
            print(f"{label:44} {speed / 1e6:8.1f} {speed / baseline:8.2f}x {ratio_s}  {note}")
        print(
            f"{'small rebuild: one ~5 KB app layer (median)':44} {small_rebuild_ms(work):7.1f} ms"
        )
        print(f"default: {DEFAULT_COMPRESSION}, {threads} threads (this machine)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
