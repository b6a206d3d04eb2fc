"""Pushing to real docker-registry 2.8 processes: the three upload forms, HEAD-skip, cross-repo
mounts and their fallback, manifest skip, the real Debian+Python base image run by Podman after a
push. ``httpx.MockTransport`` covers Location forms, ``OCI-Chunk-Min-Length`` and upload restarts.
"""

from __future__ import annotations

import gzip
import io
import random
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from test_registry_pull import FAST, StaticKeychain, client_for, gzip_layer, read_all, small_image
from testbed.podman import Podman
from testbed.registry import Registry

from jib.errors import DigestMismatchError
from jib.image import mediatypes
from jib.image.descriptor import Descriptor
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.layer import BlobLayer
from jib.image.reference import Reference
from jib.local import read_local
from jib.registry.client import Registries, RegistryClient
from jib.registry.errors import RegistryError
from jib.registry.push import BytesBlob


def random_layer(size: int, seed: int) -> BlobLayer:
    """A gzip blob of about ``size`` incompressible bytes (so chunking has something to split)."""
    data = random.Random(seed).randbytes(size)
    blob = gzip.compress(data, mtime=0)
    return BlobLayer(
        Digest.of_bytes(blob),
        Digest.of_bytes(data),
        len(blob),
        mediatypes.OCI_LAYER_GZIP,
        lambda: io.BytesIO(blob),
    )


def _calls(reg: Registry, since: int) -> list[tuple[str, str, int]]:
    """(method, what, status) with the route reduced to its kind: uploads, blobs, manifests."""
    out = []
    for r in reg.requests(since):
        kind = "uploads" if "/blobs/uploads/" in r.route else r.route.rsplit("/", 2)[-2]
        out.append((r.method, kind, r.status))
    return out


# -- uploads against the real registry ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("put", [("POST", "uploads", 202), ("PUT", "uploads", 201)]),
        ("patch", [("POST", "uploads", 202), ("PATCH", "uploads", 202), ("PUT", "uploads", 201)]),
        (
            "chunked",
            [("POST", "uploads", 202)]
            + [("PATCH", "uploads", 202)] * 3
            + [("PUT", "uploads", 201)],
        ),
    ],
)
def test_upload_modes(registry: Registry, mode: str, expected: list[tuple[str, str, int]]) -> None:
    layer = random_layer(2500, seed=len(mode))
    repo = f"push/mode-{mode}"
    with client_for(registry, chunk_size=1000) as client:
        client.ping()
        since = registry.mark()
        assert client.push_blob(repo, layer, upload_mode=mode) == "uploaded"  # type: ignore[arg-type]
        assert _calls(registry, since) == [("HEAD", "blobs", 404), *expected]
        with client.open_blob(repo, _descriptor(layer)) as stream:
            assert stream.read() == read_all(layer.open())


def _descriptor(layer: BlobLayer) -> Descriptor:
    return Descriptor(layer.media_type, layer.digest, layer.size)


def test_existing_blob_is_skipped_and_another_repo_mounts_it(registry: Registry) -> None:
    layer = random_layer(300, seed=7)
    with client_for(registry) as client:
        assert client.push_blob("push/a", layer) == "uploaded"
        since = registry.mark()
        assert client.push_blob("push/a", layer) == "exists"
        assert _calls(registry, since) == [("HEAD", "blobs", 200)]

        since = registry.mark()
        assert client.push_blob("push/b", layer, mount_from="push/a") == "mounted"
        logged = registry.requests(since)
    assert [(r.method, r.status) for r in logged] == [("HEAD", 404), ("POST", 201)]
    assert logged[1].params == {"mount": [str(layer.digest)], "from": ["push/a"]}


def test_mount_miss_continues_on_the_session_it_started(registry: Registry) -> None:
    layer = random_layer(300, seed=8)
    with client_for(registry) as client:
        client.ping()
        since = registry.mark()
        assert client.push_blob("push/c", layer, mount_from="push/nowhere") == "uploaded"
    logged = registry.requests(since)
    # 2.8 answers a mount of an unknown blob with 202 and an upload session: used, not wasted.
    assert [(r.method, r.status) for r in logged] == [("HEAD", 404), ("POST", 202), ("PUT", 201)]
    assert "mount" in logged[1].params


def test_manifest_push_is_skipped_when_the_tag_already_points_at_it(registry: Registry) -> None:
    image = small_image(text=b"twice")
    ref = Reference.parse(f"{registry.host}/push/twice:1")
    with client_for(registry) as client:
        client.push_image(ref, image, tags=["latest"])
        since = registry.mark()
        assert client.push_image(ref, image, tags=["latest"]) == image.digest
        calls = _calls(registry, since)
        assert [c for c in calls if c[0] not in ("HEAD",)] == []
        # By digest too: the exact bytes, at /manifests/<digest>.
        other = small_image(text=b"by digest")
        for layer in other.layers:
            client.push_blob("push/twice", layer)
        client.push_blob("push/twice", _config_blob(other))
        by_digest = Reference.parse(f"{registry.host}/push/twice@{other.digest}")
        assert client.put_manifest(by_digest, other.raw_manifest, other.media_type) == other.digest
        assert client.get_manifest(by_digest)[0] == other.raw_manifest
    assert ("PUT", f"/v2/push/twice/manifests/{other.digest}", 201) in registry.requests(since)


