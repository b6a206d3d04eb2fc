"""Same inputs, same layer digest: across processes, hosts' owners, clocks and umasks.

``GOLDEN_DIGEST`` pins the exact bytes of one layer. It must hold on every platform pyjib
supports (x86_64 and aarch64, glibc and musl); if a change to the tar writer or to the
``deflate`` pin moves it, every user's layer digests move too: update it on purpose, and say so
in the release notes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jib.layers import LayerEntry, build_layer, entries_from_tree

GOLDEN_DIGEST = "sha256:a4c15bce5dc5c1971e7f16101a0bd0690f147de3e5a4d308850c7f99058faa5a"
GOLDEN_DIFF_ID = "sha256:eba8c6782fcd53459239e4c9ae1f3959005c534742aaf1cd4a2e9de6a48ae21a"


def golden_entries() -> list[LayerEntry]:
    """A layer that exercises every path of the writer: several gzip members, window slides,
    incompressible data, long and non-ASCII names, symlinks, odd modes and owners."""
    text = b"".join(
        b"%06d def handler_%d(request): return render(request, 'page_%d.html')\n"
        % (i, i % 977, (i * 7919) % 1009)
        for i in range(40_000)
    )
    noise = hashlib.shake_256(b"pyjib golden layer").digest(300_000)
    return [
        LayerEntry.data(text, "/app/src/app/views.py"),
        LayerEntry.data(noise, "/app/lib/native.so", mode=0o755),
        LayerEntry.data(b"print('hi')\n", "/app/src/app/__main__.py"),
        LayerEntry.data(b"", "/app/src/app/__init__.py"),
        LayerEntry.data(b"x", "/app/" + "long_directory_name/" * 8 + "file.txt"),
        LayerEntry.data("héllo wörld\n".encode(), "/app/données/résumé.txt"),
        LayerEntry.symlink("/usr/local/bin/app", "/app/.venv/bin/app"),
        LayerEntry.directory("/data", mode=0o700, uid=1000, gid=1000),
        LayerEntry.data(b"k=v\n", "/etc/app.conf", mode=0o600, mtime=1_700_000_000),
    ]


def test_golden_layer_digest_is_pinned(tmp_path: Path) -> None:
    layer = build_layer(golden_entries(), tmp_path)
    assert (str(layer.digest), str(layer.diff_id)) == (GOLDEN_DIGEST, GOLDEN_DIFF_ID), (
        "the bytes of a pinned layer changed: see this module's docstring"
    )


def make_tree(root: Path, umask: int) -> None:
    """A small project tree, created the way a checkout would be under ``umask``."""
    old = os.umask(umask)
    try:
        (root / "pkg" / "sub").mkdir(parents=True)
        (root / "empty").mkdir()
        (root / "pkg" / "__init__.py").write_text("from .core import main\n")
        (root / "pkg" / "core.py").write_text("def main():\n    return 42\n" * 50)
        (root / "pkg" / "sub" / "data.json").write_text('{"a": [1, 2, 3]}\n')
        (root / "pkg" / "blob.bin").write_bytes(hashlib.shake_256(b"blob").digest(2_500_000))
        fd = os.open(root / "run.sh", os.O_WRONLY | os.O_CREAT, 0o777)
        os.write(fd, b"#!/bin/sh\nexec python -m pkg\n")
        os.close(fd)
        (root / "pkg" / "alias.py").symlink_to("core.py")
    finally:
        os.umask(old)


def scramble_host_metadata(root: Path) -> None:
    """What differs between two machines' checkouts: owners and times."""
    for i, path in enumerate(sorted(root.rglob("*"))):
        os.lchown(path, 1234, 5678)
        os.utime(path, (1_000_000 + i * 3_600, 2_000_000_000 - i), follow_symlinks=False)
    os.chown(root, 1234, 5678)


def test_owners_times_and_umask_of_the_host_do_not_matter(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "elsewhere" / "b"
    b.mkdir(parents=True)
    a.mkdir()
    make_tree(a, 0o022)
    make_tree(b, 0o077)
    scramble_host_metadata(b)
    assert (b / "pkg" / "core.py").stat().st_mode & 0o777 == 0o600  # really different on disk
    assert (a / "pkg" / "core.py").stat().st_mode & 0o777 == 0o644
    layer_a = build_layer(entries_from_tree(a, "/app"), tmp_path / "out-a")
    layer_b = build_layer(entries_from_tree(b, "/app"), tmp_path / "out-b")
    assert layer_a.digest == layer_b.digest
    assert layer_a.path.read_bytes() == layer_b.path.read_bytes()


_BUILD_SCRIPT = """
import sys
from jib.layers import build_layer, entries_from_tree
layer = build_layer(entries_from_tree(sys.argv[1], "/app"), sys.argv[2])
print(layer.digest, layer.diff_id)
"""


def test_fresh_processes_give_the_same_digest(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    make_tree(tree, 0o022)
    results = set()
    for i, seed in enumerate(["0", "1", "random"]):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _BUILD_SCRIPT, str(tree), str(tmp_path / f"out{i}")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        results.add(out.stdout.strip())
    in_process = build_layer(entries_from_tree(tree, "/app"), tmp_path / "here")
    assert results == {f"{in_process.digest} {in_process.diff_id}"}


_RSS_SCRIPT = """
import resource, sys
from jib.layers import LayerEntry, build_layer
big, out = sys.argv[1], sys.argv[2]
with open(big, "wb") as f:
    f.truncate(300 << 20)  # sparse: no disk used, 300 MB to read
build_layer([LayerEntry.data(b"x" * (3 << 20), "/warm")], out)  # imports, thread pool
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
layer = build_layer([LayerEntry.file(big, "/big")], out)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024, layer.uncompressed_size)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="ru_maxrss in KiB is Linux's")
def test_big_file_streams_without_growing_memory(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path / "big"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
    )
    growth_mib, size = map(int, out.stdout.split())
    assert size > 300 << 20
    assert growth_mib < 32, f"peak RSS grew by {growth_mib} MiB building a 300 MB layer"
    shutil.rmtree(tmp_path / "out")
