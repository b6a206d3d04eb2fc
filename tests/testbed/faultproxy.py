"""A fault-injecting HTTP/1.1 reverse proxy, for proving a registry client survives a bad network.

``FaultProxy("127.0.0.1:PORT")`` listens on 127.0.0.1 and forwards every request to that upstream,
streaming bodies both ways (never buffering one whole), until a rule set with ``fail()``,
``drop_after()`` or ``stall()`` matches::

    with FaultProxy(registry.host) as proxy:
        proxy.fail("POST", r"/blobs/uploads/$", 429, headers={"Retry-After": "1"})
        proxy.drop_after("PUT", r"/blobs/uploads/", 1 << 20)  # the first PUT dies after 1 MiB
        ...  # push to proxy.url
        assert [s.outcome for s in proxy.log if s.method == "PUT"] == ["drop", 201]

Rules are tried in the order they were added. A rule counts the requests that match its method
("*" for any) and pattern (``re.search`` on the target, query included) that no earlier rule
faulted, and faults the (skip+1)th to (skip+times)th of them: ``fail(500)`` then ``fail(429)`` on
one pattern answer 500, then 429, then pass through.

The upstream sees ``Host: <upstream>``, and absolute ``Location`` headers naming the upstream are
rewritten to the proxy, so a client that follows them keeps going through it.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import re
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO, Literal, NamedTuple

Direction = Literal["request", "response"]

_PIECE = 64 * 1024
# Per-connection headers a proxy must not forward (RFC 9110 §7.6.1): framing is redone here, and
# Host names the upstream, so that it builds Location URLs for itself (the proxy rewrites those).
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
_HOP_BY_HOP |= {"transfer-encoding", "expect", "host"}
_UPSTREAM_TIMEOUT = 120.0
_STOP_TIMEOUT = 5.0


class Seen(NamedTuple):
    """One request the proxy received. ``outcome`` is the upstream's status passed on, the fault
    that hit it ("fail", "drop", "stall"), or "error": no upstream answer (unreachable upstream,
    client gone, malformed body)."""

    method: str
    path: str  # the request target, query included
    outcome: int | str


@dataclass
class Rule:
    """One programmed fault; ``hits`` counts the requests it faulted."""

    kind: Literal["fail", "drop", "stall"]
    method: str
    path: re.Pattern[str]
    times: int | None  # None: every match
    skip: int
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    nbytes: int = 0
    direction: Direction = "request"
    seconds: float = 0.0
    seen: int = 0
    hits: int = 0

    def takes(self, method: str, target: str) -> bool:
        if self.method not in ("*", method) or not self.path.search(target):
            return False
        self.seen += 1
        hit = self.seen > self.skip and (self.times is None or self.seen <= self.skip + self.times)
        self.hits += hit
        return hit


class _ClientGone(Exception):
    """The client hung up, or its body ended early: told apart from upstream OSErrors."""


class FaultProxy:
    """A threaded reverse proxy to ``upstream`` ("127.0.0.1:PORT") with programmable faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        host, _, port = self.upstream.rpartition(":")
        self._upstream_addr = (host, int(port))
        self.log: list[Seen] = []
        self.accepted = 0  # client connections (keep-alive shows as fewer than requests)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[threading.Thread, socket.socket] = {}
        self._upstreams: dict[http.client.HTTPConnection, socket.socket] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fault proxy not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> FaultProxy:
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # how long stop() waits for the accept loop
                name=f"faultproxy-{self.port}",
                daemon=True,
            )
            self._thread.start()
            atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop accepting, wake every connection thread (stalls, blocked reads), join them."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            threads = list(self._clients)
            # shutdown(), never close(): the owning thread closes, so no fd is reused under it.
            for sock in [*self._clients.values(), *self._upstreams.values()]:
                _shutdown(sock)
        for thread in [*threads, self._thread]:
            if thread is not None:
                thread.join(_STOP_TIMEOUT)
        atexit.unregister(self.stop)

    def fail(
        self,
        method: str,
        path_re: str,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        times: int | None = 1,
        skip: int = 0,
    ) -> Rule:
        """Answer ``status`` without contacting the upstream; the request body is read and
        discarded, so the connection stays usable."""
        pairs = tuple((headers or {}).items())
        return self._add(
            Rule("fail", method, re.compile(path_re), times, skip, status, pairs, body)
        )

    def drop_after(
        self,
        method: str,
        path_re: str,
        nbytes: int,
        *,
        direction: Direction = "request",
        times: int | None = 1,
        skip: int = 0,
    ) -> Rule:
        """Forward, but hang up on both sides once ``nbytes`` of the body got through.

        "request": the upstream gets ``nbytes`` of the request body then EOF, the client a reset
        connection. A body no longer than ``nbytes`` reaches the upstream whole, and its answer is
        lost instead (the work is done, the client never hears). "response": the client gets the
        headers and ``nbytes`` of the body, then EOF.
        """
        path = re.compile(path_re)
        return self._add(
            Rule("drop", method, path, times, skip, nbytes=nbytes, direction=direction)
        )

    def stall(
        self, method: str, path_re: str, seconds: float, *, times: int | None = 1, skip: int = 0
    ) -> Rule:
        """Wait ``seconds`` before forwarding, as a hung registry would. The request is then
        forwarded even if the client gave up meanwhile; stop() cuts the wait short."""
        return self._add(Rule("stall", method, re.compile(path_re), times, skip, seconds=seconds))

    def clear(self) -> None:
        """Forget every rule (``log`` is kept)."""
        with self._lock:
            self._rules.clear()

    def _add(self, rule: Rule) -> Rule:
        rule.method = rule.method.upper()
        with self._lock:
            self._rules.append(rule)
        return rule

    def _match(self, method: str, target: str) -> Rule | None:
        """The rule that faults this request, if any, logging the request as that fault."""
        with self._lock:
            rule = next((r for r in self._rules if r.takes(method, target)), None)
            if rule is not None:
                self.log.append(Seen(method, target, rule.kind))
            return rule

    def _record(self, method: str, target: str, outcome: int | str) -> None:
        with self._lock:
            self.log.append(Seen(method, target, outcome))

    def _open_upstream(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(*self._upstream_addr, timeout=_UPSTREAM_TIMEOUT)
        conn.connect()
        with self._lock:
            assert conn.sock is not None
            self._upstreams[conn] = conn.sock
        if self._stopping.is_set():  # stop() may have looked before this one was listed
            self._close_upstream(conn)
            raise ConnectionAbortedError("fault proxy stopping")
        return conn

    def _close_upstream(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._upstreams.pop(conn, None)
        conn.close()

    def _location(self, value: str) -> str:
        prefix = f"http://{self.upstream}"
        if value.startswith(prefix) and value[len(prefix) :][:1] in ("", "/", "?"):
            return self.url + value[len(prefix) :]
        return value


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins with a timeout, not forever
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        name = f"faultproxy-{self.server_address[1]}-conn"
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name=name, daemon=True
        )
        with self.proxy._lock:  # listed before it runs, so stop() always finds and joins it
            self.proxy._clients[thread] = request
            self.proxy.accepted += 1
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.proxy._lock:
                self.proxy._clients.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Peers hanging up mid-exchange is this proxy's daily work; only report real bugs.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # FaultProxy.log is the record; stderr noise would bury test output

    def _proxy(self) -> None:
        proxy = self.server.proxy
        self._logged = False  # whether this request is in proxy.log yet
        coding = self.headers.get("Transfer-Encoding")
        chunked = coding is not None
        length = self.headers.get("Content-Length") or "0"
        if (chunked and coding.rsplit(",", 1)[-1].strip().lower() != "chunked") or (
            not chunked and not length.isdigit()
        ):
            proxy._record(self.command, self.path, "error")
            self.send_error(400, "fault proxy: unsupported body framing")  # closes the connection
            return
        body = _chunks(self.rfile) if chunked else _exactly(self.rfile, int(length))
        rule = proxy._match(self.command, self.path)
        try:
            if rule is not None and rule.kind == "fail":
                for _ in body:
                    pass  # read and discard, so the next request on this connection parses
                self._answer(rule.status, rule.headers, rule.body)
            elif rule is not None and rule.kind == "stall" and proxy._stopping.wait(rule.seconds):
                self.close_connection = True
            else:
                self._forward(body, chunked, rule)
        except (OSError, http.client.HTTPException, _ClientGone):
            if rule is None and not self._logged:
                proxy._record(self.command, self.path, "error")
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _proxy

    def _answer(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: Iterator[bytes], chunked: bool, rule: Rule | None) -> None:
        proxy = self.server.proxy
        drop = rule if rule is not None and rule.kind == "drop" else None
        limit = drop.nbytes if drop is not None and drop.direction == "request" else None
        cut = drop.nbytes if drop is not None and drop.direction == "response" else None
        try:
            conn = proxy._open_upstream()
        except OSError as exc:
            self.close_connection = True  # the body stays unread
            if rule is None:
                proxy._record(self.command, self.path, "error")
                self._logged = True
            message = f"fault proxy: upstream {proxy.upstream} unreachable: {exc}\n"
            self._answer(502, (), message.encode())
            return
        resp: http.client.HTTPResponse | None = None
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", proxy.upstream)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            sent = 0
            try:
                for piece in body:
                    if limit is not None and sent + len(piece) > limit:
                        if piece := piece[: limit - sent]:
                            conn.send(_framed(piece, chunked))
                        self._hang_up(conn)
                        return
                    conn.send(_framed(piece, chunked))
                    sent += len(piece)
                if chunked:
                    conn.send(b"0\r\n\r\n")
            except OSError:
                # The upstream may have answered early and closed (a 401 before reading a PUT
                # body): relay that answer; the client's unread body rules out keep-alive.
                self.close_connection = True
            resp = conn.getresponse()
            if limit is not None:  # the body fit under nbytes: the upstream's answer is lost
                self._hang_up(conn)
                return
            if rule is None:
                proxy._record(self.command, self.path, resp.status)
                self._logged = True
            self._relay(resp, cut)
        finally:
            if resp is not None:
                resp.close()
            proxy._close_upstream(conn)

    def _relay(self, resp: http.client.HTTPResponse, limit: int | None) -> None:
        """Pass the upstream's response on, re-framing its body; cut after ``limit`` bytes."""
        if self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            mode = "none"  # a HEAD's Content-Length (a GET's size) passes through untouched
        elif resp.chunked:
            mode = "chunked"
        elif resp.length is not None:
            mode = "length"
        else:
            mode = "close"  # delimited by the upstream closing: so is ours
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            lower = name.lower()
            if lower == "location":
                value = self.server.proxy._location(value)
            if lower not in _HOP_BY_HOP and not (lower == "content-length" and mode == "chunked"):
                self.send_header(name, value)
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif mode == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        expected, sent = resp.length, 0
        while mode != "none" and (piece := resp.read1(_PIECE)):
            if limit is not None and sent + len(piece) >= limit:
                if piece := piece[: limit - sent]:
                    self.wfile.write(_framed(piece, mode == "chunked"))
                break
            self.wfile.write(_framed(piece, mode == "chunked"))
            sent += len(piece)
        if limit is not None:
            # FIN, not RST: the client reads exactly what was sent, then a premature EOF.
            self.close_connection = True
        elif mode == "chunked":
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "length" and sent != expected:
            self.close_connection = True  # the upstream cut it short: let the client see that

    def _hang_up(self, conn: http.client.HTTPConnection) -> None:
        # The upstream gets a FIN after what was forwarded (a truncated body, then EOF), and the
        # client an RST (SO_LINGER 0) when the server closes its socket.
        if conn.sock is not None:
            _shutdown(conn.sock)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


def _exactly(rfile: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0:
        try:
            piece = rfile.read(min(_PIECE, length))
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc
        if not piece:
            raise _ClientGone("request body ended early")
        length -= len(piece)
        yield piece


def _chunks(rfile: BinaryIO) -> Iterator[bytes]:
    """The decoded data of a chunked body; trailers are read and dropped."""
    try:
        while size := int(rfile.readline(1024).split(b";", 1)[0].strip(), 16):
            yield from _exactly(rfile, size)
            if rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _ClientGone("chunk not followed by CRLF")
        while (line := rfile.readline(1024)) not in (b"\r\n", b"\n"):
            if not line:
                raise _ClientGone("chunked trailers ended early")
    except (ValueError, OSError) as exc:  # a size that is not hex (or no line at all)
        raise _ClientGone(str(exc)) from exc


def _framed(piece: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed or reset
        sock.shutdown(socket.SHUT_RDWR)
