"""TLS settings per package index: a private CA bundle, a client certificate, or no verification.

Poetry keeps them per source (``poetry config certificates.<source>.cert`` and ``.client-cert``);
they apply to that source's origin (scheme, host and port) only, as its credentials do
(``IndexAuth``), so a private CA never becomes trusted for PyPI and a client certificate is never
offered to another server: one transport per origin, each with its own TLS context.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import certifi
import httpx

from jib.errors import JibError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexTLS:
    """How to talk TLS to one index's origin."""

    #: A PEM bundle of the CAs to trust for it (instead of the default ones, as Poetry does).
    ca: Path | None = None
    #: A PEM file holding the client certificate and its key.
    client_cert: Path | None = None
    #: False: do not verify its certificate (Poetry's ``certificates.<source>.cert = false``).
    verify: bool = True


_DEFAULT_PORTS = {"https": 443, "http": 80}

Origin = tuple[str, str, int | None]


def origin(url: httpx.URL) -> Origin:
    """(scheme, host, port): httpx gives a scheme's default port as None, so ``https://h/`` and
    ``https://h:443/`` are one origin."""
    return url.scheme, url.host, url.port


def _proxy_for(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...), if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    return proxy if proxy and not urllib.request.proxy_bypass(url.host) else None


class OriginTransport(httpx.BaseTransport):
    """Sends each request through a transport made for its exact origin: that index's TLS
    context if it has one, else the default one, and the environment's proxy for it.

    (httpx's ``mounts`` cannot say "port 443 only", and its proxy mounts would take the requests
    to an index away from its TLS context; so the client runs with ``trust_env=False`` and this
    transport does the proxy part itself.)
    """

    def __init__(self, contexts: Mapping[Origin, ssl.SSLContext]) -> None:
        self._contexts = dict(contexts)
        self._transports: dict[Origin, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = origin(request.url)
        with self._lock:
            transport = self._transports.get(key)
            if transport is None:
                verify: ssl.SSLContext | bool = self._contexts.get(key, True)
                transport = httpx.HTTPTransport(verify=verify, proxy=_proxy_for(request.url))
                self._transports[key] = transport
        return transport.handle_request(request)

    def close(self) -> None:
        with self._lock:
            for transport in self._transports.values():
                transport.close()


def index_transport(tls: Mapping[str, IndexTLS]) -> OriginTransport | None:
    """A transport giving each HTTPS index in ``tls`` its own TLS context; None if none has one
    (the client's own transport and environment handling then apply unchanged)."""
    contexts: dict[Origin, ssl.SSLContext] = {}
    for url, settings in tls.items():
        parsed = httpx.URL(url)
        if parsed.scheme == "https" and origin(parsed) not in contexts:
            contexts[origin(parsed)] = _context(url, settings)
    return OriginTransport(contexts) if contexts else None


def _context(url: str, settings: IndexTLS) -> ssl.SSLContext:
    """The TLS context for one index: only its CA bundle when it has one (as Poetry and requests
    take ``cert``), else the default trust; its client certificate if it has one."""
    try:
        if not settings.verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif settings.ca is not None:
            context = ssl.create_default_context(cafile=str(settings.ca))
        else:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=certifi.where())
        if settings.client_cert is not None:
            context.load_cert_chain(str(settings.client_cert))
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or err
        raise JibError(
            f"cannot use the TLS files given for the package index {url} "
            f"({reason}); give PEM files (CA bundle; client certificate with its key)"
        ) from None
    return context


@contextmanager
def subprocess_tls(
    tls: Mapping[str, IndexTLS], urls: Iterable[str], tool: str
) -> Iterator[tuple[dict[str, str], list[str]]]:
    """``(environment, arguments)`` that give a ``uv`` or ``pip`` subprocess the TLS settings of
    the indexes at ``urls``: a CA bundle of the default CAs plus the indexes' own (a subprocess
    has one trust store for every host, so the private CAs are added, not swapped in), the
    client certificate (one per process: the first given), and unverified hosts."""
    wanted = {origin(httpx.URL(url)) for url in urls}
    mine = [(url, s) for url, s in tls.items() if origin(httpx.URL(url)) in wanted]
    env: dict[str, str] = {}
    args: list[str] = []
    for url, settings in mine:
        if not settings.verify:
            parsed = httpx.URL(url)
            host = f"{parsed.host}:{parsed.port or _DEFAULT_PORTS[parsed.scheme]}"
            args += ["--allow-insecure-host" if tool == "uv" else "--trusted-host", host]
    client_certs = sorted({str(s.client_cert) for _, s in mine if s.client_cert})
    if client_certs:
        if len(client_certs) > 1:
            log.warning("a build can use one client certificate; using %s", client_certs[0])
        if tool == "uv":
            env["SSL_CLIENT_CERT"] = client_certs[0]
        else:
            args += ["--client-cert", client_certs[0]]
    cas = [s.ca for _, s in mine if s.verify and s.ca is not None]
    if not cas:
        yield env, args
        return
    default = os.environ.get("SSL_CERT_FILE")
    parts = [Path(default if default and Path(default).is_file() else certifi.where())]
    with tempfile.TemporaryDirectory(prefix="pyjib-ca-") as tmp:
        bundle = Path(tmp) / "ca-bundle.pem"
        try:
            bundle.write_bytes(b"\n".join(p.read_bytes().rstrip() for p in [*parts, *cas]) + b"\n")
        except OSError as err:
            raise JibError(f"cannot read a CA bundle for a package index: {err}") from None
        if tool == "uv":
            env["SSL_CERT_FILE"] = str(bundle)
        else:
            args += ["--cert", str(bundle)]
        yield env, args
