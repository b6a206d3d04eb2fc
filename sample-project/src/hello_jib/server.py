"""The HTTP side of hello-jib: a WSGI app on the standard library's ``wsgiref`` server.

``GET /`` renders ``templates/index.html`` (package data) with the visitor's ``?name=``, escaped
by markupsafe; ``GET /healthz`` answers ``ok``; ``GET /static/<file>`` serves the extra directory
the image carries at ``$STATIC_DIR``. ``hello-jib`` (the console script and the image's
entrypoint) serves on ``$HOST:$PORT``, 0.0.0.0:8000 by default.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import platform
import sys
from collections.abc import Callable, Iterable
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from markupsafe import escape

from hello_jib import TAGLINE, __version__

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def page(name: str) -> str:
    template = files("hello_jib").joinpath("templates/index.html").read_text(encoding="utf-8")
    return template.format(
        greeting=escape(os.environ.get("GREETING", "Hello")),
        name=escape(name),
        tagline=escape(TAGLINE),
        version=__version__,
        python=platform.python_version(),
    )


def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        name = parse_qs(environ.get("QUERY_STRING", "")).get("name", ["world"])[0]
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", page(name).encode())
    if path == "/healthz":
        return _respond(start_response, "200 OK", "text/plain", b"ok\n")
    if path.startswith("/static/"):
        static = Path(os.environ.get("STATIC_DIR", "deploy/static")).resolve()
        file = (static / path.removeprefix("/static/")).resolve()
        if file.is_file() and file.is_relative_to(static):
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            return _respond(start_response, "200 OK", kind, file.read_bytes())
    return _respond(start_response, "404 Not Found", "text/plain", b"not found\n")


def _respond(start: StartResponse, status: str, kind: str, body: bytes) -> list[bytes]:
    start(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8000"))
    with make_server(host, port, app, handler_class=_Handler) as server:
        print(f"hello-jib {__version__} serving on http://{host}:{port}/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in a terminal: just stop
            server.serve_forever()


if __name__ == "__main__":
    main()
