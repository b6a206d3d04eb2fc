"""TLS settings per package index (Poetry's ``certificates.<source>.cert`` / ``.client-cert``):
a private CA and a client certificate reach that index's origin, and only it."""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_private_index import WHEEL, make_wheel, pinned, target
from testbed.tokenserver import issue_cert, self_signed_ca

from jib.errors import JibError
from jib.python import sourcebuild
from jib.python.indextls import IndexTLS
from jib.python.locks import LockSet
from jib.python.wheels import fetch_wheels

PEM = serialization.Encoding.PEM


def issue(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, server: bool) -> bytes:
    """A certificate ``ca`` signed and its key, in one PEM file (as Poetry's client-cert wants)."""
    cert, key = issue_cert(ca_key, ca, server=server)
    no_password = serialization.NoEncryption()
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, no_password)
    return cert.public_bytes(PEM) + key_pem


@dataclass
class Tls:
    ca: Path  # the private CA the index's certificate is signed by
    server: Path  # the index's certificate and key
    client_ca: Path  # the CA the index wants client certificates from
    client: Path  # a client certificate and key it signed


def make_tls_files(root: Path) -> Tls:
    """A private CA and the index's certificate it signed, a client CA and a client's."""
    ca_key, client_ca_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca, client_ca = (
        self_signed_ca(ca_key, "private index CA"),
        self_signed_ca(client_ca_key, "clients"),
    )
    files = Tls(root / "ca.pem", root / "server.pem", root / "client-ca.pem", root / "client.pem")
    files.ca.write_bytes(ca.public_bytes(PEM))
    files.server.write_bytes(issue(ca_key, ca, server=True))
    files.client_ca.write_bytes(client_ca.public_bytes(PEM))
    files.client.write_bytes(issue(client_ca_key, client_ca, server=False))
    return files


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def https_index(tls: Tls, *files: tuple[str, bytes], client_certs: bool) -> ThreadingHTTPServer:
    """An HTTPS simple index of ``files`` (name, bytes), its certificate signed by ``tls.ca``;
    with ``client_certs``, it wants a client certificate signed by ``tls.client_ca``."""
    routes: dict[str, bytes] = {}
    for name, data in files:
        project = name.split("-")[0]
        sha = hashlib.sha256(data).hexdigest()
        routes[f"/simple/{project}/"] = (
            f'<a href="/packages/{name}#sha256={sha}">{name}</a>'.encode()
        )
        routes[f"/packages/{name}"] = data

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.do_GET(send_body=False)

        def do_GET(self, send_body: bool = True) -> None:
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            if self.path.startswith("/simple/"):
                self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            if send_body:
                self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.server)
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(tls.client_ca))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def wheel(tmp_path: Path) -> bytes:
    return make_wheel(tmp_path / WHEEL)


@pytest.fixture
def servers(tls: Tls, wheel: bytes) -> Iterator[dict[str, str]]:
    plain, mutual = (
        https_index(tls, (WHEEL, wheel), client_certs=False),
        https_index(tls, (WHEEL, wheel), client_certs=True),
    )
    yield {
        "plain": f"https://127.0.0.1:{plain.server_address[1]}/simple/",
        "mutual": f"https://127.0.0.1:{mutual.server_address[1]}/simple/",
    }
    for httpd in (plain, mutual):
        httpd.shutdown()
        httpd.server_close()


def lock_from(tmp_path: Path, index: str, wheel: bytes) -> LockSet:
    return pinned(tmp_path / "proj", index, "tinypkg", hashlib.sha256(wheel).hexdigest())


