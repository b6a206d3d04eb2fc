"""``RegistryClient``: one registry host, shared by every pull and push that touches it.

One client per host means one connection pool, one ping and one token cache: a build that pulls a
base image and pushes to the same registry exchanges each token once. Every request goes through
:meth:`RegistryClient.request`, which adds authorization, retries what is safe to retry, re-
authenticates once on 401, and leaves error reporting to :meth:`RegistryClient.error`. The pull
and push protocols live in ``pull.py`` and ``push.py``; the methods here are their front door.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

import httpx

from jib.image import mediatypes
from jib.image.descriptor import Descriptor, Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.layer import Layer
from jib.image.reference import DOCKER_HUB, DOCKER_HUB_API, Reference
from jib.registry import pull, push
from jib.registry.auth import Authenticator
from jib.registry.challenge import Scope
from jib.registry.credentials import Keychain
from jib.registry.errors import Operation, RegistryError, response_error, transport_error
from jib.registry.retry import NO_RETRY, RETRY_STATUSES, Attempts, RetryPolicy, parse_retry_after
from jib.registry.transport import (
    RETRYABLE_FAILURES,
    Timeouts,
    failure_kind,
    make_http_client,
    schemes_for,
    ssl_context,
)

log = logging.getLogger("jib.registry")

#: A request body: bytes (replayable), a factory of fresh byte iterators (replayable by calling
#: it again: a retry or a re-authentication re-opens the layer), or nothing.
Body = bytes | Callable[[], Iterable[bytes]] | None
UploadMode = Literal["put", "patch", "chunked"]
DEFAULT_CHUNK_SIZE = 8 << 20  # chunked uploads only; ECR wants >= 5 MB parts, GHCR <= 4 MiB ones


class RegistryClient:
    """A thread-safe client for the registry ``registry`` (``Reference.registry``)."""

    def __init__(
        self,
        registry: str,
        *,
        keychain: Keychain,
        insecure: bool = False,
        ca_bundle: Path | None = None,
        timeout: Timeouts = Timeouts(),  # noqa: B008 - frozen, so a shared default is safe
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008
        transport: httpx.BaseTransport | None = None,
        upload_mode: UploadMode = "put",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.registry = registry
        self.api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.insecure = insecure
        self.timeouts = timeout
        self.retry = retry
        self.upload_mode: UploadMode = upload_mode
        self.chunk_size = chunk_size
        self._transport = transport
        self._http = make_http_client(
            verify=ssl_context(ca_bundle), timeouts=timeout, transport=transport
        )
        self._verified = True
        self._auth = Authenticator(registry, keychain, send=self._send, insecure=insecure)
        self._base: httpx.URL | None = None
        self._ready = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r})"

    @property
    def base_url(self) -> httpx.URL:
        """``scheme://host[:port]`` as found by the ping (which this runs if needed)."""
        self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> None:
        """Find the scheme and the auth challenge with ``GET /v2/``, once."""
        if self._base is not None:
            return
        with self._ready:
            if self._base is None:
                self._probe()

    def _probe(self) -> None:
        op = Operation(f"connecting to registry {self.registry}", self.registry, kind="ping")
        schemes = schemes_for(self.api_host, self.insecure)
        for index, scheme in enumerate(schemes):
            url = httpx.URL(f"{scheme}://{self.api_host}/v2/")
            last = index == len(schemes) - 1
            try:
                # First contact: a refused connection or a non-TLS port is a configuration
                # problem or the wrong scheme, not a blip; only the last scheme gets retries.
                response = self._send("GET", url, op, headers={}, retry=last, first_contact=True)
            except RegistryError as err:
                if err.failure == "tls_verify" and self.insecure and self._verified:
                    log.warning(
                        "Not verifying the TLS certificate of %s (allow-insecure-registries)",
                        self.api_host,
                    )
                    self._use_unverified_tls()
                    response = self._send("GET", url, op, headers={}, first_contact=True)
                elif err.failure != "tls_verify" and not last:
                    log.debug("%s: %s failed (%s); trying the next scheme", self.api_host, url, err)
                    continue
                else:
                    raise
            if response.status_code in (200, 401):
                self._auth.configure(response)
                self._base = url.copy_with(path="/", query=None)
                return
            raise self.error(response, op)

    def _use_unverified_tls(self) -> None:
        self._verified = False
        if self._transport is not None:
            return  # a caller's transport carries its own TLS settings (and must stay open)
        self._http.close()
        self._http = make_http_client(
            verify=ssl_context(verify=False), timeouts=self.timeouts, transport=None
        )

    # -- requests ------------------------------------------------------------------------------

    def url(self, path: str) -> httpx.URL:
        """An absolute URL for a path like ``/v2/<name>/blobs/<digest>``."""
        return self.base_url.join(path)

    def request(
        self,
        method: str,
        target: str | httpx.URL,
        op: Operation,
        *,
        scopes: Sequence[Scope] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send with authorization for ``scopes``; re-authenticate once on 401.

        ``retry`` is for idempotent requests: connection errors and 408/429/5xx are retried
        within the retry policy; exhausting it raises. Any other status is returned as is, for
        the caller to judge (``error()`` turns one into a RegistryError).
        """
        url = self.url(target) if isinstance(target, str) else target
        wanted = tuple(scopes)
        for round_ in (1, 2):
            sent = dict(headers or {})
            authorization = self._auth.authorization(url, wanted, op)
            if authorization:
                sent["Authorization"] = authorization
            response = self._send(
                method,
                url,
                op,
                headers=sent,
                body=body,
                stream=stream,
                follow_redirects=follow_redirects,
                retry=retry,
            )
            if response.status_code != 401 or round_ == 2:
                return response
            renewed = self._auth.unauthorized(response, wanted)
            if renewed is None:
                return response
            response.close()
            wanted = renewed
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        url: httpx.URL,
        op: Operation,
        *,
        headers: Mapping[str, str],
        body: Body = None,
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
        first_contact: bool = False,
    ) -> httpx.Response:
        """One request without registry auth, retried per the policy when ``retry``."""
        attempts = (self.retry if retry else NO_RETRY).start(
            f"{method} {url.copy_with(query=None)}"
        )
        while True:
            content = body() if callable(body) else body
            request = self._http.build_request(method, url, headers=headers, content=content)
            try:
                response = self._http.send(
                    request, stream=stream, follow_redirects=follow_redirects
                )
            except httpx.TransportError as exc:
                kind = failure_kind(exc)
                retryable = kind in RETRYABLE_FAILURES and not (first_contact and kind == "refused")
                if retryable and attempts.retry(f"{kind} ({exc})"):
                    continue
                raise self.transport_failure(exc, op, url, attempts) from None
            if response.status_code in RETRY_STATUSES and retry:
                wait = parse_retry_after(response.headers.get("retry-after"))
                if attempts.retry(f"HTTP {response.status_code}", wait):
                    response.close()
                    continue
                raise self.error(response, op, attempts)
            return response

    def error(
        self, response: httpx.Response, op: Operation, attempts: Attempts | None = None
    ) -> RegistryError:
        """The RegistryError for an unexpected ``response`` (which this closes)."""
        try:
            return response_error(
                response,
                op,
                credential=self._auth.known_credential,
                secrets=self._auth.secrets,
                attempts=attempts,
            )
        finally:
            response.close()

    def transport_failure(
        self, exc: BaseException, op: Operation, url: httpx.URL, attempts: Attempts | None = None
    ) -> RegistryError:
        """The RegistryError for a request to ``url`` that got no answer."""
        return transport_error(
            exc,
            op,
            url,
            credential=self._auth.known_credential,
            secrets=self._auth.secrets,
            insecure=self.insecure,
            timeouts=self.timeouts,
            attempts=attempts,
        )

    # -- pull (pull.py) ------------------------------------------------------------------------

    def get_manifest(self, ref: Reference) -> tuple[bytes, str, Digest]:
        """The manifest or index ``ref`` names: exact bytes, media type, and verified digest."""
        return pull.get_manifest(self, ref)

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        """What ``ref`` points at per a HEAD, or None if absent (or hidden: 401/403/404)."""
        return pull.head_manifest(self, ref)

    def pull_image(self, ref: Reference, platform: Platform | None = None) -> Image:
        """The image ``ref`` names (for ``platform`` if it is an index); layers are lazy."""
        return pull.pull_image(self, ref, platform)

    def blob_exists(self, repository: str, digest: Digest, scopes: Sequence[Scope] = ()) -> bool:
        return pull.blob_exists(self, repository, digest, scopes)

    def open_blob(self, repository: str, descriptor: Descriptor) -> BinaryIO:
        """A stream of the blob, resumed after dropped connections, verified at its end."""
        return pull.open_blob(self, repository, descriptor)

    def download_blob(self, repository: str, descriptor: Descriptor, dest: Path) -> None:
        """The blob written to ``dest``, whole and verified, or not at all."""
        pull.download_blob(self, repository, descriptor, dest)

    # -- push (push.py) ------------------------------------------------------------------------

    def push_blob(
        self,
        repository: str,
        layer: Layer,
        *,
        mount_from: str | None = None,
        upload_mode: UploadMode | None = None,
    ) -> push.BlobResult:
        """Make ``layer``'s blob present in ``repository``: "exists", "mounted" or "uploaded"."""
        return push.push_blob(
            self, repository, layer, mount_from=mount_from, upload_mode=upload_mode
        )

    def put_manifest(
        self, ref: Reference, raw: bytes, media_type: str = mediatypes.OCI_MANIFEST
    ) -> Digest:
        """PUT ``raw`` at ``ref``'s tag (else its digest), unless it is already there."""
        return push.put_manifest(self, ref, raw, media_type)

    def push_image(
        self, ref: Reference, image: Image, *, tags: Sequence[str] = (), jobs: int = 4
    ) -> Digest:
        """Blobs, then config, then the manifest at ``ref`` and each extra tag."""
        return push.push_image(self, ref, image, tags=tags, jobs=jobs)

    def push_index(
        self,
        ref: Reference,
        images: Sequence[Image],
        *,
        media_type: str = mediatypes.OCI_INDEX,
        tags: Sequence[str] = (),
        jobs: int = 4,
    ) -> Digest:
        """Each image by digest, then an index of them (with platforms) at ``ref`` and tags."""
        return push.push_index(self, ref, images, media_type=media_type, tags=tags, jobs=jobs)


class Registries:
    """The clients of one build, one per (registry, keychain), so operations share tokens."""

    def __init__(
        self,
        keychain: Keychain | None = None,
        *,
        insecure: bool = False,
        ca_bundle: Path | None = None,
        timeout: Timeouts = Timeouts(),  # noqa: B008
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._keychain = keychain
        self._insecure = insecure
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._retry = retry
        self._transport = transport
        self._clients: dict[tuple[str, int], RegistryClient] = {}
        self._lock = threading.Lock()

    def get(self, registry: str, keychain: Keychain | None = None) -> RegistryClient:
        """The client for ``registry``; ``keychain`` overrides the pool's (e.g. the FROM side's)."""
        chain = keychain if keychain is not None else self._keychain
        if chain is None:
            raise ValueError("Registries.get needs a keychain (none was given to the pool)")
        key = (registry, id(chain))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = RegistryClient(
                    registry,
                    keychain=chain,
                    insecure=self._insecure,
                    ca_bundle=self._ca_bundle,
                    timeout=self._timeout,
                    retry=self._retry,
                    transport=self._transport,
                )
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> Registries:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
