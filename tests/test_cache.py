"""The cache: hits cost no rebuild, damaged entries are never used, concurrent builds agree."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from jib.cache import Cache
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
