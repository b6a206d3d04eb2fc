"""Moving one blob's bytes into a registry upload session: POST, then PUT, PATCH or chunks.

Three forms (oci.md 1.3): ``put`` sends the whole blob in the PUT that commits it (the spec's
portable path); ``patch`` streams it in one PATCH and commits with an empty PUT (docker, crane,
skopeo); ``chunked`` PATCHes ``Content-Range`` pieces of at least ``OCI-Chunk-Min-Length``. No
request here is retried on its own: ``push.push_blob`` restarts the whole upload instead.

Blob bytes are read through a VerifyingReader, so a corrupt local layer fails with its own name
rather than as the registry's ``DIGEST_INVALID``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, Protocol

import httpx

from jib.image.digest import CHUNK, Digest, VerifyingReader
from jib.registry.challenge import Scope
from jib.registry.errors import Operation, RegistryError
from jib.registry.transport import resolve_location, with_digest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jib.registry.client import Body, RegistryClient, UploadMode

log = logging.getLogger("jib.registry")

_OCTET = "application/octet-stream"


class Blob(Protocol):
    """What an upload needs of a layer or config: digest, size and fresh readers."""

    @property
    def digest(self) -> Digest: ...

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO: ...


def start_upload(
    client: RegistryClient, repository: str, scopes: Sequence[Scope], op: Operation
) -> tuple[httpx.URL, int]:
    response = client.request(
        "POST", f"/v2/{repository}/blobs/uploads/", op, scopes=scopes, body=b"", retry=False
    )
    if response.status_code != 202:
        raise client.error(response, op)
    response.close()
    location = resolve_location(response.url, response.headers.get("location"))
    if location is None:
        raise RegistryError(
            f"{op.description} failed: the registry started an upload without a Location"
        )
    minimum = response.headers.get("oci-chunk-min-length", "")
    return location, int(minimum) if minimum.isdigit() else 0


def upload(
    client: RegistryClient,
    mode: UploadMode,
    location: httpx.URL,
    layer: Blob,
    scopes: Sequence[Scope],
    op: Operation,
    min_chunk: int,
) -> None:
    digest, size = layer.digest, layer.size
    if mode == "put":
        headers = {"Content-Type": _OCTET, "Content-Length": str(size)}
        commit = _send(
            client, "PUT", with_digest(location, digest), op, scopes, headers, _stream(layer, op)
        )
        _check_commit(client, commit, digest, op)
        return
    if mode == "patch":
        headers = {"Content-Type": _OCTET, "Content-Length": str(size)}
        patched = _send(client, "PATCH", location, op, scopes, headers, _stream(layer, op))
        location = _next_location(client, patched, location, op)
    elif mode == "chunked":
        location = _upload_chunks(client, location, layer, scopes, op, min_chunk)
    else:
        raise ValueError(f"unknown upload mode {mode!r}: use put, patch or chunked")
    headers = {"Content-Type": _OCTET, "Content-Length": "0"}
    commit = _send(client, "PUT", with_digest(location, digest), op, scopes, headers, b"")
    _check_commit(client, commit, digest, op)


def _upload_chunks(
    client: RegistryClient,
    location: httpx.URL,
    layer: Blob,
    scopes: Sequence[Scope],
    op: Operation,
    min_chunk: int,
) -> httpx.URL:
    """PATCH chunk after chunk with ``Content-Range: start-end`` (no ``bytes`` prefix, per the
    spec; ACR rejects the RFC form), following each new Location."""
    chunk_size = max(client.chunk_size, min_chunk, 1)
    start = 0
    with _verified(layer, op) as stream:
        while data := _read_exactly(stream, chunk_size):
            end = start + len(data) - 1
            headers = {
                "Content-Type": _OCTET,
                "Content-Range": f"{start}-{end}",
                "Content-Length": str(len(data)),
            }
            patched = _send(client, "PATCH", location, op, scopes, headers, data)
            got = patched.headers.get("range", "")
            # 2.8 ignores Content-Range and just appends (oci.md 1.3c): check where it is.
            if got and got.rpartition("-")[2].strip() != str(end):
                patched.close()
                raise RegistryError(
                    f"{op.description} failed: the registry holds bytes {got} after a chunk "
                    f"ending at {end}",
                    retryable=True,
                )
            location = _next_location(client, patched, location, op)
            start = end + 1
    return location


def _send(
    client: RegistryClient,
    method: str,
    url: httpx.URL,
    op: Operation,
    scopes: Sequence[Scope],
    headers: dict[str, str],
    body: Body,
) -> httpx.Response:
    # retry=False: the whole upload is retried instead (see the module docstring).
    return client.request(method, url, op, scopes=scopes, headers=headers, body=body, retry=False)


def _next_location(
    client: RegistryClient, response: httpx.Response, current: httpx.URL, op: Operation
) -> httpx.URL:
    # ECR answers a PATCH with 201 rather than 202 (oci.md 4.1).
    if response.status_code not in (201, 202, 204):
        raise client.error(response, op)
    response.close()
    return resolve_location(response.url, response.headers.get("location")) or current


def _check_commit(
    client: RegistryClient, response: httpx.Response, digest: Digest, op: Operation
) -> None:
    if response.status_code not in (200, 201, 204):
        raise client.error(response, op)
    response.close()
    stored = response.headers.get("docker-content-digest")
    if stored and stored.strip() != str(digest):
        raise RegistryError(f"{op.description} failed: the registry stored it as {stored.strip()}")


def _verified(layer: Blob, op: Operation) -> VerifyingReader:
    # A corrupt local layer must fail here, with its name, not as a registry DIGEST_INVALID.
    return VerifyingReader(layer.open(), layer.digest, layer.size, f"the blob for {op.description}")


def _stream(layer: Blob, op: Operation) -> Body:
    """A body factory: each call re-opens the layer (a re-authenticated request resends it)."""

    def chunks() -> Iterator[bytes]:
        with _verified(layer, op) as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    return chunks


def _read_exactly(stream: VerifyingReader, count: int) -> bytes:
    parts: list[bytes] = []
    remaining = count
    while remaining > 0:
        chunk = stream.read(min(remaining, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
