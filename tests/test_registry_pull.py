"""Pulling from real docker-registry 2.8 processes: round trips, platform selection by index,
lazy layers, verified and resumable blob downloads. ``httpx.MockTransport`` stands in only where a
real registry cannot be made to misbehave (wrong bytes, dropped connections, redirects).

The small-image helpers here are shared by the other ``test_registry_*`` files.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from testbed.images import memory_layer
from testbed.registry import Registry

from jib.errors import DigestMismatchError, ImageFormatError, JibError
from jib.image import mediatypes, mutate
from jib.image.config import ImageConfig
from jib.image.descriptor import Descriptor, Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.reference import Reference
from jib.registry.client import RegistryClient
from jib.registry.credentials import ANONYMOUS, Credential, Keychain
from jib.registry.pull import RegistryLayer
from jib.registry.retry import RetryPolicy

# -- helpers shared with the other test_registry_* files -----------------------------------------


class StaticKeychain:
    """A keychain that always answers ``credential`` (the default keychain has its own tests)."""

    def __init__(self, credential: Credential = ANONYMOUS) -> None:
        self.credential = credential
        self.calls: list[str] = []

    def resolve(self, registry: str) -> Credential:
        self.calls.append(registry)
        return self.credential


def keychain_for(reg: Registry) -> Keychain:
    if reg.credentials is None:
        return StaticKeychain()
    user, password = reg.credentials
    return StaticKeychain(Credential(username=user, password=password, source="the test"))


def client_for(reg: Registry, **kwargs: object) -> RegistryClient:
    kwargs.setdefault("keychain", keychain_for(reg))
    if reg.ca_path is not None:
        kwargs.setdefault("ca_bundle", reg.ca_path)
    return RegistryClient(reg.host, **kwargs)  # type: ignore[arg-type]


FAST = RetryPolicy(attempts=3, base=0.01, cap=0.02, total=5)


gzip_layer = memory_layer


def small_image(arch: str = "amd64", text: bytes = b"hello", *, fmt: str = "oci") -> Image:
    """Two small gzip layers; ``text`` varies the top one so images can differ."""
    base = Image.build(ImageConfig.new(Platform("linux", arch)), [])
    image = mutate.append_layers(
        base,
        [
            (gzip_layer({"etc/base": b"base " + arch.encode()}), {"created_by": "base"}),
            (gzip_layer({"app/hello.txt": text}), {"created_by": "pyjib"}),
        ],
    )
    return mutate.with_format(image, fmt)


def read_all(opened: io.RawIOBase | object) -> bytes:
    with opened as stream:  # type: ignore[attr-defined]
        return stream.read()  # type: ignore[no-any-return]


# -- round trips ---------------------------------------------------------------------------------


def test_push_then_pull_round_trips_bytes_and_digests(registry: Registry, tmp_path: Path) -> None:
    image = small_image(text=b"round trip")
    ref = Reference.parse(f"{registry.host}/pull/roundtrip:1")
    with client_for(registry) as client:
        assert client.push_image(ref, image) == image.digest
        raw, media_type, digest = client.get_manifest(ref)
        assert (raw, media_type, digest) == (
            image.raw_manifest,
            mediatypes.OCI_MANIFEST,
            image.digest,
        )

        since = registry.mark()
        back = client.pull_image(ref)
        assert back.digest == image.digest
        assert back.raw_config == image.raw_config
        # Lazy: the manifest and the config, no layer bytes until a layer is opened.
        assert [(r.method, r.route.rsplit("/", 2)[-2]) for r in registry.requests(since)] == [
            ("GET", "manifests"),
            ("GET", "blobs"),
        ]
        for mine, theirs in zip(image.layers, back.layers, strict=True):
            assert isinstance(theirs, RegistryLayer)
            assert theirs.source == (registry.host, "pull/roundtrip")
            assert read_all(theirs.open()) == read_all(mine.open())

        dest = tmp_path / "blobs" / "top"
        top = back.manifest.layers[1]
        client.download_blob(ref.repository, top, dest)
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == top.digest.hex
        assert list(dest.parent.iterdir()) == [dest]  # no temp file left behind


def test_docker_schema2_image_round_trips(registry: Registry) -> None:
    image = small_image(text=b"docker", fmt="docker")
    ref = Reference.parse(f"{registry.host}/pull/docker:1")
    with client_for(registry) as client:
        client.push_image(ref, image)
        back = client.pull_image(ref)
    assert back.media_type == mediatypes.DOCKER_MANIFEST
    assert back.digest == image.digest


def test_pull_by_digest_verifies_the_manifest(registry: Registry) -> None:
    image = small_image(text=b"by digest")
    with client_for(registry) as client:
        client.push_image(Reference.parse(f"{registry.host}/pull/bydigest:1"), image)
        by_digest = Reference.parse(f"{registry.host}/pull/bydigest@{image.digest}")
        assert client.pull_image(by_digest).digest == image.digest


# -- indexes and platforms -------------------------------------------------------------------


def test_index_pull_picks_each_platform(registry: Registry) -> None:
    amd64, arm64 = small_image("amd64", b"amd"), small_image("arm64", b"arm")
    ref = Reference.parse(f"{registry.host}/pull/multi:1")
    with client_for(registry) as client:
        index_digest = client.push_index(ref, [amd64, arm64])
        raw, media_type, digest = client.get_manifest(ref)
        assert media_type == mediatypes.OCI_INDEX and digest == index_digest
        assert [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]] == [
            "amd64",
            "arm64",
        ]

        picked = client.pull_image(ref, Platform.parse("linux/arm64"))
        assert picked.digest == arm64.digest
        assert picked.platform.architecture == "arm64"
        assert read_all(picked.layers[1].open()) == read_all(arm64.layers[1].open())
        assert client.pull_image(ref, Platform.parse("linux/amd64")).digest == amd64.digest

        with pytest.raises(JibError) as caught:
            client.pull_image(ref, Platform.parse("linux/s390x"))
    message = str(caught.value)
    assert "linux/amd64" in message and "linux/arm64" in message and "s390x" in message
    assert "\n" not in message


def test_docker_manifest_list_pull(registry: Registry) -> None:
    images = [small_image(a, a.encode(), fmt="docker") for a in ("amd64", "arm64")]
    ref = Reference.parse(f"{registry.host}/pull/list:1")
    with client_for(registry) as client:
        client.push_index(ref, images, media_type=mediatypes.DOCKER_MANIFEST_LIST)
        assert client.pull_image(ref, Platform.parse("linux/arm64/v8")).digest == images[1].digest


def test_base_image_pulls_lazily_for_the_host(registry: Registry, base_image_ref: str) -> None:
    ref = Reference.parse(base_image_ref)
    with client_for(registry) as client:
        since = registry.mark()
        image = client.pull_image(ref)
    assert image.platform.os == "linux"
    assert image.config.env  # a real config came back
    blob_gets = [r for r in registry.requests(since) if "/blobs/" in r.route]
    assert len(blob_gets) == 1  # the config only; the layers stay in the registry


# -- verification ----------------------------------------------------------------------------


def test_blob_with_wrong_size_in_manifest_is_refused_and_not_kept(
    registry: Registry, tmp_path: Path
) -> None:
    image = small_image(text=b"size lie")
    ref = Reference.parse(f"{registry.host}/pull/sizelie:1")
    with client_for(registry) as client:
        client.push_image(ref, image)
        top = image.manifest.layers[1]
        lie = Descriptor(top.media_type, top.digest, top.size + 7)
        with pytest.raises(DigestMismatchError, match="corrupt"):
            client.download_blob(ref.repository, lie, tmp_path / "blob")
    assert list(tmp_path.iterdir()) == []


def _mock_client(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: object
) -> RegistryClient:
    kwargs.setdefault("keychain", StaticKeychain())
    kwargs.setdefault("retry", FAST)
    return RegistryClient("registry.example.com", transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]


BLOB = bytes(range(256)) * 40
BLOB_DESC = Descriptor(mediatypes.OCI_LAYER_GZIP, Digest.of_bytes(BLOB), len(BLOB))


def test_blob_with_wrong_bytes_is_detected_and_not_kept(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, content=BLOB[:-1] + b"!")

    with _mock_client(handler) as client, pytest.raises(DigestMismatchError) as caught:
        client.download_blob("team/app", BLOB_DESC, tmp_path / "blob")
    assert str(BLOB_DESC.digest) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


class _Dropping(httpx.SyncByteStream):
    """A body that breaks off after ``limit`` bytes, as a reset connection does."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.limit = data, limit

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.limit]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@pytest.mark.parametrize("honours_range", [True, False], ids=["206", "200-restart"])
def test_download_resumes_after_a_dropped_connection(tmp_path: Path, honours_range: bool) -> None:
    ranges: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        ranges.append(request.headers.get("range"))
        if len(ranges) == 1:
            return httpx.Response(200, stream=_Dropping(BLOB, 3000))
        start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
        if not honours_range:
            return httpx.Response(200, content=BLOB)
        rest = BLOB[start:]
        headers = {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"}
        return httpx.Response(206, content=rest, headers=headers)

    dest = tmp_path / "blob"
    with _mock_client(handler) as client:
        client.download_blob("team/app", BLOB_DESC, dest)
    assert dest.read_bytes() == BLOB
    assert ranges == [None, "bytes=3000-"]


def test_download_gives_up_after_repeated_drops(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, stream=_Dropping(BLOB, 0))

    with _mock_client(handler) as client, pytest.raises(JibError) as caught:
        client.download_blob("team/app", BLOB_DESC, tmp_path / "blob")
    assert "gave up after 3 attempts" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_manifest_not_matching_its_digest_header_is_refused() -> None:
    body = small_image().raw_manifest
    wrong = "sha256:" + "0" * 64

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        headers = {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": wrong}
        return httpx.Response(200, content=body, headers=headers)

    with _mock_client(handler) as client, pytest.raises(DigestMismatchError, match=wrong):
        client.get_manifest(Reference.parse("registry.example.com/team/app:1"))


def test_schema1_manifest_is_refused_clearly() -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": "team/app", "fsLayers": []}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        accept = request.headers["accept"]
        assert mediatypes.OCI_INDEX in accept and mediatypes.DOCKER_MANIFEST in accept
        ctype = mediatypes.DOCKER_SCHEMA1_SIGNED
        return httpx.Response(200, content=schema1, headers={"Content-Type": ctype})

    with _mock_client(handler) as client, pytest.raises(ImageFormatError, match="schema1"):
        client.pull_image(Reference.parse("registry.example.com/team/app:old"))


def test_redirected_blob_get_does_not_carry_authorization(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []
    challenge = {"WWW-Authenticate": 'Basic realm="r"'}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        if request.url.host == "cdn.example.net":
            return httpx.Response(200, content=BLOB)
        if "authorization" not in request.headers:
            return httpx.Response(401, headers=challenge)
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(307, headers={"Location": "https://cdn.example.net/b?sig=1"})

    credential = Credential(username="u", password="pw-should-stay-home", source="the test")
    with _mock_client(handler, keychain=StaticKeychain(credential)) as client:
        client.download_blob("team/app", BLOB_DESC, tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == BLOB
    registry_auth = [a for host, a in seen if host == "registry.example.com" and a]
    assert registry_auth and all(a.startswith("Basic ") for a in registry_auth)
    assert [a for host, a in seen if host == "cdn.example.net"] == [None]
