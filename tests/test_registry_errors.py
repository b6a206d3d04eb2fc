"""Every registry failure is one actionable line with no secret in it; retries are bounded.

The four failures users meet most (wrong password, unknown repository, no push permission, a
registry that is not running) are provoked on real registries; odd replies (echoed secrets, HTML,
Retry-After) come from ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from test_registry_pull import StaticKeychain, client_for, small_image
from testbed.registry import Registry

from jib.errors import JibError
from jib.image.reference import Reference
from jib.registry.client import RegistryClient
from jib.registry.credentials import Credential
from jib.registry.errors import RegistryError, parse_error_body
from jib.registry.retry import RetryPolicy, parse_retry_after

WRONG = "wrong-PW-9f8e7d-SECRET"


def _one_clean_line(err: BaseException, *secrets: str) -> str:
    message = str(err)
    assert isinstance(err, JibError)
    assert "\n" not in message and "Traceback" not in message
    for secret in secrets:
        assert secret not in message
        assert secret not in repr(err)
    return message


# -- the common failures, on real registries ---------------------------------------------------


def test_wrong_password_basic(basic_registry: Registry) -> None:
    user = basic_registry.username
    credential = Credential(username=user, password=WRONG, source="JIB_TO_USERNAME/JIB_TO_PASSWORD")
    ref = Reference.parse(f"{basic_registry.host}/errors/basic:1")
    client = RegistryClient(basic_registry.host, keychain=StaticKeychain(credential))
    with client, pytest.raises(RegistryError) as caught:
        client.push_image(ref, small_image())
    message = _one_clean_line(caught.value, WRONG)
    assert caught.value.status == 401
    assert message.startswith("pushing layer sha256:")
    assert f"check the credentials for {basic_registry.host}" in message
    assert "(from JIB_TO_USERNAME/JIB_TO_PASSWORD)" in message and "docker login" in message


def test_wrong_password_token(token_registry: Registry) -> None:
    credential = Credential(username=token_registry.username, password=WRONG, source="config.json")
    ref = Reference.parse(f"{token_registry.host}/errors/token:1")
    client = RegistryClient(token_registry.host, keychain=StaticKeychain(credential))
    with client, pytest.raises(RegistryError) as caught:
        client.pull_image(ref)
    message = _one_clean_line(caught.value, WRONG)
    assert "token server answered 401" in message
    assert f"check the credentials for {token_registry.host} (from config.json)" in message


def test_unknown_repository(registry: Registry) -> None:
    ref = Reference.parse(f"{registry.host}/errors/no-such-repo:1")
    with client_for(registry) as client, pytest.raises(RegistryError) as caught:
        client.pull_image(ref)
    message = _one_clean_line(caught.value)
    assert caught.value.status == 404
    assert message.startswith(f"pulling manifest {ref} failed: the registry answered 404")
    assert "check the image name and tag" in message


def test_no_push_permission(token_registry: Registry) -> None:
    server = token_registry.token_server
    assert server is not None
    password = token_registry.password

    def read_only(account: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
        return ["pull"] if name == "errors/readonly" else actions

    server.policy = read_only
    try:
        with client_for(token_registry) as client, pytest.raises(RegistryError) as caught:
            client.push_image(
                Reference.parse(f"{token_registry.host}/errors/readonly:1"), small_image()
            )
    finally:
        server.policy = server.default_policy
    message = _one_clean_line(caught.value, password)
    assert "are valid but lack push permission on errors/readonly" in message
    assert "check the credentials" not in message  # 401-for-scope is told apart from bad login


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_registry_not_running() -> None:
    host = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    client = RegistryClient(host, keychain=StaticKeychain())
    with client, pytest.raises(RegistryError) as caught:
        client.pull_image(Reference.parse(f"{host}/errors/down:1"))
    message = _one_clean_line(caught.value)
    assert f"is the registry running at http://{host}?" in message
    assert time.monotonic() - started < 5  # refused on first contact: no retry loop


# -- odd replies (mocked) --------------------------------------------------------------------

HOST = "registry.example.com"
REF = Reference.parse(f"{HOST}/team/app:1")
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.02, total=5)


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    credential: Credential | None = None,
    retry: RetryPolicy = FAST,
) -> RegistryClient:
    return RegistryClient(
        HOST,
        keychain=StaticKeychain(credential or Credential()),
        transport=httpx.MockTransport(handler),
        retry=retry,
    )


def _answering(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """Ping answers 200; later requests get ``responses`` in turn (the last one repeats)."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_echoed_secrets_are_redacted() -> None:
    credential = Credential(username="u", password=WRONG, source="t")
    challenge = {"WWW-Authenticate": 'Basic realm="r"'}

    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "UNAUTHORIZED", "message": f"bad password {WRONG}"}]}
        return httpx.Response(401, json=body, headers=challenge)

    with _client(handler, credential) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest(REF)
    message = _one_clean_line(caught.value, WRONG)
    assert "UNAUTHORIZED bad password ***" in message