def test_a_private_ca_is_trusted_for_its_index_only(
    tmp_path: Path, tls: Tls, servers: dict[str, str], wheel: bytes
) -> None:
    locks = lock_from(tmp_path, servers["plain"], wheel)
    # Without the CA: one line naming the index, nothing fetched.
    with pytest.raises(JibError) as err:
        fetch_wheels(locks, target(), cache_dir=tmp_path / "c0")
    assert "cannot reach the package index" in str(err.value) and "\n" not in str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)

    (fetched,) = fetch_wheels(
        locks, target(), cache_dir=tmp_path / "c1", tls={servers["plain"]: IndexTLS(ca=tls.ca)}
    )
    assert fetched.sha256 == hashlib.sha256(wheel).hexdigest()
    # The same CA given for another origin (the other port of the same host) does not count.
    elsewhere = {servers["mutual"]: IndexTLS(ca=tls.ca, client_cert=tls.client)}
    with pytest.raises(JibError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_wheels(locks, target(), cache_dir=tmp_path / "c2", tls=elsewhere)
    # verify = false (Poetry's certificates.<source>.cert = false) skips verification.
    (unverified,) = fetch_wheels(
        locks, target(), cache_dir=tmp_path / "c3", tls={servers["plain"]: IndexTLS(verify=False)}
    )
    assert unverified.sha256 == fetched.sha256


def test_a_client_certificate_reaches_an_index_that_asks_for_one(
    tmp_path: Path, tls: Tls, servers: dict[str, str], wheel: bytes
) -> None:
    locks = lock_from(tmp_path, servers["mutual"], wheel)
    with pytest.raises(JibError, match="cannot reach the package index"):
        fetch_wheels(
            locks, target(), cache_dir=tmp_path / "c0", tls={servers["mutual"]: IndexTLS(ca=tls.ca)}
        )
    with_cert = {servers["mutual"]: IndexTLS(ca=tls.ca, client_cert=tls.client)}
    (fetched,) = fetch_wheels(locks, target(), cache_dir=tmp_path / "c1", tls=with_cert)
    assert fetched.sha256 == hashlib.sha256(wheel).hexdigest()


def test_unusable_tls_files_fail_with_one_line(
    tmp_path: Path, servers: dict[str, str], wheel: bytes
) -> None:
    locks = lock_from(tmp_path, servers["plain"], wheel)
    bogus = tmp_path / "not-a-cert.pem"
    bogus.write_text("hello\n")
    with pytest.raises(JibError) as err:
        fetch_wheels(
            locks, target(), cache_dir=tmp_path / "c", tls={servers["plain"]: IndexTLS(ca=bogus)}
        )
    message = str(err.value)
    assert message.startswith(
        "cannot use the TLS files given for the package index https://127.0.0.1:"
    )
    assert "\n" not in message


def test_an_sdist_build_reaches_its_backend_on_an_index_with_a_private_ca_and_client_cert(
    tmp_path: Path, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_private_index import BACKEND, make_sdist, make_wheel_of

    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # nothing cached: fetch all
    backend = make_wheel_of(
        tmp_path / "tinybackend-1.0-py3-none-any.whl", {"tinybackend/__init__.py": BACKEND}
    )
    sdist = make_sdist(tmp_path / "sdistpkg-1.0.tar.gz")
    httpd = https_index(
        tls,
        ("tinybackend-1.0-py3-none-any.whl", backend),
        ("sdistpkg-1.0.tar.gz", sdist),
        client_certs=True,
    )
    try:
        index = f"https://127.0.0.1:{httpd.server_address[1]}/simple/"
        locks = pinned(tmp_path / "proj", index, "sdistpkg", hashlib.sha256(sdist).hexdigest())
        settings = {index: IndexTLS(ca=tls.ca, client_cert=tls.client)}
        (wheel,) = fetch_wheels(locks, target(), cache_dir=tmp_path / "cache", tls=settings)
        assert wheel.filename == "sdistpkg-1.0-py3-none-any.whl"
        # Without them for the build, uv cannot fetch the backend (pyjib's own fetch still can).
        monkeypatch.setattr(sourcebuild, "subprocess_tls", lambda *_: nullcontext(({}, [])))
        with pytest.raises(JibError, match=r"building a wheel of sdistpkg==1\.0"):
            fetch_wheels(locks, target(), cache_dir=tmp_path / "cache-2", tls=settings)
    finally:
        httpd.shutdown()
        httpd.server_close()
