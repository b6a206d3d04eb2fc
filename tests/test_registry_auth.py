"""Authentication against real registries: htpasswd Basic with credentials from every source the
contract lists, token auth (GET and OAuth2 refresh, scope for a mount source), TLS with a private
CA. ``httpx.MockTransport`` (or a fake sender) stands in only for challenge variants and token
server behaviour a real registry does not show: several challenges, OAuth2 404, expiry.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from test_registry_pull import (
    FAST,
    StaticKeychain,
    client_for,
    gzip_layer,
    read_all,
    small_image,
)
from testbed.registry import Registry

from jib.errors import JibError
from jib.image.reference import Reference
from jib.registry.auth import Authenticator
from jib.registry.challenge import Scope
from jib.registry.client import RegistryClient
from jib.registry.credentials import Credential, Keychain, default_keychain
from jib.registry.errors import Operation, RegistryError
from jib.registry.transport import is_loopback, schemes_for

# -- Basic auth, credentials from each source ----------------------------------------------------

HELPER = """#!{python}
import json, sys
url = sys.stdin.read().strip()
if sys.argv[1:] != ["get"] or url != {host!r}:
    print("credentials not found in native keychain")
    sys.exit(1)
json.dump({{"ServerURL": url, "Username": {user!r}, "Secret": {password!r}}}, sys.stdout)
"""


def _write_helper(bin_dir: Path, name: str, reg: Registry) -> None:
    user, password = reg.credentials or ("", "")
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        HELPER.format(python=sys.executable, host=reg.host, user=user, password=password)
    )
    script.chmod(0o755)


def _keychain(source: str, reg: Registry, tmp_path: Path) -> Keychain:
    """A default keychain whose only credential for ``reg`` comes from ``source``."""
    user, password = reg.credentials or ("", "")
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    environ = {"HOME": str(home), "PATH": str(bin_dir)}
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    config: dict[str, object] = {}
    explicit = None
    helper = None
    if source == "explicit":
        explicit = Credential(username=user, password=password)
    elif source == "env":
        environ |= {"JIB_TO_USERNAME": user, "JIB_TO_PASSWORD": password}
    elif source == "config-auths":
        config = {"auths": {reg.host: {"auth": auth}}}
    elif source == "credsStore":
        _write_helper(bin_dir, "pyjibstore", reg)
        config = {"credsStore": "pyjibstore"}
    elif source == "credHelpers":
        _write_helper(bin_dir, "pyjibhelper", reg)
        config = {"credHelpers": {reg.host: "pyjibhelper"}}
    elif source == "cred-helper":
        _write_helper(bin_dir, "pyjibnamed", reg)
        helper = "pyjibnamed"
    elif source == "podman":
        auth_file = tmp_path / "auth.json"
        auth_file.write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
        environ["REGISTRY_AUTH_FILE"] = str(auth_file)
    else:
        raise AssertionError(source)
    if config:
        (docker_dir / "config.json").write_text(json.dumps(config))
        environ["DOCKER_CONFIG"] = str(docker_dir)
    return default_keychain(
        explicit=explicit, env_prefix="JIB_TO", cred_helper=helper, environ=environ, home=home
    )


SOURCES = ["explicit", "env", "config-auths", "credsStore", "credHelpers", "cred-helper", "podman"]


@pytest.mark.parametrize("source", SOURCES)
def test_basic_auth_round_trip_with_credentials_from(
    source: str, basic_registry: Registry, tmp_path: Path
) -> None:
    keychain = _keychain(source, basic_registry, tmp_path)
    image = small_image(text=source.encode())
    ref = Reference.parse(f"{basic_registry.host}/auth/{source.lower()}:1")
    with RegistryClient(basic_registry.host, keychain=keychain) as client:
        assert client.push_image(ref, image) == image.digest
        back = client.pull_image(ref)
        assert back.digest == image.digest
        assert read_all(back.layers[1].open()) == read_all(image.layers[1].open())


def test_basic_auth_without_credentials_is_refused(basic_registry: Registry) -> None:
    ref = Reference.parse(f"{basic_registry.host}/auth/anonymous:1")
    client = RegistryClient(basic_registry.host, keychain=StaticKeychain())
    with client, pytest.raises(RegistryError) as caught:
        client.push_image(ref, small_image())
    assert caught.value.status == 401
    assert "no credentials were found" in str(caught.value)


# -- token auth ------------------------------------------------------------------------------


def _token_requests(reg: Registry, since: int) -> list[tuple[str, str, tuple[str, ...]]]:
    assert reg.token_server is not None
    return [(r.method, r.grant, r.scopes) for r in reg.token_server.requests[since:]]


def test_token_auth_round_trip_reuses_tokens(token_registry: Registry) -> None:
    server = token_registry.token_server
    assert server is not None
    start = len(server.requests)
    repo = "auth/token"
    ref = Reference.parse(f"{token_registry.host}/{repo}:1")
    image = small_image(text=b"token")
    with client_for(token_registry) as client:
        client.push_image(ref, image, tags=["2", "3"])
        assert client.pull_image(ref).digest == image.digest
        assert client.pull_image(ref.with_tag("2")).digest == image.digest
    # One exchange per scope set, however many requests each operation made.
    assert _token_requests(token_registry, start) == [
        ("GET", "basic", (f"repository:{repo}:push,pull",)),
        ("GET", "basic", (f"repository:{repo}:pull",)),
    ]
    assert server.requests[-1].account == token_registry.username


def test_identity_token_uses_oauth2_refresh_grant(token_registry: Registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None and token_registry.credentials is not None
    identity = server.refresh_token_for(token_registry.credentials[0])
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {token_registry.host: {"identitytoken": identity}}})
    )
    keychain = default_keychain(environ={"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)})
    start = len(server.requests)
    ref = Reference.parse(f"{token_registry.host}/auth/identity:1")
    with RegistryClient(token_registry.host, keychain=keychain) as client:
        client.push_image(ref, small_image(text=b"identity"))
    assert _token_requests(token_registry, start) == [
        ("POST", "refresh_token", ("repository:auth/identity:push,pull",))
    ]


def test_mount_from_another_repo_asks_pull_on_it_and_sends_no_bytes(
    token_registry: Registry,
) -> None:
    server = token_registry.token_server
    assert server is not None
    image = small_image(text=b"mount me")
    source = Reference.parse(f"{token_registry.host}/auth/mount-src:1")
    target = Reference.parse(f"{token_registry.host}/auth/mount-dst:1")
    with client_for(token_registry) as client:
        client.push_image(source, image)
        pulled = client.pull_image(source)
        tokens, since = len(server.requests), token_registry.mark()
        assert client.push_image(target, pulled) == image.digest

    assert ("repository:auth/mount-src:pull") in server.requests[tokens].scopes
    assert server.requests[tokens].scopes[0] == "repository:auth/mount-dst:push,pull"
    assert "repository:auth/mount-src:pull" in server.requests[tokens].granted
    logged = token_registry.requests(since)
    mounts = [r for r in logged if r.method == "POST" and "mount" in r.params]
    blobs = {str(layer.digest) for layer in image.layers} | {str(image.config_digest)}
    assert {r.params["mount"][0] for r in mounts} == blobs
    assert all(r.status == 201 and r.params["from"] == ["auth/mount-src"] for r in mounts)
    uploads = [r for r in logged if r.method in ("PATCH", "PUT") and "/blobs/uploads/" in r.route]
    assert uploads == []


def test_mount_without_pull_on_the_source_falls_back_to_upload(token_registry: Registry) -> None:
    server = token_registry.token_server
    assert server is not None
    layer = gzip_layer({"secret": b"not yours"})
    with client_for(token_registry) as client:
        assert client.push_blob("auth/private-src", layer) == "uploaded"
        since = token_registry.mark()

        def no_pull_on_private(
            account: str | None, rtype: str, name: str, actions: list[str]
        ) -> list[str]:
            return [] if name == "auth/private-src" else actions

        server.policy = no_pull_on_private
        try:
            result = client.push_blob("auth/private-dst", layer, mount_from="auth/private-src")
        finally:
            server.policy = server.default_policy
    assert result == "uploaded"
    logged = [(r.method, r.status) for r in token_registry.requests(since)]
    # The mount is refused for lack of scope (twice: once more after re-authenticating).
    assert logged[:3] == [("HEAD", 404), ("POST", 401), ("POST", 401)]
    assert logged[-2:] == [("POST", 202), ("PUT", 201)]


# -- TLS -------------------------------------------------------------------------------------


def test_tls_round_trip_with_the_registry_ca(tls_registry: Registry) -> None:
    assert tls_registry.ca_path is not None
    ref = Reference.parse(f"{tls_registry.host}/auth/tls:1")
    image = small_image(text=b"tls")
    with client_for(tls_registry, ca_bundle=tls_registry.ca_path) as client:
        client.push_image(ref, image)
        assert client.pull_image(ref).digest == image.digest
        assert client.base_url.scheme == "https"


def test_tls_ca_from_ssl_cert_file(tls_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tls_registry.ca_path is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with RegistryClient(tls_registry.host, keychain=StaticKeychain()) as client:
        client.ping()
        assert client.base_url.scheme == "https"


def test_tls_without_the_ca_fails_in_one_clear_line(tls_registry: Registry) -> None:
    client = RegistryClient(tls_registry.host, keychain=StaticKeychain())
    with client, pytest.raises(RegistryError) as caught:
        client.pull_image(Reference.parse(f"{tls_registry.host}/auth/tls:1"))
    message = str(caught.value)
    assert "certificate" in message and "not trusted" in message
    assert "SSL_CERT_FILE" in message and "allow-insecure-registries" in message
    assert "\n" not in message and "Traceback" not in message


def test_tls_insecure_skips_verification(
    tls_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    with RegistryClient(tls_registry.host, keychain=StaticKeychain(), insecure=True) as client:
        with caplog.at_level(logging.WARNING, logger="jib.registry"):
            client.ping()
        assert client.base_url.scheme == "https"
    assert "Not verifying the TLS certificate" in caplog.text


# -- challenge and token-server variants (mocked) ----------------------------------------------

HOST = "registry.example.com"
REALM = "https://auth.example.com/token"


class FakeAuthRegistry:
    """A registry + token server in one MockTransport handler, recording every request."""

    def __init__(self, ping_headers: list[tuple[str, str]], *, oauth: bool = True) -> None:
        self.ping_headers = ping_headers
        self.oauth = oauth
        self.seen: list[httpx.Request] = []
        self.insufficient_once: str | None = None
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host == "auth.example.com":
            if request.method == "POST" and not self.oauth:
                return httpx.Response(404)
            self.issued += 1
            return httpx.Response(200, json={"token": f"tok-{self.issued}", "expires_in": 300})
        if request.url.path == "/v2/":
            return httpx.Response(401, headers=self.ping_headers)
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return httpx.Response(401, headers=self.ping_headers)
        if self.insufficient_once:
            scope, self.insufficient_once = self.insufficient_once, None
            value = (
                f'Bearer realm="{REALM}",service="reg",scope="{scope}",error="insufficient_scope"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": value})
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    def token_requests(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.host == "auth.example.com"]


BEARER = ("WWW-Authenticate", f'Bearer realm="{REALM}",service="reg"')


def _client(fake: FakeAuthRegistry, credential: Credential | None = None) -> RegistryClient:
    keychain = StaticKeychain(credential or Credential())
    return RegistryClient(HOST, keychain=keychain, transport=httpx.MockTransport(fake), retry=FAST)


def _head(client: RegistryClient, ref: str = f"{HOST}/team/app:1") -> None:
    assert client.head_manifest(Reference.parse(ref)) is None


def test_several_challenges_pick_bearer_and_send_scopes() -> None:
    fake = FakeAuthRegistry([("WWW-Authenticate", 'Negotiate, Basic realm="x"'), BEARER])
    with _client(fake, Credential(username="u", password="p", source="t")) as client:
        _head(client)
    (token,) = fake.token_requests()
    assert token.method == "GET"
    assert parse_qs(token.url.query.decode()) == {
        "service": ["reg"],
        "scope": ["repository:team/app:pull"],
        "account": ["u"],
    }
    assert token.headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


def test_insufficient_scope_adds_the_named_scopes_in_front() -> None:
    fake = FakeAuthRegistry([BEARER])
    # A scope naming a host:port repository, and a second one, in one quoted parameter.
    fake.insufficient_once = "repository:localhost:5000/base:pull repository:team/app:pull"
    with _client(fake) as client:
        _head(client)
    first, second = fake.token_requests()
    assert parse_qs(first.url.query.decode())["scope"] == ["repository:team/app:pull"]
    assert parse_qs(second.url.query.decode())["scope"] == [
        "repository:localhost:5000/base:pull",
        "repository:team/app:pull",
    ]


def test_identity_token_posts_oauth2_form() -> None:
    fake = FakeAuthRegistry([BEARER])
    with _client(fake, Credential(identity_token="idtok-SECRET", source="t")) as client:
        _head(client)
    (token,) = fake.token_requests()
    assert token.method == "POST"
    assert parse_qs(token.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["idtok-SECRET"],
        "client_id": ["pyjib"],
        "service": ["reg"],
        "scope": ["repository:team/app:pull"],
    }


def test_oauth2_404_falls_back_to_get() -> None:
    fake = FakeAuthRegistry([BEARER], oauth=False)
    with _client(fake, Credential(identity_token="idtok", source="t")) as client:
        _head(client)
    assert [r.method for r in fake.token_requests()] == ["POST", "GET"]


def test_registry_token_is_sent_as_is() -> None:
    fake = FakeAuthRegistry([BEARER])
    with _client(fake, Credential(registry_token="regtok", source="t")) as client:
        _head(client)
    assert fake.token_requests() == []
    assert fake.seen[-1].headers["authorization"] == "Bearer regtok"


def _authenticator(answers: list[dict[str, object]], now: list[float]) -> Authenticator:
    def send(method: str, url: httpx.URL, op: Operation, **_: object) -> httpx.Response:
        return httpx.Response(200, json=answers.pop(0), request=httpx.Request(method, url))

    auth = Authenticator(HOST, StaticKeychain(), send=send, clock=lambda: now[0])
    ping = httpx.Response(
        401, headers=[BEARER], request=httpx.Request("GET", f"https://{HOST}/v2/")
    )
    auth.configure(ping)
    return auth


@pytest.mark.parametrize(
    ("answer", "valid_for"),
    [
        ({"token": "t", "expires_in": 300}, 300),
        ({"access_token": "t", "expires_in": 10}, 60),  # never under 60 s
        ({"token": "t"}, 60),  # the default
        ({"token": "t", "expires_in": 300, "issued_at": "2000-01-01T00:00:00Z"}, 300),  # skew
    ],
)
def test_tokens_are_cached_until_they_expire(answer: dict[str, object], valid_for: int) -> None:
    now = [1000.0]
    answers = [dict(answer), {**answer, "token": "t2", "access_token": "t2"}]
    auth = _authenticator(answers, now)
    url = httpx.URL(f"https://{HOST}/v2/team/app/manifests/1")
    op = Operation("test", HOST)
    scopes = (Scope.pull("team/app"),)
    assert auth.authorization(url, scopes, op) == "Bearer t"
    now[0] += valid_for - 6
    assert auth.authorization(url, scopes, op) == "Bearer t"
    now[0] += 2
    assert auth.authorization(url, scopes, op) == "Bearer t2"


def test_issued_at_shortens_the_lifetime() -> None:
    from datetime import datetime, timedelta, timezone

    issued = (datetime.now(timezone.utc) - timedelta(seconds=250)).isoformat()
    now = [0.0]
    auth = _authenticator(
        [{"token": "t", "expires_in": 300, "issued_at": issued}, {"token": "t2"}], now
    )
    url = httpx.URL(f"https://{HOST}/v2/x/manifests/1")
    op = Operation("test", HOST)
    assert auth.authorization(url, (Scope.pull("x"),), op) == "Bearer t"
    now[0] = 46.0  # 250 + 46 > 300 - 5
    assert auth.authorization(url, (Scope.pull("x"),), op) == "Bearer t2"


# -- where credentials may go ----------------------------------------------------------------


def _not_tls() -> httpx.ConnectError:
    try:
        raise ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    except ssl.SSLError as cause:
        error = httpx.ConnectError("wrong version number")
        error.__cause__ = cause
        return error


def _plain_http_registry(seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.scheme == "https":
            raise _not_tls()
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    return handler


def test_no_plain_http_to_a_remote_host_without_insecure() -> None:
    seen: list[httpx.Request] = []
    credential = Credential(username="u", password="pw-1234-SECRET", source="t")
    with (
        RegistryClient(
            HOST,
            keychain=StaticKeychain(credential),
            transport=httpx.MockTransport(_plain_http_registry(seen)),
        ) as client,
        pytest.raises(RegistryError) as caught,
    ):
        _head(client)
    assert "allow-insecure-registries" in str(caught.value)
    assert {r.url.scheme for r in seen} == {"https"}


def test_credentials_never_go_over_plain_http_to_a_remote_host() -> None:
    seen: list[httpx.Request] = []
    credential = Credential(username="u", password="pw-1234-SECRET", source="t")
    with (
        RegistryClient(
            HOST,
            keychain=StaticKeychain(credential),
            insecure=True,
            transport=httpx.MockTransport(_plain_http_registry(seen)),
        ) as client,
        pytest.raises(RegistryError) as caught,
    ):
        _head(client)
    assert "plain HTTP" in str(caught.value) and "pw-1234-SECRET" not in str(caught.value)
    assert [r.url.scheme for r in seen] == ["https", "http"]  # the ping only
    assert not any("authorization" in r.headers for r in seen)


def test_cookies_are_never_sent_back() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200 if request.url.path == "/v2/" else 404,
            headers={"Set-Cookie": "sid=abc; Path=/; Domain=registry.example.com"},
        )

    with RegistryClient(
        HOST, keychain=StaticKeychain(), transport=httpx.MockTransport(handler)
    ) as client:
        _head(client)
        _head(client)
    assert len(seen) == 3 and not any("cookie" in r.headers for r in seen)


def test_authorization_stays_off_upload_locations_on_other_hosts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host != HOST:
            return httpx.Response(201, headers={"Docker-Content-Digest": str(layer.digest)})
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.method == "HEAD":
            return httpx.Response(404)
        location = "https://uploads.example.net/session/1?sig=abc"
        return httpx.Response(202, headers={"Location": location})

    layer = gzip_layer({"f": b"x"})
    credential = Credential(username="u", password="p", source="t")
    with RegistryClient(
        HOST, keychain=StaticKeychain(credential), transport=httpx.MockTransport(handler)
    ) as client:
        assert client.push_blob("team/app", layer) == "uploaded"
    (put,) = [r for r in seen if r.method == "PUT"]
    assert put.url.host == "uploads.example.net" and "authorization" not in put.headers
    assert put.url.query.decode() == f"sig=abc&digest=sha256%3A{layer.digest.hex}"


def test_keychain_is_not_consulted_for_an_open_registry(registry: Registry) -> None:
    keychain = StaticKeychain()
    with RegistryClient(registry.host, keychain=keychain) as client:
        client.push_blob("auth/open", gzip_layer({"f": b"open"}))
    assert keychain.calls == []


def test_jib_error_for_missing_env_password_is_one_line(basic_registry: Registry) -> None:
    keychain = default_keychain(
        env_prefix="JIB_TO", environ={"JIB_TO_USERNAME": "u", "HOME": "/nonexistent"}
    )
    with (
        RegistryClient(basic_registry.host, keychain=keychain) as client,
        pytest.raises(JibError) as caught,
    ):
        client.push_blob("auth/env", gzip_layer({"f": b"env"}))
    assert "JIB_TO_PASSWORD" in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("registry.localhost", True),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("registry.example.com", False),
    ],
)
def test_plain_http_is_tried_only_for_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert schemes_for(host, insecure=False) == (("https", "http") if loopback else ("https",))
    assert schemes_for(host, insecure=True) == ("https", "http")


def test_anonymous_token_pulls_but_may_not_push(
    registry_factory: Callable[..., Registry],
) -> None:
    reg = registry_factory(auth="token", anonymous_pull=True)
    ref = Reference.parse(f"{reg.host}/auth/public:1")
    image = small_image(text=b"public")
    with client_for(reg) as client:
        client.push_image(ref, image)
    with RegistryClient(reg.host, keychain=StaticKeychain()) as anonymous:
        assert anonymous.pull_image(ref).digest == image.digest
        with pytest.raises(RegistryError) as caught:
            anonymous.push_image(ref.with_tag("2"), small_image(text=b"mine"))
    message = str(caught.value)
    assert "anonymous access may not push auth/public" in message
    assert f"docker login {reg.host}" in message
    assert reg.token_server is not None
    assert {r.grant for r in reg.token_server.requests[-2:]} == {"anonymous"}
