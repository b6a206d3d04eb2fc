"""Pushing: blobs (HEAD, cross-repository mount, upload), manifests, images and indexes.

The upload strategy follows oci.md 4.1: HEAD first; mount with ``from`` when the blob lives in
another repository of the same registry (a 202 continues as an upload on the Location it returns;
any mount error falls back to a plain upload); then POST and a single PUT carrying the whole blob,
the most portable form. The streamed single PATCH (docker/crane/skopeo) and the chunked form
(``OCI-Chunk-Min-Length`` honoured) are there for registries that need them.

An upload is retried as a whole, from the HEAD, never request by request: an upload session may
not survive a failure (ACR, 2.8 with a stale ``_state``), and a commit must never be replayed on
a dead session. The bytes themselves are moved by ``upload.py``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import quote

import httpx

from jib.errors import JibError
from jib.image import mediatypes
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.layer import Layer
from jib.image.manifest import Index
from jib.image.reference import Reference
from jib.registry import pull, upload
from jib.registry.challenge import Scope, merge_scopes
from jib.registry.errors import Operation, RegistryError, short
from jib.registry.transport import resolve_location

if TYPE_CHECKING:
    from jib.registry.client import RegistryClient, UploadMode

log = logging.getLogger("jib.registry")

BlobResult = Literal["exists", "mounted", "uploaded"]


@dataclass(frozen=True)
class BytesBlob:
    """A blob held in memory (an image config), pushable like a layer."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.data)

    @property
    def diff_id(self) -> Digest:
        return self.digest

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


def mount_source(layer: object, registry: str) -> str | None:
    """The repository of ``registry`` that ``layer`` was pulled from, if any (looking through
    wrappers such as RetypedLayer, which keep the same bytes)."""
    current: object | None = layer
    for _ in range(8):
        source = getattr(current, "source", None)
        if isinstance(source, tuple) and len(source) == 2:
            return source[1] if source[0] == registry else None
        current = getattr(current, "layer", None)
        if current is None:
            return None
    return None


def push_scopes(repository: str, mount_sources: Sequence[str] = ()) -> tuple[Scope, ...]:
    """Push on the target first (some registries read only the first scope), pull on sources."""
    return merge_scopes(
        [Scope.push(repository), *(Scope.pull(s) for s in mount_sources if s != repository)]
    )


def push_blob(
    client: RegistryClient,
    repository: str,
    layer: Layer | BytesBlob,
    *,
    mount_from: str | None = None,
    upload_mode: UploadMode | None = None,
    scopes: Sequence[Scope] | None = None,
    what: str = "layer",
) -> BlobResult:
    mode = upload_mode or client.upload_mode
    if mount_from is None:
        mount_from = mount_source(layer, client.registry)
    if mount_from == repository:
        mount_from = None  # the HEAD already tells whether it is there
    wanted = (
        tuple(scopes) if scopes else push_scopes(repository, [mount_from] if mount_from else [])
    )
    op = Operation(
        f"pushing {what} {short(layer.digest)} to {client.registry}/{repository}",
        client.registry,
        repository,
        "push",
        kind="upload",
    )
    attempts = client.retry.start(op.description)
    try_mount = mount_from is not None
    while True:
        try:
            if _exists(client, repository, layer.digest, wanted, op):
                log.debug(
                    "%s %s: already in %s", what.capitalize(), short(layer.digest), repository
                )
                return "exists"
            location: httpx.URL | None = None
            min_chunk = 0
            if try_mount and mount_from is not None:
                try_mount = False  # a mount that failed once is not retried: upload instead
                mounted, location = _mount(client, repository, layer.digest, mount_from, wanted)
                if mounted:
                    log.info(
                        "%s %s: mounted from %s", what.capitalize(), short(layer.digest), mount_from
                    )
                    return "mounted"
            if location is None:
                location, min_chunk = upload.start_upload(client, repository, wanted, op)
            upload.upload(client, mode, location, layer, wanted, op, min_chunk)
            log.info(
                "%s %s: uploaded (%d bytes)", what.capitalize(), short(layer.digest), layer.size
            )
            return "uploaded"
        except RegistryError as err:
            reason = f"HTTP {err.status}" if err.status else (err.failure or "failed")
            if not err.retryable or not attempts.retry(reason, err.retry_after):
                raise err.with_note(attempts.gave_up) from None


def _exists(
    client: RegistryClient, repository: str, digest: Digest, scopes: Sequence[Scope], op: Operation
) -> bool:
    response = client.request(
        "HEAD",
        pull.blob_path(repository, digest),
        op,
        scopes=scopes,
        follow_redirects=True,
        retry=False,
    )
    if response.status_code in (200, 404):
        response.close()
        return response.status_code == 200
    raise client.error(response, op)