def _config_blob(image: Image) -> BytesBlob:
    return BytesBlob(image.raw_config, image.manifest.config.media_type)


def test_corrupt_local_layer_fails_and_leaves_no_blob(registry: Registry) -> None:
    good = random_layer(500, seed=9)
    bad = BlobLayer(
        good.digest, good.diff_id, good.size, good.media_type, lambda: io.BytesIO(b"x" * good.size)
    )
    with client_for(registry) as client:
        with pytest.raises(DigestMismatchError) as caught:
            client.push_blob("push/corrupt", bad)
        assert "push/corrupt" in str(caught.value)
        assert not client.blob_exists("push/corrupt", good.digest)


def test_registries_share_one_client_per_host(registry: Registry) -> None:
    keychain = StaticKeychain()
    with Registries(keychain) as pool:
        first = pool.get(registry.host)
        assert pool.get(registry.host) is first
        assert pool.get(registry.host, StaticKeychain()) is not first
        first.ping()


# -- the real base image ----------------------------------------------------------------------


@pytest.mark.e2e
def test_base_image_from_tar_pushes_and_runs_in_podman(
    registry: Registry, base_image_tar: Path, podman: Podman
) -> None:
    image = read_local(f"tar://{base_image_tar}")
    ref = Reference.parse(f"{registry.host}/push/base-from-tar:1")
    with client_for(registry) as client:
        assert client.push_image(ref, image) == image.digest
    podman.pull(str(ref), tls_verify=False)
    result = podman.run(str(ref), "python3", "-c", "print(1)")
    assert result.stdout.strip() == "1"


@pytest.mark.e2e
def test_pulled_base_image_pushed_to_another_repo_is_all_mounts(
    registry: Registry, base_image_ref: str, podman: Podman
) -> None:
    target = Reference.parse(f"{registry.host}/push/base-mounted:1")
    with client_for(registry) as client:
        base = client.pull_image(Reference.parse(base_image_ref))
        since = registry.mark()
        assert client.push_image(target, base) == base.digest
    uploads = [
        r for r in registry.requests(since) if r.method in ("PATCH", "PUT") and "uploads" in r.route
    ]
    assert uploads == []
    podman.pull(str(target), tls_verify=False)
    assert podman.run(str(target), "python3", "-c", "print(1)").stdout.strip() == "1"


# -- Location handling, chunk sizes and restarts (mocked) ------------------------------------


class FakeUploads:
    """Just enough of a registry's upload API, with hooks for odd Locations and failures."""

    def __init__(self, location: Callable[[int], str], min_chunk: int | None = None) -> None:
        self.location = location
        self.min_chunk = min_chunk
        self.seen: list[httpx.Request] = []
        self.sessions: dict[str, bytearray] = {}
        self.started = 0
        self.blobs: dict[str, bytes] = {}
        self.fail_puts: list[
            int | Exception | httpx.Response
        ] = []  # statuses (or errors) for the next commits

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200)
        if request.method == "HEAD":
            return httpx.Response(200 if path.rsplit("/", 1)[-1] in self.blobs else 404)
        if request.method == "POST":
            self.started += 1
            number = self.started
            self.sessions[f"s{number}"] = bytearray()
            headers = {"Location": self.location(number)}
            if self.min_chunk:
                headers["OCI-Chunk-Min-Length"] = str(self.min_chunk)
            return httpx.Response(202, headers=headers)
        session = path.rsplit("/", 1)[-1]
        if session not in self.sessions:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]})
        self.sessions[session] += request.content
        if request.method == "PATCH":
            end = len(self.sessions[session]) - 1
            return httpx.Response(
                202, headers={"Location": self.location(int(session[1:])), "Range": f"0-{end}"}
            )
        if self.fail_puts:
            failure = self.fail_puts.pop(0)
            del self.sessions[session]  # the session dies with the failed commit
            if isinstance(failure, Exception):
                raise failure
            if isinstance(failure, httpx.Response):
                return failure
            return httpx.Response(failure)
        digest = parse_qs(request.url.query.decode())["digest"][0]
        data = bytes(self.sessions.pop(session))
        if digest != str(Digest.of_bytes(data)):
            return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
        self.blobs[digest] = data
        return httpx.Response(201, headers={"Docker-Content-Digest": digest})


