"""Registry failures as one actionable line: what failed, what the registry said, what to do.

Registries answer errors with ``{"errors":[{"code","message","detail"}]}`` (distribution spec
§Error Codes), but also with plain text (unknown routes), HTML (reverse proxies) or other JSON
(token servers), so bodies are parsed leniently and only a short, single-line excerpt is kept.
Every message is passed through :func:`~jib.registry.credentials.redact` with the credential's
secrets and any tokens issued, because registries and token servers sometimes echo them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import httpx

from jib.errors import JibError
from jib.image.digest import Digest
from jib.registry.challenge import parse_challenges
from jib.registry.credentials import Credential, redact
from jib.registry.retry import RETRY_STATUSES, Attempts, parse_retry_after
from jib.registry.transport import (
    RETRYABLE_FAILURES,
    FailureKind,
    Timeouts,
    failure_kind,
    is_loopback,
)

#: ping: GET /v2/; auth: the token server; manifest/blob: pulls; upload: a blob push;
#: mount: a cross-repository mount; put: a manifest push.
Kind = Literal["ping", "auth", "manifest", "blob", "upload", "mount", "put"]

_MAX_EXCERPT = 200
#: Upload-session errors that mean "start over", not "give up" (ggcr's transport/error.go).
_SESSION_CODES = frozenset({"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN"})
_TEMPORARY_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE"})


class RegistryError(JibError):
    """A registry operation that failed; ``str()`` is one line, free of secrets."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[str, ...] = (),
        retryable: bool = False,
        retry_after: float | None = None,
        failure: FailureKind | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes
        self.retryable = retryable
        self.retry_after = retry_after
        self.failure = failure

    def with_note(self, note: str | None) -> RegistryError:
        """The same error with ``(note)`` appended, e.g. how many attempts were made."""
        if not note:
            return self
        return RegistryError(
            f"{self} ({note})",
            status=self.status,
            codes=self.codes,
            retryable=self.retryable,
            retry_after=self.retry_after,
            failure=self.failure,
        )


@dataclass(frozen=True)
class Operation:
    """What the client was doing, for messages: ``pushing layer sha256:abc… to host/repo``."""

    description: str
    registry: str
    repository: str | None = None
    action: Literal["pull", "push"] = "pull"
    kind: Kind = "manifest"


def short(digest: Digest) -> str:
    """``sha256:0123456789ab…``: enough to recognize a blob in a message."""
    return f"{digest.algorithm}:{digest.hex[:12]}…"


