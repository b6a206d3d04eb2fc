"""The HTTP layer under the registry client: TLS trust, schemes, timeouts, cookies, URLs.

Policy, in one place:
- HTTPS with certificate verification by default. The trust store is ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` when set (the user said exactly what to trust), else the system store plus
  certifi's; a configured CA bundle is added on top, so a private registry's CA does not cost
  trust in a public token server.
- Plain HTTP only for loopback hosts (``localhost``, ``127.*``, ``::1``) or with
  ``allow-insecure-registries``; loopback tries HTTPS first, then HTTP, as ggcr does.
- Cookies are refused outright: Harbor sets a CSRF cookie and then rejects the POST/PUT of any
  client that sends it back without the matching header (oci.md 4.1, 4.3).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import certifi
import httpx

from jib import __version__
from jib.errors import JibError
from jib.image.digest import Digest

USER_AGENT = f"pyjib/{__version__} httpx/{httpx.__version__}"
MAX_CONNECTIONS = 16  # per registry host; pushes run a few blobs at a time (jobs=4 by default)

#: refused: nothing listens; tls_verify: untrusted certificate; not_tls: the port speaks plain
#: HTTP; timeout: no answer in time; dns: unknown host; protocol: the request itself could not be
#: sent (a bad URL scheme); dropped: the connection broke (reset, closed early, ...).
FailureKind = Literal["refused", "tls_verify", "not_tls", "timeout", "dns", "protocol", "dropped"]


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection, and for each read or write once connected.

    There is no overall deadline per request: a 2 GB layer may take minutes; what must not
    happen is a silent stall, which the read/write timeout catches.
    """

    connect: float = 15.0
    read: float = 60.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=None)


def split_host(registry: str) -> tuple[str, int | None]:
    """``host[:port]`` (``[v6]:port`` too) as (host without brackets, port or None)."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = registry.rpartition(":") if registry.count(":") == 1 else (registry, "", "")
    return host.lower(), int(port) if port.isdigit() else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a registry ``host[:port]`` or a bare host) is this machine."""
    name, _ = split_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_is_loopback(url: httpx.URL) -> bool:
    return is_loopback(url.host)


def schemes_for(registry: str, insecure: bool) -> tuple[str, ...]:
    """Schemes to try, in order. Plain HTTP only where allowed (see the module docstring)."""
    if is_loopback(registry) or insecure:
        return ("https", "http")
    return ("https",)


def ssl_context(ca_bundle: Path | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """The TLS context every registry connection uses (see the module docstring for the order)."""
    if not verify:
        # allow-insecure-registries: the user accepted an unverified certificate for this host.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    return _verifying_context(ca_bundle, *env)


@functools.lru_cache(maxsize=8)
def _verifying_context(
    ca_bundle: Path | None, cert_file: str | None, cert_dir: str | None
) -> ssl.SSLContext:
    # One context per trust configuration, shared by every client of the process: loading a CA
    # bundle takes ~20 ms, and an SSLContext is safe to share between connections and threads.
    if cert_file or cert_dir:
        ctx = ssl.create_default_context(cafile=cert_file or None, capath=cert_dir or None)
    else:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cafile=certifi.where())
    if ca_bundle is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as err:
            reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or err
            raise JibError(
                f"cannot use {ca_bundle} as a CA bundle ({reason}); give a PEM file of CA "
                "certificates"
            ) from None
    return ctx


def make_http_client(
    *,
    verify: ssl.SSLContext,
    timeouts: Timeouts,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client with no cookies, no automatic redirects, and pyjib's User-Agent."""
    return httpx.Client(
        verify=verify,
        timeout=timeouts.to_httpx(),
        transport=transport,
        follow_redirects=False,  # only blob GETs follow redirects, per request
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=8),
        # Our own trust store is built above; trust_env stays on for HTTP(S)_PROXY/NO_PROXY.
        trust_env=True,
    )


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port or _default_port(a)) == (
        b.scheme,
        b.host,
        b.port or _default_port(b),
    )


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def resolve_location(request_url: httpx.URL, location: str | None) -> httpx.URL | None:
    """An upload ``Location`` resolved against the request it answered (it may be relative)."""
    if not location:
        return None
    return request_url.join(location.strip())


def with_digest(location: httpx.URL, digest: Digest) -> httpx.URL:
    """``location`` with ``digest=`` added, keeping its query exactly as the registry sent it.

    2.8's Location carries ``?_state=<HMAC>``; re-encoding the query could alter that token, so
    the parameter is appended to the raw query rather than rebuilt (regclient does the same).
    """
    query = location.query.decode("ascii")
    param = f"digest={quote(str(digest), safe='')}"
    return location.copy_with(query=(f"{query}&{param}" if query else param).encode("ascii"))


def failure_kind(exc: BaseException) -> FailureKind:
    """What kind of network failure ``exc`` (an httpx error and its causes) is."""
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return "protocol"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return "tls_verify"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, socket.gaierror):
            return "dropped" if current.errno == socket.EAI_AGAIN else "dns"
        if isinstance(current, ssl.SSLError):
            # A handshake answered by a plain-HTTP server ("wrong version number", "record layer
            # failure", ...). Errors after the handshake surface as read errors instead.
            return "not_tls"
        if isinstance(current, httpx.TimeoutException):
            return "timeout"
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "tls_verify"
    if "Connection refused" in text or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "refused"
    return "dropped"


#: Failures that can go away by themselves. A refused connection is one (a registry restarting)
#: except on first contact, where the client decides; a bad certificate or name never is.
RETRYABLE_FAILURES: frozenset[FailureKind] = frozenset({"refused", "timeout", "dropped"})
