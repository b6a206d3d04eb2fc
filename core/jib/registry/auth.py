"""Authentication to one registry: the ping challenge, Basic, and Bearer tokens by scope.

The flow is distribution's (``docs/spec/auth/token.md``, oci.md 3): ``GET /v2/`` answers 200 (no
auth), or 401 with a ``Basic`` or ``Bearer`` challenge. Basic credentials go on every request to
the registry. Bearer tokens are exchanged at the challenge's realm for the scopes an operation
needs -- by OAuth2 POST when the credential is an identity (refresh) token, falling back to GET on
404 as not every token server speaks OAuth2, else by GET with Basic credentials or anonymously --
and cached per scope set until shortly before they expire. A 401 later on (a token that expired
early, or ``insufficient_scope`` for a mount source) names the scopes it wants; they are added in
front (some registries only read the first scope) and the request is retried once.

Authorization is attached only for the registry's own origin: never for a redirect target or an
upload Location on another host, and never over plain HTTP to a host that is not this machine.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode

import httpx

from jib.registry.challenge import Challenge, Scope, merge_scopes, parse_challenges, pick
from jib.registry.credentials import Credential, Keychain
from jib.registry.errors import (
    Operation,
    RegistryError,
    plain_http_refused,
    response_error,
)
from jib.registry.transport import same_origin, url_is_loopback

log = logging.getLogger("jib.registry")

MIN_TOKEN_LIFETIME = 60.0  # seconds; distribution's client and containers/image use the same floor
REFRESH_MARGIN = 5.0  # renew a little early so a token does not expire in flight
CLIENT_ID = "pyjib"

#: ``send(method, url, op, headers=..., body=..., retry=...)``: the client's retrying sender,
#: without registry auth (token requests go to the realm, not the registry).
SendFn = Callable[..., httpx.Response]


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float  # on the monotonic clock

    def fresh(self, now: float) -> bool:
        return now < self.expires - REFRESH_MARGIN


class Authenticator:
    """Credentials and tokens for one registry; thread-safe, shared by all its operations."""

    def __init__(
        self,
        registry: str,
        keychain: Keychain,
        *,
        send: SendFn,
        insecure: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._keychain = keychain
        self._send = send
        self._insecure = insecure
        self._clock = clock
        self._lock = threading.RLock()
        self._origin: httpx.URL | None = None
        self._challenge: Challenge | None = None
        self._credential: Credential | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._issued: set[str] = set()

    # -- state ---------------------------------------------------------------------------------

    def configure(self, ping: httpx.Response) -> None:
        """Remember the registry's origin and its challenge from the ``/v2/`` ping."""
        with self._lock:
            self._origin = ping.url
            if ping.status_code == 401:
                self._challenge = _bare(
                    pick(parse_challenges(ping.headers.get_list("www-authenticate")))
                )
            log.debug(
                "%s: %s", self.registry, self._challenge.scheme if self._challenge else "no auth"
            )

    @property
    def credential(self) -> Credential:
        """The keychain's credential for this registry, looked up once, on first need."""
        with self._lock:
            if self._credential is None:
                self._credential = self._keychain.resolve(self.registry)
            return self._credential

    @property
    def known_credential(self) -> Credential | None:
        """The credential if it has been looked up (messages must not run a helper)."""
        return self._credential

    @property
    def secrets(self) -> tuple[str, ...]:
        """Everything to redact from messages: the credential's secrets and issued tokens."""
        credential = self._credential
        with self._lock:
            return (*(credential.secrets if credential else ()), *self._issued)

    # -- requests ------------------------------------------------------------------------------

    def authorization(self, url: httpx.URL, scopes: tuple[Scope, ...], op: Operation) -> str | None:
        """The ``Authorization`` value for a request to ``url`` needing ``scopes``, if any."""
        challenge = self._challenge
        if challenge is None or self._origin is None or not same_origin(url, self._origin):
            return None
        credential = self.credential
        if url.scheme == "http" and not url_is_loopback(url) and not credential.is_anonymous:
            raise plain_http_refused(op, url)
        if credential.registry_token:
            return f"Bearer {credential.registry_token}"
        if challenge.scheme == "basic":
            if credential.username and credential.password:
                return _basic(credential.username, credential.password)
            return None
        return f"Bearer {self._token(scopes, op)}"

    def unauthorized(
        self, response: httpx.Response, scopes: tuple[Scope, ...]
    ) -> tuple[Scope, ...] | None:
        """After a 401: the scopes to retry with, or None when retrying cannot help."""
        found = pick(parse_challenges(response.headers.get_list("www-authenticate")))
        with self._lock:
            previous = self._challenge
            if found is None:
                # gcr.io once sent 401s without a challenge; the ping's one still applies.
                if previous is None:
                    return None
                found = previous
            if found.scheme == "basic":
                self._challenge = _bare(found)
                already_sent = previous is not None and previous.scheme == "basic"
                return None if already_sent or self.credential.is_anonymous else scopes
            if not found.realm and previous is not None and previous.scheme == "bearer":
                found = Challenge("bearer", {**previous.params, **found.params})
            self._challenge = _bare(found)
            wanted: list[Scope] = []
            for text in found.scopes:
                try:
                    wanted.append(Scope.parse(text))
                except ValueError:
                    log.debug("Ignoring unparsable scope %r in a challenge", text)
            merged = merge_scopes([*wanted, *scopes])
            for key in (_key(scopes), _key(merged)):
                self._tokens.pop(key, None)
            log.debug("%s: 401 (%s); re-authenticating for %s", self.registry, found.error, merged)
            return merged

    # -- tokens --------------------------------------------------------------------------------

    def _token(self, scopes: tuple[Scope, ...], op: Operation) -> str:
        key = _key(scopes)
        with self._lock:  # one exchange at a time: concurrent pushes share the result
            token = self._tokens.get(key)
            if token is None or not token.fresh(self._clock()):
                token = self._fetch(scopes, op)
                self._tokens[key] = token
                self._issued.add(token.value)
            return token.value

    def _fetch(self, scopes: tuple[Scope, ...], op: Operation) -> _Token:
        challenge = self._challenge
        assert challenge is not None
        credential = self.credential
        auth_op = Operation(
            f"authenticating to {self.registry} for {op.description}",
            self.registry,
            op.repository,
            op.action,
            kind="auth",
        )
        if not challenge.realm:
            raise RegistryError(
                f"{auth_op.description} failed: the registry's Bearer challenge names no token "
                "server (realm); the registry is misconfigured"
            )
        realm = httpx.URL(challenge.realm)
        if realm.scheme not in ("http", "https"):
            raise RegistryError(
                f"{auth_op.description} failed: the token server {challenge.realm!r} is not an "
                "http(s) URL; the registry is misconfigured"
            )
        # Credentials (and identity tokens) never travel over plain HTTP off this machine.
        plain = realm.scheme == "http" and not url_is_loopback(realm)
        if plain and not credential.is_anonymous:
            if not self._insecure:
                raise plain_http_refused(auth_op, realm)
            credential = Credential(source=credential.source)
        service = challenge.service
        scope_text = [str(s) for s in scopes]
        if credential.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credential.identity_token}
            form["client_id"] = CLIENT_ID
            if service:
                form["service"] = service
            if scope_text:
                form["scope"] = " ".join(scope_text)
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            answer = self._send(
                "POST", realm, auth_op, headers=headers, body=urlencode(form).encode(), retry=True
            )
            if answer.status_code == 200:
                return self._parse(answer, auth_op, credential)
            if answer.status_code not in (404, 405):
                raise response_error(answer, auth_op, credential=credential, secrets=self.secrets)
            log.debug("%s: no OAuth2 at %s; getting the token by GET", self.registry, realm)
        params: list[tuple[str, str]] = [("service", service)] if service else []
        params += [("scope", s) for s in scope_text]
        headers = {}
        if credential.username:
            params.append(("account", credential.username))
            if credential.password:
                headers["Authorization"] = _basic(credential.username, credential.password)
        url = realm.copy_merge_params(params)
        answer = self._send("GET", url, auth_op, headers=headers, body=None, retry=True)
        if answer.status_code != 200:
            raise response_error(answer, auth_op, credential=credential, secrets=self.secrets)
        return self._parse(answer, auth_op, credential)

    def _parse(self, answer: httpx.Response, op: Operation, credential: Credential) -> _Token:
        try:
            data = answer.json()
        except ValueError:
            data = None
        value = None
        if isinstance(data, dict):
            value = data.get("token") or data.get("access_token")  # either may be sent alone
        if not isinstance(value, str) or not value:
            raise RegistryError(
                f"{op.description} failed: the token server's answer holds no token; "
                "the token server is misconfigured"
            )
        return _Token(value, self._clock() + _lifetime(data))


def _lifetime(data: dict[str, object]) -> float:
    """Seconds the token stays valid from now, from ``expires_in`` and ``issued_at``."""
    expires_in = data.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else MIN_TOKEN_LIFETIME
    lifetime = max(lifetime, MIN_TOKEN_LIFETIME)
    issued = _parse_time(data.get("issued_at"))
    if issued is None:
        return lifetime
    age = (datetime.now(timezone.utc) - issued).total_seconds()
    # An age outside [0, lifetime) means the clocks disagree; trust our own receipt time then.
    return lifetime - age if 0 <= age < lifetime else lifetime


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _bare(challenge: Challenge | None) -> Challenge | None:
    """The challenge without its request-specific ``scope``/``error`` (kept: realm, service)."""
    if challenge is None:
        return None
    kept = {k: v for k, v in challenge.params.items() if k not in ("scope", "error")}
    return Challenge(challenge.scheme, kept)


def _key(scopes: Iterable[Scope]) -> frozenset[str]:
    return frozenset(str(s) for s in scopes)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