def _mock(fake: FakeUploads, **kwargs: object) -> RegistryClient:
    kwargs.setdefault("retry", FAST)
    return RegistryClient(
        "registry.example.com",
        keychain=StaticKeychain(),
        transport=httpx.MockTransport(fake),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "location",
    [
        lambda n: f"/v2/team/app/blobs/uploads/s{n}?_state=a%2Bb%3D%3D",
        lambda n: f"https://registry.example.com/v2/team/app/blobs/uploads/s{n}?_state=a%2Bb%3D%3D",
    ],
    ids=["relative", "absolute"],
)
def test_location_is_resolved_and_its_query_kept(location: Callable[[int], str]) -> None:
    fake = FakeUploads(location)
    layer = gzip_layer({"f": b"location"})
    with _mock(fake) as client:
        assert client.push_blob("team/app", layer) == "uploaded"
    put = fake.seen[-1]
    assert put.method == "PUT"
    assert str(put.url) == (
        "https://registry.example.com/v2/team/app/blobs/uploads/s1"
        f"?_state=a%2Bb%3D%3D&digest=sha256%3A{layer.digest.hex}"
    )
    assert put.headers["content-type"] == "application/octet-stream"
    assert put.headers["content-length"] == str(layer.size)
    assert "transfer-encoding" not in put.headers


def test_chunked_upload_honours_oci_chunk_min_length() -> None:
    fake = FakeUploads(lambda n: f"/v2/team/app/blobs/uploads/s{n}", min_chunk=1024)
    layer = random_layer(2500, seed=3)
    with _mock(fake, upload_mode="chunked", chunk_size=100) as client:
        assert client.push_blob("team/app", layer) == "uploaded"
    patches = [r for r in fake.seen if r.method == "PATCH"]
    assert [r.headers["content-range"] for r in patches][:2] == ["0-1023", "1024-2047"]
    assert all(len(r.content) == 1024 for r in patches[:-1])
    assert fake.blobs[str(layer.digest)] == read_all(layer.open())


@pytest.mark.parametrize(
    "failure",
    [
        500,
        httpx.RemoteProtocolError("connection reset"),
        httpx.Response(404, json={"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]}),
    ],
    ids=["500", "dropped", "session-gone"],
)
def test_failed_upload_restarts_from_a_fresh_post(
    failure: int | Exception | httpx.Response,
) -> None:
    fake = FakeUploads(lambda n: f"/v2/team/app/blobs/uploads/s{n}")
    fake.fail_puts = [failure]
    layer = random_layer(400, seed=4)
    with _mock(fake) as client:
        assert client.push_blob("team/app", layer) == "uploaded"
    steps = [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in fake.seen if r.url.path != "/v2/"]
    digest = str(layer.digest)
    assert steps == [
        ("HEAD", digest), ("POST", ""), ("PUT", "s1"),
        ("HEAD", digest), ("POST", ""), ("PUT", "s2"),
    ]  # fmt: skip


def test_upload_that_cannot_succeed_fails_in_bounded_attempts() -> None:
    fake = FakeUploads(lambda n: f"/v2/team/app/blobs/uploads/s{n}")
    fake.fail_puts = [503] * 10
    with _mock(fake) as client, pytest.raises(RegistryError) as caught:
        client.push_blob("team/app", gzip_layer({"f": b"doomed"}))
    message = str(caught.value)
    assert message.startswith("pushing layer sha256:")
    assert "503" in message and "gave up after 3 attempts" in message
    assert len([r for r in fake.seen if r.method == "POST"]) == 3


def test_a_401_mid_upload_reauthenticates_and_resends_the_whole_body() -> None:
    fake = FakeUploads(lambda n: f"/v2/team/app/blobs/uploads/s{n}")
    layer = random_layer(600, seed=5)
    tokens = iter(["tok-1", "tok-2"])
    realm = "https://auth.example.com/token"
    challenge = f'Bearer realm="{realm}",service="reg"'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            return httpx.Response(200, json={"token": next(tokens)})
        if request.headers.get("authorization") is None and request.url.path != "/v2/":
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if request.url.path == "/v2/":
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if request.method == "PUT" and request.headers["authorization"] == "Bearer tok-1":
            request.read()
            fake.seen.append(request)
            expired = challenge + ',error="invalid_token"'
            return httpx.Response(401, headers={"WWW-Authenticate": expired})
        return fake(request)

    client = RegistryClient(
        "registry.example.com", keychain=StaticKeychain(), transport=httpx.MockTransport(handler)
    )
    with client:
        assert client.push_blob("team/app", layer) == "uploaded"
    puts = [r for r in fake.seen if r.method == "PUT"]
    assert [r.headers["authorization"] for r in puts] == ["Bearer tok-1", "Bearer tok-2"]
    assert all(len(r.content) == layer.size for r in puts)
    assert len([r for r in fake.seen if r.method == "POST"]) == 1  # same session, not restarted
    assert fake.blobs[str(layer.digest)] == read_all(layer.open())