def parse_error_body(body: bytes, content_type: str | None = None) -> tuple[tuple[str, ...], str]:
    """The registry's error codes and a one-line summary of what it said ("" if nothing useful)."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return (), ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        codes: list[str] = []
        parts: list[str] = []
        errors = data.get("errors")
        if isinstance(errors, list):
            for entry in errors[:3]:
                if not isinstance(entry, dict):
                    continue
                code = str(entry.get("code") or "").strip()
                message = str(entry.get("message") or "").strip()
                detail = entry.get("detail")
                if code:
                    codes.append(code)
                part = " ".join(p for p in (code, message) if p)
                # A string detail is often the digest or name that was unknown: worth showing.
                if isinstance(detail, str) and detail and detail not in part and len(detail) < 100:
                    part += f" ({detail})"
                if part:
                    parts.append(part)
        else:
            # OAuth2 and token servers: {"error": ..., "error_description"/"details": ...}.
            for key in ("error", "error_description", "details", "detail", "message"):
                value = data.get(key)
                if isinstance(value, str) and value.strip():
                    parts.append(value.strip())
        return tuple(codes), _excerpt("; ".join(parts))
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "text/html" or text.lstrip().lower().startswith(("<!doctype", "<html")):
        return (), "an HTML page"  # a proxy's error page; its markup helps nobody
    return (), _excerpt(text.splitlines()[0])


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_EXCERPT else text[: _MAX_EXCERPT - 1] + "…"


def response_error(
    response: httpx.Response,
    op: Operation,
    *,
    credential: Credential | None,
    secrets: Iterable[str] = (),
    attempts: Attempts | None = None,
) -> RegistryError:
    """The error for an unexpected ``response`` to ``op``."""
    try:
        body = response.read()
    except (httpx.HTTPError, httpx.StreamError):
        body = b""
    codes, said = parse_error_body(body, response.headers.get("content-type"))
    status = response.status_code
    reply = f"{status} {response.reason_phrase}".strip()
    if said:
        reply += f": {said}"
    insufficient = any(
        c.error == "insufficient_scope"
        for c in parse_challenges(response.headers.get_list("www-authenticate"))
    )
    advice = _advice(status, codes, op, credential, insufficient, str(response.url))
    message = f"{op.description} failed: the registry answered {reply}"
    if op.kind == "auth":
        message = f"{op.description} failed: the token server answered {reply}"
    if advice:
        message += f"; {advice}"
    if attempts is not None and attempts.gave_up:
        message += f" ({attempts.gave_up})"
    retryable = status in RETRY_STATUSES or bool(set(codes) & _TEMPORARY_CODES)
    if op.kind == "upload" and set(codes) & _SESSION_CODES:
        retryable = True  # the upload session died; a fresh POST starts a new one
    return RegistryError(
        redact(message, *_secrets(credential, secrets)),
        status=status,
        codes=codes,
        retryable=retryable,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def transport_error(
    exc: BaseException,
    op: Operation,
    url: httpx.URL,
    *,
    credential: Credential | None,
    secrets: Iterable[str] = (),
    insecure: bool = False,
    timeouts: Timeouts | None = None,
    attempts: Attempts | None = None,
) -> RegistryError:
    """The error for a request to ``url`` that got no HTTP answer at all."""
    kind = failure_kind(exc)
    origin = f"{url.scheme}://{url.netloc.decode('ascii', errors='replace')}"
    host = url.netloc.decode("ascii", errors="replace")
    if kind == "refused":
        what, advice = "the connection was refused", f"is the registry running at {origin}?"
    elif kind == "tls_verify":
        reason = _ssl_reason(exc)
        what = f"the TLS certificate of {host} is not trusted ({reason})"
        advice = (
            "give the registry's CA certificate via SSL_CERT_FILE (or the CA bundle setting), "
            "or set allow-insecure-registries = true to skip verification"
        )
    elif kind == "not_tls":
        what = f"{host} did not answer HTTPS ({_ssl_reason(exc)})"
        advice = (
            "if it is a plain-HTTP registry, set allow-insecure-registries = true "
            "(pyjib uses plain HTTP without it only for localhost)"
            if not (insecure or is_loopback(host))
            else "check the registry address and port"
        )
    elif kind == "timeout":
        limit = f" within {timeouts.read:g} s" if timeouts is not None else ""
        what = f"{origin} did not answer{limit}"
        advice = "check the network and the registry, or raise the timeout"
    elif kind == "dns":
        what = f"the host name {url.host!r} could not be resolved"
        advice = "check the registry name in the image reference"
    elif kind == "protocol":
        what = f"the request to {origin} could not be sent ({_first_line(exc)})"
        advice = "the registry sent an unusable address; report this to its operators"
    else:
        what = f"the connection to {origin} failed ({_first_line(exc)})"
        advice = "check the network and try again"
    message = f"{op.description} failed: {what}; {advice}"
    if attempts is not None and attempts.gave_up:
        message += f" ({attempts.gave_up})"
    return RegistryError(
        redact(message, *_secrets(credential, secrets)),
        retryable=kind in RETRYABLE_FAILURES,
        failure=kind,
    )


def plain_http_refused(op: Operation, url: httpx.URL) -> RegistryError:
    """Refusal to use (or send credentials over) plain HTTP to a host that is not this machine."""
    return RegistryError(
        f"{op.description} failed: {url.host} wants credentials over plain HTTP, which pyjib "
        "never sends to another machine; serve the registry (and its token server) over HTTPS"
    )


def _advice(
    status: int,
    codes: tuple[str, ...],
    op: Operation,
    credential: Credential | None,
    insufficient_scope: bool,
    url: str,
) -> str:
    registry, repo = op.registry, op.repository or op.registry
    anonymous = credential is None or credential.is_anonymous
    login = f"log in with `docker login {registry}`"
    if status == 401 and (op.kind == "auth" or not insufficient_scope):
        if anonymous:
            return f"no credentials were found for {registry}: {login} or configure auth for it"
        return f"check the credentials for {registry} (from {credential.source}) or {login}"
    if status in (401, 403):
        if anonymous:
            return f"anonymous access may not {op.action} {repo}: {login} or configure auth for it"
        return (
            f"the credentials for {registry} (from {credential.source}) are valid but lack "
            f"{op.action} permission on {repo}"
        )
    if "NAME_UNKNOWN" in codes and op.action == "push":
        return (
            f"check the repository name {repo}; some registries (ECR, for one) need a "
            "repository created before the first push"
        )
    if status == 404:
        if op.kind == "ping":
            return f"{url} is not a registry API endpoint: check the registry address"
        if op.kind == "manifest" or {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"} & set(codes):
            return "check the image name and tag"
        if op.kind == "blob":
            return "the registry lacks a blob its manifest names; re-push the image"
    if "MANIFEST_BLOB_UNKNOWN" in codes:
        return "a blob the manifest references is missing from the repository; push it first"
    if status == 413:
        return "the registry (or a proxy in front of it) refused a request this large"
    if status == 429:
        return "the registry is rate limiting; wait a while and try again"
    if status >= 500:
        return "the registry failed; try again later"
    return ""


def _secrets(credential: Credential | None, secrets: Iterable[str]) -> tuple[str, ...]:
    return (*(credential.secrets if credential else ()), *secrets)


def _ssl_reason(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None:
        reason = getattr(current, "verify_message", None) or getattr(current, "reason", None)
        if isinstance(reason, str) and reason:
            return reason.replace("_", " ").lower()
        current = current.__cause__ or current.__context__
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _excerpt(text[0]) if text else type(exc).__name__