def _mount(
    client: RegistryClient, repository: str, digest: Digest, source: str, scopes: Sequence[Scope]
) -> tuple[bool, httpx.URL | None]:
    """(True, None) if mounted; else (False, the Location of an upload session a 202 started)."""
    query = f"mount={quote(str(digest), safe=':')}&from={quote(source, safe='/')}"
    op = Operation(
        f"mounting blob {short(digest)} from {source} into {client.registry}/{repository}",
        client.registry,
        repository,
        "push",
        kind="mount",
    )
    try:
        response = client.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?{query}",
            op,
            scopes=scopes,
            body=b"",
            retry=False,
        )
    except RegistryError as err:
        log.debug("%s; uploading instead", err)
        return False, None
    if response.status_code == 201:
        response.close()
        return True, None
    if response.status_code == 202:
        response.close()
        log.debug("%s: the registry did not mount; uploading", op.description)
        return False, resolve_location(response.url, response.headers.get("location"))
    # Docker Hub and Harbor answer 401/403/404 for a source they will not mount from (ggcr #1404,
    # #1679): not an error for the push, which simply uploads.
    log.debug("%s; uploading instead", client.error(response, op))
    return False, None


def put_manifest(
    client: RegistryClient,
    ref: Reference,
    raw: bytes,
    media_type: str,
    scopes: Sequence[Scope] | None = None,
) -> Digest:
    digest = Digest.of_bytes(raw)
    if ref.tag is None and ref.digest is not None and ref.digest != digest:
        raise JibError(f"cannot push to {ref}: the manifest's digest is {digest}")
    target = Reference(ref.registry, ref.repository, ref.tag, None if ref.tag else digest)
    wanted = tuple(scopes) if scopes else (Scope.push(ref.repository),)
    existing = pull.head_manifest(client, target, wanted)
    if existing is not None and existing.digest == digest:
        log.info("%s is already %s; not pushing it again", target, short(digest))
        return digest
    op = Operation(f"pushing manifest {target}", client.registry, ref.repository, "push", "put")
    response = client.request(
        "PUT",
        pull.manifest_path(target),
        op,
        scopes=wanted,
        headers={"Content-Type": media_type},
        body=raw,
    )
    if response.status_code not in (200, 201, 202):
        raise client.error(response, op)
    response.close()
    stored = response.headers.get("docker-content-digest")
    if stored and stored.strip() != str(digest):
        raise RegistryError(f"{op.description} failed: the registry stored it as {stored.strip()}")
    log.info("Pushed %s (%s)", target, short(digest))
    return digest


def push_image(
    client: RegistryClient, ref: Reference, image: Image, *, tags: Sequence[str] = (), jobs: int = 4
) -> Digest:
    _same_registry(client, ref)
    blobs: dict[Digest, Layer] = {}
    for layer in image.layers:
        blobs.setdefault(layer.digest, layer)
    sources = sorted({s for layer in blobs.values() if (s := mount_source(layer, client.registry))})
    scopes = push_scopes(ref.repository, sources)
    _push_blobs(client, ref.repository, list(blobs.values()), scopes, jobs)
    config = BytesBlob(image.raw_config, image.manifest.config.media_type)
    # A pulled image's config sits beside its layers: try mounting it too (a miss costs nothing,
    # as the 202 continues as the upload).
    mount_from = next((s for s in sources if s != ref.repository), None)
    push_blob(client, ref.repository, config, mount_from=mount_from, scopes=scopes, what="config")
    _put_tags(client, ref, image.raw_manifest, image.media_type, tags, scopes)
    return image.digest


def push_index(
    client: RegistryClient,
    ref: Reference,
    images: Sequence[Image],
    *,
    media_type: str = mediatypes.OCI_INDEX,
    tags: Sequence[str] = (),
    jobs: int = 4,
) -> Digest:
    _same_registry(client, ref)
    for image in images:
        push_image(
            client, Reference(ref.registry, ref.repository, None, image.digest), image, jobs=jobs
        )
    index = Index(media_type, tuple(image.descriptor(with_platform=True) for image in images))
    raw = index.to_bytes()
    _put_tags(client, ref, raw, media_type, tags, (Scope.push(ref.repository),))
    return Digest.of_bytes(raw)


def _put_tags(
    client: RegistryClient,
    ref: Reference,
    raw: bytes,
    media_type: str,
    tags: Sequence[str],
    scopes: Sequence[Scope],
) -> None:
    put_manifest(client, ref, raw, media_type, scopes)
    for tag in tags:
        if tag != ref.tag:
            put_manifest(client, ref.with_tag(tag), raw, media_type, scopes)


def _push_blobs(
    client: RegistryClient,
    repository: str,
    layers: Sequence[Layer],
    scopes: Sequence[Scope],
    jobs: int,
) -> None:
    if not layers:
        return
    with ThreadPoolExecutor(max(1, min(jobs, len(layers))), "pyjib-push") as pool:
        futures = [
            pool.submit(push_blob, client, repository, layer, scopes=scopes) for layer in layers
        ]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()  # those not started yet; the running ones finish
        for future in futures:
            if not future.cancelled() and (error := future.exception()) is not None:
                raise error


def _same_registry(client: RegistryClient, ref: Reference) -> None:
    if ref.registry != client.registry:
        raise ValueError(f"{ref} is not on {client.registry}")
