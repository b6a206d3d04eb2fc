"""An in-process Docker token server for docker-registry 2.8's ``auth.token`` (oci.md §6.4).

Tokens are ES256 JWTs whose header carries the signer's certificate in ``x5c``; the registry trusts
them because that certificate is its ``rootcertbundle``. It serves the GET flow (Basic credentials
or anonymous) and the OAuth2 POST flow (password and refresh_token grants), and records every
request with the scopes it asked for, so tests can assert what a client requested.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# (account or None for anonymous, resource type, resource name, requested actions) -> granted.
Policy = Callable[[str | None, str, str, list[str]], list[str]]


@dataclass(frozen=True)
class TokenRequest:
    method: str  # "GET" or "POST"
    grant: str  # "basic", "anonymous", "password" or "refresh_token"
    account: str | None
    service: str | None
    scopes: tuple[str, ...]  # as requested, one entry per scope
    granted: tuple[str, ...]  # the scopes the token carries, "type:name:a,b"
    status: int  # 200, or the refusal's status


class AuthFailed(Exception):
    def __init__(self, status: int, body: dict[str, str]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(scope: str) -> tuple[str, str, list[str]]:
    # Names may contain ":" (host:port prefixes), so the actions are split off from the right.
    head, _, actions = scope.rpartition(":")
    rtype, _, name = head.partition(":")
    return rtype, name, [a for a in actions.split(",") if a]


class TokenServer:
    def __init__(
        self,
        users: Mapping[str, str],
        *,
        service: str = "pyjib-test-registry",
        issuer: str = "pyjib-test-issuer",
        anonymous_pull: bool = False,
        expires_in: int = 300,
    ) -> None:
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in
        self.policy: Policy = self.default_policy
        self.requests: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = self_signed_ca(self._key, "pyjib test token signer")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TokenServer:
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
            self._server.daemon_threads = True
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="pyjib-token-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def realm(self) -> str:
        if self._server is None:
            raise RuntimeError("token server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    @property
    def bundle_pem(self) -> bytes:
        """The registry's ``rootcertbundle``: the certificate whose key signs every token."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    # -- tokens ------------------------------------------------------------------------------

    def default_policy(
        self, account: str | None, rtype: str, name: str, actions: list[str]
    ) -> list[str]:
        if account is not None:
            return actions
        return ["pull"] if self.anonymous_pull and "pull" in actions else []

    def refresh_token_for(self, account: str) -> str:
        """An identity/refresh token for ``account``, as a docker config ``identitytoken``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = account
        return token

    def issue(self, account: str | None, scopes: list[str]) -> tuple[str, list[str]]:
        """A signed JWT for what the policy grants of ``scopes``, and those granted scopes."""
        access = []
        granted = []
        for scope in scopes:
            rtype, name, actions = parse_scope(scope)
            allowed = [a for a in self.policy(account, rtype, name, actions) if a in actions]
            if allowed:
                access.append({"type": rtype, "name": name, "actions": allowed})
                granted.append(f"{rtype}:{name}:{','.join(allowed)}")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,  # 2.8 rejects an array here
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        # x5c is standard (not url-safe) base64 DER; the registry verifies it against the bundle.
        cert_der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(cert_der).decode()]}
        signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}".encode()
        r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        # JWS wants raw r||s, not the DER that cryptography returns.
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode()}.{_b64url(signature)}", granted

    def _serve(
        self,
        method: str,
        grant: str,
        account: str | None,
        service: str | None,
        scopes: list[str],
        check: Callable[[], None] = lambda: None,
    ) -> dict[str, object]:
        """Check, issue and record; refusals are recorded too, with their status."""
        granted: list[str] = []
        status = 200
        try:
            check()
            if service != self.service:
                raise AuthFailed(400, {"error": "invalid_request", "details": "unknown service"})
            token, granted = self.issue(account, scopes)
        except AuthFailed as exc:
            status = exc.status
            raise
        finally:
            record = TokenRequest(
                method, grant, account, service, tuple(scopes), tuple(granted), status
            )
            with self._lock:
                self.requests.append(record)
        issued = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": issued,
            "scope": " ".join(granted),
        }

    def handle_get(
        self, query: dict[str, list[str]], authorization: str | None
    ) -> dict[str, object]:
        scopes = _split_scopes(query.get("scope", []))
        service = query.get("service", [None])[0]
        if authorization is None:
            return self._serve("GET", "anonymous", None, service, scopes)
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise AuthFailed(401, {"details": "unsupported authorization scheme"})
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        return self._serve(
            "GET", "basic", user, service, scopes, lambda: self._check_password(user, password)
        )

    def handle_post(self, form: dict[str, list[str]]) -> dict[str, object]:
        def field(name: str) -> str | None:
            return form.get(name, [None])[0]

        scopes = _split_scopes(form.get("scope", []))
        service = field("service")
        grant = field("grant_type")
        if grant == "password":
            user = field("username") or ""
            password = field("password") or ""
            body = self._serve(
                "POST", grant, user, service, scopes, lambda: self._check_password(user, password)
            )
            if field("access_type") == "offline":
                body["refresh_token"] = self.refresh_token_for(user)
            return body
        if grant == "refresh_token":
            with self._lock:
                account = self._refresh_tokens.get(field("refresh_token") or "")

            def known() -> None:
                if account is None:
                    raise AuthFailed(401, {"error": "invalid_grant"})

            return self._serve("POST", grant, account, service, scopes, known)
        raise AuthFailed(400, {"error": "unsupported_grant_type"})

    def _check_password(self, user: str, password: str) -> None:
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            raise AuthFailed(401, {"details": "incorrect username or password"})


def _split_scopes(values: list[str]) -> list[str]:
    # Clients send several scope parameters, or one holding space-separated scopes.
    return [scope for value in values for scope in value.split()]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def self_signed_ca(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    """A self-signed CA certificate valid from yesterday for 30 days (also signs TLS certs)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate ``ca`` signed, and its new key: for a server at 127.0.0.1 / localhost, or
    (``server=False``) a TLS client's."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    # Python 3.13's strict X.509 checks want the key identifiers and key usages set.
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.not_valid_before_utc)
        .not_valid_after(ca.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    if server:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._send(404, {"details": "not found"})
                return
            query = parse_qs(url.query)
            self._answer(lambda: server.handle_get(query, self.headers.get("Authorization")))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if urlsplit(self.path).path != "/token":
                self._send(404, {"details": "not found"})
                return
            self._answer(lambda: server.handle_post(form))

        def _answer(self, produce: Callable[[], dict[str, object]]) -> None:
            try:
                body = produce()
            except AuthFailed as exc:
                self._send(exc.status, exc.body)
            except ValueError as exc:  # malformed base64 or credentials
                self._send(400, {"details": str(exc)})
            else:
                self._send(200, body)

        def _send(self, status: int, body: Mapping[str, object]) -> None:
            data = _json(dict(body))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="pyjib-test-token"')
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # tests read TokenServer.requests instead of stderr noise

    return Handler