def test_403_means_missing_permission_not_bad_credentials() -> None:
    credential = Credential(username="u", password="hunter2-pw", source="~/.docker/config.json")
    challenge = {"WWW-Authenticate": 'Basic realm="r"'}

    def handler(request: httpx.Request) -> httpx.Response:
        if "authorization" not in request.headers:
            return httpx.Response(401, headers=challenge)
        if request.method == "HEAD":
            return httpx.Response(404)
        body = {
            "errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]
        }
        return httpx.Response(403, json=body)

    with _client(handler, credential) as client, pytest.raises(RegistryError) as caught:
        client.push_image(REF, small_image())
    message = _one_clean_line(caught.value)
    assert "403 Forbidden: DENIED requested access to the resource is denied" in message
    assert "(from ~/.docker/config.json) are valid but lack push permission on team/app" in message


def test_not_a_registry() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="404 page not found")

    with _client(handler) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest(REF)
    assert "is not a registry API endpoint" in _one_clean_line(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type", "codes", "said"),
    [
        (
            b'{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry",'
            b'"detail":"sha256:abc"}]}',
            "application/json",
            ("MANIFEST_BLOB_UNKNOWN",),
            "MANIFEST_BLOB_UNKNOWN blob unknown to registry (sha256:abc)",
        ),
        (
            b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known",'
            b'"detail":{"name":"x"}},{"code":"X"}]}',
            "application/json",
            ("NAME_UNKNOWN", "X"),
            "NAME_UNKNOWN repository name not known; X",
        ),
        (
            b'{"details":"incorrect username or password"}',
            None,
            (),
            "incorrect username or password",
        ),
        (b"404 page not found\n", "text/plain", (), "404 page not found"),
        (b"<html><body><h1>413</h1></body></html>", "text/html", (), "an HTML page"),
        (b"", None, (), ""),
        (b"\xff\xfe garbage", None, (), "\ufffd\ufffd garbage"),
        (b"x" * 1000, None, (), "x" * 199 + "…"),
    ],
)
def test_error_bodies_are_parsed_leniently(
    body: bytes, content_type: str | None, codes: tuple[str, ...], said: str
) -> None:
    assert parse_error_body(body, content_type) == (codes, said)


# -- retries ---------------------------------------------------------------------------------


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(base=0.5, cap=10)
    for failures, full in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 10.0), (20, 10.0)]:
        delays = {policy.backoff(failures) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1


def test_transient_failures_are_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=5, base=0.01, cap=0.02, total=30, sleep=waits.append)
    manifest = small_image().raw_manifest
    handler = _answering(
        httpx.ConnectError("connection reset by peer"),
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(
            200,
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ),
    )
    with (
        caplog.at_level(logging.DEBUG, logger="jib.registry"),
        _client(handler, retry=policy) as client,
    ):
        raw, _, _ = client.get_manifest(REF)
    assert raw == manifest
    assert len(waits) == 3 and waits[2] == 2.0  # Retry-After honoured
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.DEBUG] * 3
    assert "HTTP 429" in retries[2].getMessage()


def test_persistent_failure_gives_up_with_a_clear_message() -> None:
    client = _client(_answering(httpx.Response(502, text="Bad Gateway")))
    with client, pytest.raises(RegistryError) as caught:
        client.get_manifest(REF)
    message = _one_clean_line(caught.value)
    assert "502 Bad Gateway" in message and "gave up after 3 attempts" in message
    assert "the registry failed; try again later" in message


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=5, total=60, sleep=waits.append)
    handler = _answering(httpx.Response(429, headers={"Retry-After": "3600"}))
    with _client(handler, retry=policy) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest(REF)
    assert waits == []
    assert "the registry asked to wait 3600 s" in str(caught.value)
    assert "rate limiting" in str(caught.value)


def test_timeouts_are_retried_then_reported() -> None:
    handler = _answering(httpx.ReadTimeout("timed out"))
    with _client(handler) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest(REF)
    message = _one_clean_line(caught.value)
    assert "did not answer within 60 s" in message and "gave up after 3 attempts" in message


def test_non_retryable_statuses_are_not_retried() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(400, json={"errors": [{"code": "MANIFEST_INVALID"}]})

    with _client(handler) as client, pytest.raises(RegistryError):
        client.get_manifest(REF)
    assert calls == ["/v2/", "/v2/team/app/manifests/1"]


def test_debug_logs_hold_no_secrets(
    token_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    server = token_registry.token_server
    assert server is not None
    ref = Reference.parse(f"{token_registry.host}/errors/logs:1")
    bad = Credential(username=token_registry.username, password=WRONG, source="t")
    with caplog.at_level(logging.DEBUG):
        with client_for(token_registry) as client:
            client.push_image(ref, small_image(text=b"logs"))
            client.pull_image(ref)
        bad_client = RegistryClient(token_registry.host, keychain=StaticKeychain(bad))
        with bad_client, pytest.raises(RegistryError):
            bad_client.pull_image(ref)
    basic = base64.b64encode(f"{token_registry.username}:{token_registry.password}".encode())
    assert caplog.records
    for secret in (token_registry.password, WRONG, basic.decode()):
        assert secret not in caplog.text
    assert "eyJ" not in caplog.text  # every JWT (the tokens issued) starts with this
