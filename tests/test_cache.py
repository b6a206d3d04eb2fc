"""The cache: hits cost no rebuild, damaged entries are never used, concurrent builds agree, and
the size cap evicts least-recently-used entries, never from under a running build."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jib.cache import DEFAULT_MAX_SIZE, Cache, max_size_from, parse_size, prune
from jib.cache.prune import total_size
from jib.errors import JibError
from jib.image.digest import Digest
from jib.layers import BuiltLayer, LayerEntry, build_layer


def _builder(calls: list[str], text: bytes = b"print('hi')\n") -> Callable[[Path], BuiltLayer]:
    def build(out: Path) -> BuiltLayer:
        calls.append("built")
        return build_layer([LayerEntry.data(text, "/app/hi.py")], out)

    return build


def test_second_lookup_is_a_hit_without_building(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    calls: list[str] = []
    first, hit1 = cache.layer("app:v1", _builder(calls))
    second, hit2 = cache.layer("app:v1", _builder(calls))
    assert (hit1, hit2) == (False, True)
    assert calls == ["built"]
    assert second == first
    other, hit3 = cache.layer("app:v2", _builder(calls, b"print('bye')\n"))
    assert not hit3 and other.digest != first.digest


def test_truncated_layer_is_detected_dropped_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache(tmp_path / "cache")
    calls: list[str] = []
    layer, _ = cache.layer("app", _builder(calls))
    data = layer.path.read_bytes()
    layer.path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="jib.cache"):
        again, hit = cache.layer("app", _builder(calls))
    assert not hit and calls == ["built", "built"]
    assert again.digest == layer.digest
    assert again.path.read_bytes() == data
    assert "corrupt" in caplog.text


def test_corrupt_selector_record_is_dropped(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    calls: list[str] = []
    cache.layer("app", _builder(calls))
    (record,) = (tmp_path / "cache" / "selectors").iterdir()
    record.write_text("{not json")
    _, hit = cache.layer("app", _builder(calls))
    assert not hit and calls == ["built", "built"]


def _build_in_process(root: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    calls: list[str] = []
    layer, _ = Cache(Path(root)).layer("shared", _builder(calls))
    out.put((str(layer.digest), len(calls)))


def test_concurrent_builds_of_one_selector_build_it_once(tmp_path: Path) -> None:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_build_in_process, args=(str(tmp_path / "c"), queue))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [queue.get(timeout=5) for _ in procs]
    assert len({digest for digest, _ in results}) == 1
    assert sum(built for _, built in results) == 1


# -- size cap and least-recently-used eviction ------------------------------------------------


def _aged(path: Path, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def _selector_file(cache: Cache, selector: str) -> Path:
    return cache._selector_path(selector)


def test_parse_size() -> None:
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("500 mb") == 500 * 10**6
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("1024") == 1024
    assert max_size_from({}) == DEFAULT_MAX_SIZE
    assert max_size_from({"JIB_CACHE_MAX_SIZE": "2GB"}) == 2 * 10**9
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    with pytest.raises(JibError, match="JIB_CACHE_MAX_SIZE"):
        max_size_from({"JIB_CACHE_MAX_SIZE": "2 parsecs"})


def test_prune_removes_least_recently_used_layers_with_their_selectors(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    layers = {}
    for i, name in enumerate(("a", "b", "c")):
        layer, _ = cache.layer(name, _builder([], f"print({i})\n".encode() * 50))
        layers[name] = layer
        # a is oldest, c newest...
        _aged(_selector_file(cache, name), 300 - i * 100)
        _aged(layer.path, 300 - i * 100)
    # ...until a is used again: a hit touches its selector, and its layer counts as used too.
    assert cache.find_layer("a") is not None
    one = max(total_size(cache.root) // 3 + 200, 1)
    result = prune(cache, 2 * one)
    assert result.removed == 1 and not result.skipped
    assert not layers["b"].path.exists() and not _selector_file(cache, "b").exists()
    assert layers["a"].path.exists() and layers["c"].path.exists()
    assert cache.find_layer("b") is None and cache.find_layer("a") is not None
    assert total_size(cache.root) <= 2 * one


def test_a_layer_is_used_when_any_of_its_selectors_is(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    old, _ = cache.layer("old-selector", _builder([]))
    cache.put_layer("new-selector", old)  # same content, another set of inputs
    other, _ = cache.layer("other", _builder([], b"x = 1\n" * 100))
    _aged(_selector_file(cache, "old-selector"), 1000)
    _aged(old.path, 1000)
    _aged(other.path, 500)
    _aged(_selector_file(cache, "other"), 500)
    prune(cache, total_size(cache.root) - 1)
    # "other" was the least recently used entry: the shared layer survives through its new
    # selector, and both its selectors go or stay with it.
    assert old.path.exists() and not other.path.exists()
    assert cache.find_layer("old-selector") is not None


def test_prune_all_and_blobs_and_leftover_temporary_files(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    cache.layer("app", _builder([]))
    blob = b"base layer bytes"
    digest = Digest.of_bytes(blob)
    cache.fetch_blob(digest, len(blob), lambda dest: dest.write_bytes(blob))
    # What a killed build leaves: a half-written layer, a scratch dir, an atomic temp file.
    (cache.layers_dir / ".partial-layer-x").write_bytes(b"half")
    (cache.layers_dir / ".scratch-y").mkdir()
    (cache.root / "selectors" / ".abc.json.123.tmp").write_bytes(b"{")
    result = prune(cache, 0, everything=True)
    assert result.temp_removed == 3
    assert total_size(cache.root) == 0
    assert not any(cache.layers_dir.iterdir())
    assert not cache.has_blob(digest, len(blob))
    # The cache still works afterwards.
    _, hit = cache.layer("app", _builder([]))
    assert not hit


def _hold_in_use(root: str, ready: Any, release: Any) -> None:
    with Cache(Path(root)).in_use():
        ready.set()
        release.wait(30)


def test_prune_never_runs_while_a_build_uses_the_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    layer, _ = cache.layer("app", _builder([]))
    (cache.layers_dir / ".partial-layer-being-written").write_bytes(b"in progress")
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    build = multiprocessing.Process(target=_hold_in_use, args=(str(cache.root), ready, release))
    build.start()
    try:
        assert ready.wait(30)
        # The end-of-build check gives up at once; nothing is touched, not even temp files.
        assert prune(cache, 0, everything=True, wait=False).skipped
        assert layer.path.exists()
        assert (cache.layers_dir / ".partial-layer-being-written").exists()
        # `pyjib cache prune` waits for the build instead.
        waiter = threading.Thread(target=prune, args=(cache, 0), kwargs={"everything": True})
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and layer.path.exists()
        release.set()
        waiter.join(30)
        assert not waiter.is_alive() and not layer.path.exists()
    finally:
        release.set()
        build.join(30)
