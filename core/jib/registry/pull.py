"""Pulling: manifests with the full Accept list, platform selection, and verified blob streams.

A pulled image is lazy: its layers are ``RegistryLayer``s that fetch nothing until opened, so a
base image whose layers already exist in the target registry is never downloaded (they are
mounted instead; each layer remembers where it came from). Blob streams follow redirects (to a
CDN, without the registry's Authorization), resume with ``Range`` after a dropped connection, and
are verified against digest and size as they end (oci.md 1.2).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx

from jib.atomic import atomic_file
from jib.errors import DigestMismatchError, ImageFormatError
from jib.image import manifest as manifests
from jib.image.config import ImageConfig
from jib.image.descriptor import Descriptor, Platform, select_platform
from jib.image.digest import CHUNK, Digest, VerifyingReader
from jib.image.image import Image
from jib.image.mediatypes import MANIFEST_ACCEPT
from jib.image.reference import Reference
from jib.registry.challenge import Scope
from jib.registry.errors import Operation, RegistryError, short
from jib.registry.transport import RETRYABLE_FAILURES, failure_kind

if TYPE_CHECKING:
    from jib.registry.client import RegistryClient

log = logging.getLogger("jib.registry")

ACCEPT = ", ".join(MANIFEST_ACCEPT)
MAX_MANIFEST = 64 << 20  # ggcr reads up to 100 MiB; registries store at most 4 MiB
MAX_CONFIG = 64 << 20
_MAX_INDEX_DEPTH = 4  # an index may point at an index; a loop must still end


def manifest_path(ref: Reference, identifier: str | None = None) -> str:
    return f"/v2/{ref.repository}/manifests/{identifier or ref.identifier}"


def blob_path(repository: str, digest: Digest) -> str:
    return f"/v2/{repository}/blobs/{digest}"


def get_manifest(client: RegistryClient, ref: Reference) -> tuple[bytes, str, Digest]:
    op = Operation(f"pulling manifest {ref}", client.registry, ref.repository, "pull")
    response = client.request(
        "GET",
        manifest_path(ref),
        op,
        scopes=(Scope.pull(ref.repository),),
        headers={"Accept": ACCEPT},
    )
    if response.status_code != 200:
        raise client.error(response, op)
    raw = response.content
    if len(raw) > MAX_MANIFEST:
        raise RegistryError(f"{op.description} failed: the manifest is {len(raw)} bytes, too big")
    header_type = response.headers.get("content-type", "").split(";")[0].strip()
    declared = _declared_media_type(raw)
    generic = ("", "application/json", "text/plain", "application/octet-stream")
    if declared and header_type not in generic and declared != header_type:
        raise ImageFormatError(
            f"manifest of {ref} says its mediaType is {declared} but the registry sent it as "
            f"{header_type}; the registry or the image is broken"
        )
    media_type = declared or header_type
    if media_type in generic:
        # Neither says: the document's shape does (an early OCI manifest, a bare server). For
        # schema1 or garbage, pull_image's own parse reports the reason.
        with contextlib.suppress(ImageFormatError):
            media_type = manifests.parse(raw, None, f"manifest of {ref}").media_type
    computed = Digest.of_bytes(raw)
    if ref.digest is not None:
        ref.digest.verify(raw, f"manifest of {ref}")
    elif header := response.headers.get("docker-content-digest"):
        try:
            claimed = Digest.parse(header.strip())
        except ImageFormatError:
            log.debug("Ignoring malformed Docker-Content-Digest %r for %s", header, ref)
        else:
            claimed.verify(raw, f"manifest of {ref} (per the registry's Docker-Content-Digest)")
    return raw, media_type, ref.digest or computed


def _declared_media_type(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("mediaType") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def head_manifest(
    client: RegistryClient, ref: Reference, scopes: Sequence[Scope] = ()
) -> Descriptor | None:
    op = Operation(f"checking manifest {ref}", client.registry, ref.repository, "pull")
    response = client.request(
        "HEAD",
        manifest_path(ref),
        op,
        scopes=scopes or (Scope.pull(ref.repository),),
        headers={"Accept": ACCEPT},
    )
    if response.status_code in (401, 403, 404):
        # Artifactory answers 403 for a missing manifest (ggcr pusher.go): absent, not fatal.
        response.close()
        return None
    if response.status_code != 200:
        raise client.error(response, op)
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    try:
        digest = Digest.parse(response.headers.get("docker-content-digest", "").strip())
        size = int(response.headers.get("content-length", ""))
    except (ImageFormatError, ValueError):
        # Docker-Content-Digest is only a SHOULD in spec v1.1; ask with a GET instead.
        raw, media_type, digest = get_manifest(client, ref)
        size = len(raw)
    return Descriptor(media_type or "application/octet-stream", digest, size)


def pull_image(client: RegistryClient, ref: Reference, platform: Platform | None = None) -> Image:
    if ref.registry != client.registry:
        raise ValueError(f"{ref} is not on {client.registry}")
    raw, media_type, _ = get_manifest(client, ref)
    parsed = manifests.parse(raw, media_type, f"manifest of {ref}")
    wanted = platform or Platform.host()
    for _ in range(_MAX_INDEX_DEPTH):
        if isinstance(parsed, manifests.Manifest):
            break
        chosen = select_platform(parsed.manifests, wanted, image=str(ref))
        log.debug("%s: picked %s for %s", ref, short(chosen.digest), wanted)
        raw, media_type, _ = get_manifest(
            client, Reference(ref.registry, ref.repository, None, chosen.digest)
        )
        parsed = manifests.parse(raw, media_type, f"manifest of {ref} for {wanted}")
    if not isinstance(parsed, manifests.Manifest):
        raise ImageFormatError(f"{ref} nests image indexes more than {_MAX_INDEX_DEPTH} deep")
    manifest = parsed
    raw_config = fetch_blob(client, ref.repository, manifest.config, "config")
    diff_ids = ImageConfig.parse(raw_config, f"config of {ref}").diff_ids
    layers = [
        RegistryLayer(
            descriptor,
            diff_ids[i] if i < len(diff_ids) else descriptor.digest,  # Image.check reports it
            ref.repository,
            client,
        )
        for i, descriptor in enumerate(manifest.layers)
    ]
    image = Image.from_raw(raw, raw_config, layers, content_type=media_type, name=str(ref))
    if platform is not None and not image.platform.satisfies(platform):
        log.warning("%s is for %s, not %s; using it anyway", ref, image.platform, platform)
    return image


@dataclass(frozen=True)
class RegistryLayer:
    """A layer blob in a registry repository, fetched only when opened."""

    descriptor: Descriptor
    diff_id: Digest
    repository: str
    client: RegistryClient = field(repr=False, compare=False)

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def source(self) -> tuple[str, str]:
        """``(registry, repository)`` it lives in: a push to the same registry can mount it."""
        return (self.client.registry, self.repository)

    def open(self) -> BinaryIO:
        return self.client.open_blob(self.repository, self.descriptor)


def blob_exists(
    client: RegistryClient, repository: str, digest: Digest, scopes: Sequence[Scope] = ()
) -> bool:
    op = Operation(
        f"checking blob {short(digest)} in {client.registry}/{repository}",
        client.registry,
        repository,
        "pull",
        kind="blob",
    )
    response = client.request(
        "HEAD",
        blob_path(repository, digest),
        op,
        scopes=scopes or (Scope.pull(repository),),
        follow_redirects=True,
    )
    if response.status_code == 200:
        response.close()
        return True
    if response.status_code == 404:
        response.close()
        return False
    raise client.error(response, op)


def open_blob(client: RegistryClient, repository: str, descriptor: Descriptor) -> BinaryIO:
    what = f"blob {short(descriptor.digest)} from {client.registry}/{repository}"
    stream = _BlobStream(client, repository, descriptor, what)
    return VerifyingReader(stream, descriptor.digest, descriptor.size, what)  # type: ignore[arg-type,return-value]


def fetch_blob(client: RegistryClient, repository: str, descriptor: Descriptor, what: str) -> bytes:
    """A small blob (a config) in memory, verified."""
    if descriptor.size > MAX_CONFIG:
        raise ImageFormatError(f"the {what} blob {short(descriptor.digest)} is implausibly large")
    with open_blob(client, repository, descriptor) as stream:
        return stream.read()


def download_blob(
    client: RegistryClient, repository: str, descriptor: Descriptor, dest: Path
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # atomic_file removes its temp file when verification raises: a bad blob leaves nothing.
    with open_blob(client, repository, descriptor) as source, atomic_file(dest) as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)


class _BlobStream(io.RawIOBase):
    """The bytes of one blob, re-requested with ``Range: bytes=N-`` when the connection drops.

    A 206 continues where the stream broke. A 200 means the server ignored the range: the prefix
    already delivered is read again and dropped, so the bytes handed on stay one continuous
    stream (and the VerifyingReader above still checks the whole). Resumes stop after the retry
    policy's attempts without progress.
    """

    def __init__(
        self, client: RegistryClient, repository: str, descriptor: Descriptor, what: str
    ) -> None:
        super().__init__()
        self._client = client
        self._repository = repository
        self._descriptor = descriptor
        self._op = Operation(f"pulling {what}", client.registry, repository, "pull", kind="blob")
        self._offset = 0  # bytes handed on so far
        self._skip = 0  # bytes of a restarted (200) response still to drop
        self._pending = b""
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._attempts = client.retry.start(self._op.description)
        self._connect()  # now, so a missing blob or a refusal surfaces at open()

    def readable(self) -> bool:
        return True

    def _connect(self) -> None:
        size = self._descriptor.size
        # identity: the bytes as stored (a gzip layer must not be "decoded"), and a Range that
        # counts those bytes.
        headers = {"Accept-Encoding": "identity"}
        if self._offset:
            headers["Range"] = f"bytes={self._offset}-"
        response = self._client.request(
            "GET",
            blob_path(self._repository, self._descriptor.digest),
            self._op,
            scopes=(Scope.pull(self._repository),),
            headers=headers,
            stream=True,
            follow_redirects=True,
        )
        if response.status_code == 206 and self._offset:
            start = response.headers.get("content-range", "").removeprefix("bytes ").split("-")[0]
            if start.strip() != str(self._offset):
                response.close()
                raise RegistryError(
                    f"{self._op.description} failed: asked to resume at byte {self._offset}, "
                    f"the registry answered with range {start!r}; try again"
                )
            self._skip = 0
        elif response.status_code == 200:
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) != size:
                response.close()
                raise DigestMismatchError(
                    f"{self._op.description}: the registry sends {length} bytes where the "
                    f"manifest says {size}; the image is corrupt"
                )
            self._skip = self._offset
        else:
            raise self._client.error(response, self._op)
        self._response = response
        # iter_raw: the blob's bytes as stored, never content-decoded. A response built in
        # memory (a test transport, a cache) arrives already read; its content is the body.
        consumed = response.is_stream_consumed
        # No chunk size: bytes are handed on as they arrive, so a drop loses nothing buffered.
        self._chunks = iter([response.content]) if consumed else response.iter_raw()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self._pending:
                count = min(len(buffer), len(self._pending))
                buffer[:count] = self._pending[:count]
                self._pending = self._pending[count:]
                self._offset += count
                return count
            try:
                chunk = next(self._chunks)
            except StopIteration:
                # A clean end is the whole response: h11 raises if fewer bytes than the
                # Content-Length arrive (or a chunked body lacks its end), so this is no drop.
                # The VerifyingReader above judges a blob that is short or long.
                return 0
            except httpx.TransportError as exc:
                if failure_kind(exc) not in RETRYABLE_FAILURES:
                    url = self._client.url(blob_path(self._repository, self._descriptor.digest))
                    raise self._client.transport_failure(exc, self._op, url) from None
                reason = f"the connection broke after {self._offset} bytes ({exc})"
            else:
                if self._attempts.failures:
                    self._attempts = self._client.retry.start(self._op.description)
                if self._skip:
                    dropped = min(self._skip, len(chunk))
                    self._skip -= dropped
                    chunk = chunk[dropped:]
                self._pending = chunk
                continue
            self._close_response()
            if not self._attempts.retry(reason):
                raise RegistryError(
                    f"{self._op.description} failed: {reason}; check the network and try again"
                    + (f" ({self._attempts.gave_up})" if self._attempts.gave_up else "")
                )
            self._connect()

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def close(self) -> None:
        self._close_response()
        super().close()
