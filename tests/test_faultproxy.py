"""Checks that the fault proxy forwards faithfully and injects each fault exactly as documented, so
the registry client's resilience tests (issue 3) can trust what they program into it."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from testbed.faultproxy import FaultProxy
from testbed.registry import Registry

pytestmark = pytest.mark.e2e

# What a client may see when the connection dies under it, depending on how far it had got.
TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _commit_url(location: str, digest: str) -> str:
    # Not params=: httpx would replace the upload's _state query instead of adding to it.
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _start(client: httpx.Client, repo: str) -> str:
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location: str = start.headers["Location"]
    return location


def _push(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST then a single PUT with the whole blob (the portable upload)."""
    return client.put(_commit_url(_start(client, repo), _digest(data)), content=data)


def _has_blob(registry: Registry, repo: str, digest: str) -> bool:
    with registry.client() as direct:  # straight to the registry, not through the proxy
        return direct.head(f"/v2/{repo}/blobs/{digest}").status_code == 200


def _proxy_threads(port: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"faultproxy-{port}")]


# -- passthrough -------------------------------------------------------------------------------


def test_passthrough_keeps_one_connection_alive(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    since = registry.mark()
    with httpx.Client(base_url=fault_proxy.url) as client:
        for _ in range(3):
            resp = client.get("/v2/")
            assert resp.status_code == 200
            assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert client.head("/v2/").status_code == 200
        assert client.get("/v2/").status_code == 200  # framing still right after a HEAD
    assert fault_proxy.accepted == 1
    expected = [("GET", "/v2/", 200)] * 3 + [("HEAD", "/v2/", 200), ("GET", "/v2/", 200)]
    assert fault_proxy.log == expected
    assert registry.requests(since) == expected


def test_blob_upload_round_trips_with_locations_rewritten(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    repo = "testbed/fp-roundtrip"
    data = os.urandom(5 << 20)
    digest = _digest(data)
    with httpx.Client(base_url=fault_proxy.url) as client:
        location = _start(client, repo)
        # The registry built it from Host: <registry>; the proxy pointed it back at itself.
        assert location.startswith(f"{fault_proxy.url}/v2/{repo}/blobs/uploads/")
        assert "_state=" in location
        done = client.put(_commit_url(location, digest), content=data)
        assert done.status_code == 201, done.text
        assert done.headers["Location"] == f"{fault_proxy.url}/v2/{repo}/blobs/{digest}"
        head = client.head(f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(data))
        assert head.content == b""
        got = client.get(f"/v2/{repo}/blobs/{digest}")
        assert got.status_code == 200
        assert got.headers["Docker-Content-Digest"] == digest
        assert _digest(got.content) == digest
    assert fault_proxy.accepted == 1
    assert [(s.method, s.outcome) for s in fault_proxy.log] == [
        ("POST", 202),
        ("PUT", 201),
        ("HEAD", 200),
        ("GET", 200),
    ]
    assert _has_blob(registry, repo, digest)


class _Echo(BaseHTTPRequestHandler):
    """Answers with the request headers it got as JSON, and a Location chosen by the path."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        own = f"http://127.0.0.1:{self.server.server_address[1]}"
        locations = {
            "/abs": f"{own}/v2/next?_state=x",
            "/rel": "/v2/next",
            "/other": "http://x.invalid/",
        }
        body = json.dumps(list(self.headers.items())).encode()
        self.send_response(200)
        self.send_header("Location", locations[self.path])
        self.send_header("Link", "<a>; rel=one")
        self.send_header("Link", "<b>; rel=two")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_headers_pass_both_ways_and_only_upstream_locations_change(echo_upstream: str) -> None:
    with FaultProxy(echo_upstream) as proxy, httpx.Client(base_url=proxy.url) as client:
        sent = {"Authorization": "Bearer t0ken", "X-Pyjib": "a", "Accept": "application/json"}
        resp = client.get("/abs", headers=sent)
        seen = dict(resp.json())
        assert seen["Host"] == echo_upstream
        assert {k: seen[k] for k in sent} == sent
        assert seen["Accept-Encoding"] == resp.request.headers["Accept-Encoding"]
        assert "Connection" not in seen  # hop-by-hop: the proxy manages its own connections
        assert resp.headers["Location"] == f"{proxy.url}/v2/next?_state=x"
        assert resp.headers.get_list("Link") == ["<a>; rel=one", "<b>; rel=two"]
        assert client.get("/rel").headers["Location"] == "/v2/next"
        assert client.get("/other").headers["Location"] == "http://x.invalid/"


def test_unreachable_upstream_answers_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        with FaultProxy(dead) as proxy:
            resp = httpx.get(f"{proxy.url}/v2/")
    assert resp.status_code == 502
    assert dead in resp.text
    assert proxy.log == [("GET", "/v2/", "error")]


# -- fail --------------------------------------------------------------------------------------


def test_fail_answers_once_without_upstream_then_passes_through(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
    rule = fault_proxy.fail("GET", r"^/v2/$", 429, headers={"Retry-After": "1"}, body=body)
    since = registry.mark()
    with httpx.Client(base_url=fault_proxy.url) as client:
        first = client.get("/v2/")
        second = client.get("/v2/")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.content == body
    assert second.status_code == 200
    assert rule.hits == 1
    assert fault_proxy.log == [("GET", "/v2/", "fail"), ("GET", "/v2/", 200)]
    assert registry.requests(since) == [("GET", "/v2/", 200)]  # the 429 never reached it


def test_fail_discards_bodies_and_keeps_the_connection(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    repo = "testbed/fp-fail-body"
    data = os.urandom(5 << 20)
    fault_proxy.fail("PUT", r"/blobs/uploads/", 500)
    fault_proxy.fail("PATCH", r"/blobs/uploads/", 503)
    with httpx.Client(base_url=fault_proxy.url) as client:
        location = _start(client, repo)
        chunked = client.patch(location, content=iter([data[:1000], data[1000:]]))
        assert chunked.status_code == 503
        url = _commit_url(location, _digest(data))
        assert client.put(url, content=data).status_code == 500
        # The registry never saw either, so the same session still takes the upload.
        assert client.put(url, content=data).status_code == 201
    assert fault_proxy.accepted == 1
    assert _has_blob(registry, repo, _digest(data))


def test_fail_rules_queue_in_order_with_skip_and_forever(fault_proxy: FaultProxy) -> None:
    fault_proxy.fail("GET", r"^/v2/$", 500)
    fault_proxy.fail("GET", r"^/v2/$", 503)
    forever = fault_proxy.fail("*", r"^/v2/$", 502, skip=1, times=None)
    with httpx.Client(base_url=fault_proxy.url) as client:
        statuses = [client.get("/v2/").status_code for _ in range(5)]
        assert statuses == [500, 503, 200, 502, 502]
        assert client.head("/v2/").status_code == 502  # "*" matches any method
        fault_proxy.clear()
        assert client.get("/v2/").status_code == 200
    assert forever.hits == 3


def test_fail_counts_hold_under_concurrency(fault_proxy: FaultProxy) -> None:
    rule = fault_proxy.fail("GET", r"^/v2/$", 500, times=5)
    limits = httpx.Limits(max_connections=20)
    with (
        httpx.Client(base_url=fault_proxy.url, limits=limits) as client,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        statuses = list(pool.map(lambda _: client.get("/v2/").status_code, range(40)))
    assert collections.Counter(statuses) == {500: 5, 200: 35}
    assert rule.hits == 5
    assert collections.Counter(s.outcome for s in fault_proxy.log) == {"fail": 5, 200: 35}


# -- drop_after --------------------------------------------------------------------------------


def test_drop_mid_upload_fails_the_put_and_leaves_no_blob(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    repo = "testbed/fp-drop"
    data = os.urandom(5 << 20)
    digest = _digest(data)
    rule = fault_proxy.drop_after("PUT", r"/blobs/uploads/", 1 << 20)
    with httpx.Client(base_url=fault_proxy.url) as client:
        with pytest.raises(TRANSPORT_ERRORS):
            _push(client, repo, data)
        assert not _has_blob(registry, repo, digest)
        # What a client should do: a fresh session, the whole blob again; the rule fired once.
        assert _push(client, repo, data).status_code == 201
    assert rule.hits == 1
    assert [(s.method, s.outcome) for s in fault_proxy.log] == [
        ("POST", 202),
        ("PUT", "drop"),
        ("POST", 202),
        ("PUT", 201),
    ]
    assert _has_blob(registry, repo, digest)


def test_drop_after_a_short_body_loses_only_the_answer(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    repo = "testbed/fp-lost-answer"
    data = os.urandom(1 << 20)
    fault_proxy.drop_after("PUT", r"/blobs/uploads/", 2 << 20)
    with httpx.Client(base_url=fault_proxy.url) as client, pytest.raises(TRANSPORT_ERRORS):
        _push(client, repo, data)
    # The registry got the whole body and committed it; only the 201 was lost.
    assert _has_blob(registry, repo, _digest(data))


def test_drop_response_truncates_the_download(fault_proxy: FaultProxy, registry: Registry) -> None:
    repo = "testbed/fp-download"
    data = os.urandom(1 << 20)
    with registry.client() as direct:
        assert _push(direct, repo, data).status_code == 201
    fault_proxy.drop_after("GET", r"/blobs/sha256:", 100_000, direction="response")
    got = bytearray()
    with httpx.Client(base_url=fault_proxy.url) as client:
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client.stream("GET", f"/v2/{repo}/blobs/{_digest(data)}") as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["Content-Length"] == str(len(data))
            for piece in resp.iter_raw():
                got += piece
        assert bytes(got) == data[:100_000]  # exactly nbytes, then EOF: a Range resume point
        assert client.get(f"/v2/{repo}/blobs/{_digest(data)}").content == data


# -- stall -------------------------------------------------------------------------------------


def test_stall_fires_the_client_read_timeout(fault_proxy: FaultProxy) -> None:
    fault_proxy.stall("GET", r"^/v2/$", 2)
    timeout = httpx.Timeout(5.0, read=0.5)
    began = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fault_proxy.url}/v2/", timeout=timeout)
    assert time.monotonic() - began < 1.5
    # Only the first match stalls; the next request is answered while that one still waits.
    assert httpx.get(f"{fault_proxy.url}/v2/", timeout=timeout).status_code == 200
    assert fault_proxy.log == [("GET", "/v2/", "stall"), ("GET", "/v2/", 200)]


# -- streaming and lifecycle -------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_200mb_chunked_patch_streams_through_in_bounded_memory(
    registry_factory: Callable[..., Registry],
) -> None:
    registry = registry_factory()  # its own storage, removed with the 200 MB when the test ends
    repo, pieces, block = "testbed/fp-big", 200, os.urandom(1 << 20)
    hasher = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for i in range(pieces):
            piece = i.to_bytes(4, "big") + block[4:]  # distinct pieces: reordering would show
            hasher.update(piece)
            yield piece

    peak = baseline = _rss()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with FaultProxy(registry.host) as proxy, httpx.Client(base_url=proxy.url) as client:
            patched = client.patch(_start(client, repo), content=body(), timeout=120)
            assert patched.status_code == 202, patched.text
            assert patched.headers["Range"] == f"0-{pieces * len(block) - 1}"
            digest = f"sha256:{hasher.hexdigest()}"
            done_put = client.put(_commit_url(patched.headers["Location"], digest))
            assert done_put.status_code == 201, done_put.text
    finally:
        done.set()
        sampler.join()
    assert patched.request.headers["Transfer-Encoding"] == "chunked"
    assert _has_blob(registry, repo, digest)
    assert peak - baseline < 30 << 20, f"RSS grew {(peak - baseline) >> 20} MiB"


def test_stop_wakes_idle_and_stalled_connections_and_joins_them(registry: Registry) -> None:
    proxy = FaultProxy(registry.host).start()
    port = proxy.port
    proxy.stall("GET", r"^/v2/$", 60)
    outcome: list[BaseException | httpx.Response] = []

    def stalled() -> None:
        try:
            outcome.append(httpx.get(f"{proxy.url}/v2/", timeout=30))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=stalled)
    with httpx.Client(base_url=proxy.url) as idle:
        assert idle.head("/v2/").status_code == 200  # its connection now idles in keep-alive
        waiter.start()
        deadline = time.monotonic() + 5
        while ("GET", "/v2/", "stall") not in proxy.log:
            assert time.monotonic() < deadline, proxy.log
            time.sleep(0.01)
        assert len(_proxy_threads(port)) == 3  # the server loop and both connections
        began = time.monotonic()
        proxy.stop()
        assert time.monotonic() - began < 2
        waiter.join(5)
    assert _proxy_threads(port) == []
    assert len(outcome) == 1 and isinstance(outcome[0], TRANSPORT_ERRORS)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    proxy.stop()  # idempotent
