"""The registry client against a bad network: a real docker-registry 2.8 behind the fault proxy
(tests/testbed/faultproxy.py) that drops connections mid-body, answers 500/503/429, and stalls.

Each test checks what a user would: the push (or pull) succeeds, and the registry, asked directly
rather than through the proxy, serves exactly the right bytes for every blob and the manifest, by
digest; ``proxy.log`` shows the fault really happened and what the client did next. A push that
cannot succeed must fail within its retry budget, with one actionable line, and never leave a
blob whose bytes do not match its digest. On the pull side, a download dropped mid-body resumes
with ``Range``, and wrong bytes are refused without leaving a file behind.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

import pytest
from test_registry_pull import StaticKeychain, client_for, small_image
from test_registry_push import random_layer
from testbed.faultproxy import FaultProxy, Seen
from testbed.registry import Registry

from jib.errors import DigestMismatchError, JibError
from jib.image import mutate
from jib.image.config import ImageConfig
from jib.image.descriptor import Descriptor, Platform
from jib.image.image import Image
from jib.image.layer import BlobLayer
from jib.image.reference import Reference
from jib.registry.client import RegistryClient, UploadMode
from jib.registry.errors import RegistryError
from jib.registry.retry import RetryPolicy
from jib.registry.transport import Timeouts

MIB = 1 << 20
# Retries that cost next to no time, with room for a few faults per operation.
QUICK = RetryPolicy(attempts=5, base=0.01, cap=0.05, total=20)
UPLOADS = r"/blobs/uploads/"  # the POST that starts a session, and its PATCH/PUT
BLOB = r"/blobs/sha256:"  # a blob HEAD or GET (never an upload)
MANIFEST = r"/manifests/"


# -- helpers ---------------------------------------------------------------------------------------


def proxied(proxy: FaultProxy, **kwargs: object) -> RegistryClient:
    """A client for the registry behind ``proxy`` (plain HTTP: the proxy listens on loopback)."""
    kwargs.setdefault("retry", QUICK)
    return RegistryClient(proxy.host, keychain=StaticKeychain(), **kwargs)  # type: ignore[arg-type]


def one_layer_image(layer: BlobLayer) -> Image:
    base = Image.build(ImageConfig.new(Platform("linux", "amd64")), [])
    return mutate.append_layers(base, [(layer, {"created_by": "fault test"})])


def ref_at(proxy: FaultProxy, repo: str, tag: str = "1") -> Reference:
    return Reference.parse(f"{proxy.host}/{repo}:{tag}")


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def blobs_of(image: Image) -> list[Descriptor]:
    return [image.manifest.config, *image.manifest.layers]


def assert_registry_serves(registry: Registry, repo: str, image: Image, tag: str = "1") -> None:
    """Straight from the registry (not through the proxy): the manifest by digest and by tag,
    and every blob, byte for byte what was pushed (checked by sha256 and size)."""
    with registry.client() as direct:
        got = direct.get(
            f"/v2/{repo}/manifests/{image.digest}", headers={"Accept": image.media_type}
        )
        assert got.status_code == 200, got.text
        assert sha256(got.content) == str(image.digest)
        assert got.content == image.raw_manifest
        tagged = direct.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": image.media_type})
        assert tagged.headers.get("docker-content-digest") == str(image.digest)
        for descriptor in blobs_of(image):
            blob = direct.get(f"/v2/{repo}/blobs/{descriptor.digest}")
            assert blob.status_code == 200, f"{descriptor.digest}: {blob.status_code}"
            assert len(blob.content) == descriptor.size
            assert sha256(blob.content) == str(descriptor.digest)


def assert_absent_or_correct(registry: Registry, repo: str, descriptor: Descriptor) -> str:
    """No blob at ``descriptor.digest`` whose bytes are not those: "absent" or "correct"."""
    with registry.client() as direct:
        path = f"/v2/{repo}/blobs/{descriptor.digest}"
        if direct.head(path).status_code == 404:
            return "absent"
        blob = direct.get(path)
        assert blob.status_code == 200
        assert (len(blob.content), sha256(blob.content)) == (
            descriptor.size,
            str(descriptor.digest),
        ), f"the registry holds wrong bytes for {descriptor.digest}"
        return "correct"


def session_of(seen: Seen) -> str:
    """The upload session's id in an upload PATCH/PUT target (``.../blobs/uploads/<id>?...``)."""
    found = re.search(r"/blobs/uploads/([^/?]+)", seen.path)
    assert found, seen
    return found.group(1)


def steps(log: list[Seen]) -> list[tuple[str, str, int | str]]:
    """``proxy.log`` as (method, what, outcome), the target reduced to what it addresses."""
    out = []
    for seen in log:
        path = seen.path.partition("?")[0]
        if path == "/v2/":
            what = "ping"
        elif "/blobs/uploads/" in path:
            what = "upload"
        elif "/blobs/" in path:
            what = "blob"
        else:
            what = "manifest" if "/manifests/" in path else path
        out.append((seen.method, what, seen.outcome))
    return out


PING = ("GET", "ping", 200)


def uploaded(mode: str = "put") -> list[tuple[str, str, int | str]]:
    """A blob pushed without trouble: HEAD (absent), POST, then its bytes and the commit."""
    body = [("PUT", "upload", 201)]
    if mode == "patch":
        body = [("PATCH", "upload", 202), *body]
    return [("HEAD", "blob", 404), ("POST", "upload", 202), *body]


MANIFEST_PUSHED = [("HEAD", "manifest", 404), ("PUT", "manifest", 201)]


class RecordedSleeps:
    """A ``RetryPolicy.sleep`` that records each wait and how many requests the proxy had seen
    when it was asked for, instead of waiting (no timing flakes, no time lost)."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.calls: list[tuple[float, int]] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append((seconds, len(self.proxy.log)))


# -- push: faults that must not make a push fail ------------------------------------------------


@pytest.mark.parametrize("mode", ["put", "patch"])
def test_connection_dropped_mid_upload_restarts_from_a_fresh_session(
    fault_proxy: FaultProxy, registry: Registry, mode: UploadMode
) -> None:
    layer = random_layer(3 * MIB, seed=31 if mode == "put" else 32)
    image = one_layer_image(layer)
    repo = f"faults/drop-{mode}"
    # The body that carries the layer: the committing PUT, or the single PATCH before it. In
    # put mode the PUT names the digest, so the rule cannot hit the (small) config's upload.
    carrier = "PUT" if mode == "put" else "PATCH"
    pattern = UPLOADS + (f".*{layer.digest.hex}" if mode == "put" else "")
    drop = fault_proxy.drop_after(carrier, pattern, MIB)

    with proxied(fault_proxy, upload_mode=mode) as client:
        assert client.push_image(ref_at(fault_proxy, repo), image, jobs=1) == image.digest

    assert drop.hits == 1
    log = fault_proxy.log
    # The layer's bytes die after 1 MiB; then the whole upload again: HEAD (still absent: the
    # truncated body stored nothing), a fresh POST (2.8 invalidated the old session), the
    # bytes into the new session. Then the config and the manifest, untroubled.
    assert steps(log) == [
        PING,
        ("HEAD", "blob", 404),
        ("POST", "upload", 202),
        (carrier, "upload", "drop"),
        *uploaded(mode),  # the layer, again
        *uploaded(mode),  # the config
        *MANIFEST_PUSHED,
    ]
    if mode == "put":  # the commit names what it commits
        assert layer.digest.hex in log[3].path and layer.digest.hex in log[6].path
    assert session_of(log[6]) != session_of(log[3])
    assert_registry_serves(registry, repo, image)


def test_500_on_blob_put_and_on_manifest_put_are_retried(
    fault_proxy: FaultProxy, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jib.registry")
    image = small_image(text=b"500s")
    repo = "faults/http-500"
    first_blob = image.manifest.layers[0].digest
    blob_put = fault_proxy.fail("PUT", UPLOADS, 500, body=b'{"errors":[{"code":"UNKNOWN"}]}')
    manifest_put = fault_proxy.fail("PUT", MANIFEST, 500)

    with proxied(fault_proxy) as client:
        assert client.push_image(ref_at(fault_proxy, repo), image, jobs=1) == image.digest

    assert (blob_put.hits, manifest_put.hits) == (1, 1)
    log = fault_proxy.log
    # The failed blob commit is retried as a whole upload, in a new session; the manifest PUT
    # (idempotent: the exact bytes again) is simply sent again.
    assert steps(log) == [
        PING,
        ("HEAD", "blob", 404),
        ("POST", "upload", 202),
        ("PUT", "upload", "fail"),
        *uploaded(),  # the first layer, again
        *uploaded(),  # the second layer
        *uploaded(),  # the config
        ("HEAD", "manifest", 404),
        ("PUT", "manifest", "fail"),
        ("PUT", "manifest", 201),
    ]
    assert first_blob.hex in log[3].path and first_blob.hex in log[6].path
    assert session_of(log[6]) != session_of(log[3])
    # Each retry is logged, at debug level: the blob upload's, then the manifest PUT's.
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.DEBUG] * 2
    assert "HTTP 500" in retries[0].getMessage() and "pushing layer" in retries[0].getMessage()
    assert "HTTP 500" in retries[1].getMessage() and "/manifests/1" in retries[1].getMessage()
    assert_registry_serves(registry, repo, image)


def test_429_with_retry_after_is_waited_out(fault_proxy: FaultProxy, registry: Registry) -> None:
    image = small_image(text=b"429s")
    repo = "faults/http-429"
    slow_down = {"Retry-After": "1"}
    rules = [
        fault_proxy.fail("HEAD", BLOB, 429, headers=slow_down),
        fault_proxy.fail("POST", UPLOADS + "$", 429, headers=slow_down),
        fault_proxy.fail("PUT", MANIFEST, 429, headers=slow_down),
    ]
    sleeps = RecordedSleeps(fault_proxy)
    policy = RetryPolicy(attempts=5, base=0.01, cap=0.05, total=20, sleep=sleeps)

    with proxied(fault_proxy, retry=policy) as client:
        assert client.push_image(ref_at(fault_proxy, repo), image, jobs=1) == image.digest

    assert [rule.hits for rule in rules] == [1, 1, 1]
    assert steps(fault_proxy.log) == [
        PING,
        ("HEAD", "blob", "fail"),  # 429 #1
        ("HEAD", "blob", 404),
        ("POST", "upload", "fail"),  # 429 #2: the upload starts over, from its HEAD
        *uploaded(),  # the first layer
        *uploaded(),  # the second layer
        *uploaded(),  # the config
        ("HEAD", "manifest", 404),
        ("PUT", "manifest", "fail"),  # 429 #3
        ("PUT", "manifest", 201),
    ]
    # One wait per 429, each of the full second the registry asked for, taken right after that
    # 429 arrived (the proxy had logged 2, 4 and 15 requests) and before anything else was sent.
    assert sleeps.calls == [(1.0, 2), (1.0, 4), (1.0, 15)]
    assert_registry_serves(registry, repo, image)


def test_stalls_beyond_the_read_timeout_are_retried(
    fault_proxy: FaultProxy, registry: Registry
) -> None:
    image = small_image(text=b"stalls")
    repo = "faults/stall"
    stalls = [
        fault_proxy.stall("HEAD", BLOB, 2.0),  # push: does the first layer exist?
        fault_proxy.stall("HEAD", MANIFEST, 2.0),  # push: does the tag already point at it?
        fault_proxy.stall("GET", MANIFEST, 2.0),  # pull: the manifest
    ]
    timeouts = Timeouts(connect=5.0, read=0.5)
    ref = ref_at(fault_proxy, repo)

    started = time.monotonic()
    with proxied(fault_proxy, timeout=timeouts) as client:
        assert client.push_image(ref, image, jobs=1) == image.digest
        pulled = client.pull_image(ref)
        assert pulled.digest == image.digest
        assert pulled.raw_config == image.raw_config
    elapsed = time.monotonic() - started

    assert [rule.hits for rule in stalls] == [1, 1, 1]
    assert steps(fault_proxy.log) == [
        PING,
        ("HEAD", "blob", "stall"),
        *uploaded(),  # the first layer: its HEAD again, which is answered
        *uploaded(),
        *uploaded(),  # the config
        ("HEAD", "manifest", "stall"),
        *MANIFEST_PUSHED,
        ("GET", "manifest", "stall"),  # the pull
        ("GET", "manifest", 200),
        ("GET", "blob", 200),  # the config (layers are fetched only when read)
    ]
    # Each stall cost the client its 0.5 s read timeout, not the stall's 2 s (generous bound).
    assert elapsed < 3 * 2.0
    assert_registry_serves(registry, repo, image)


# -- push: a push that cannot succeed -----------------------------------------------------------


# What a user is told for each way a push cannot succeed, after "pushing layer ... failed: ".
_DROPPED = r"the connection to http://\S+ failed \(.*\); check the network and try again"
HOPELESS = {
    "every PUT 503": r"the registry answered 503 Service Unavailable; .*try again later",
    "every request dropped": _DROPPED,
    "every layer PUT cut": _DROPPED,
    "every request stalls": r"http://\S+ did not answer within 0.5 s; .*raise the timeout",
}


@pytest.mark.parametrize("fault", list(HOPELESS))
def test_hopeless_push_fails_in_bounded_time_with_one_clear_line(
    fault_proxy: FaultProxy, registry: Registry, fault: str
) -> None:
    big = random_layer(256 << 10, seed=len(fault))
    image = mutate.append_layers(small_image(text=fault.encode()), [(big, {})])
    repo = "faults/hopeless-" + "-".join(fault.split()[1:]).lower()
    budget = 2.0
    # 40 attempts take well over 2 s (each wait is >= 0.125 s once the backoff is capped), so
    # the time budget, not the count, must end it (the message says which); and if the budget
    # were ignored, the test still ends in seconds rather than hanging.
    policy = RetryPolicy(attempts=40, base=0.05, cap=0.25, total=budget)

    with proxied(fault_proxy, retry=policy, timeout=Timeouts(connect=5, read=0.5)) as client:
        client.ping()  # first contact is fine; then the network goes bad
        if fault == "every PUT 503":
            fault_proxy.fail("PUT", "", 503, times=None)
        elif fault == "every request dropped":  # each request arrives, its answer never does
            fault_proxy.drop_after("*", "", 0, times=None)
        elif fault == "every layer PUT cut":
            # Bodies are cut after 64 KiB: only the 256 KiB layer's, as the small ones fit.
            fault_proxy.drop_after("PUT", UPLOADS, 64 << 10, times=None)
        else:
            fault_proxy.stall("*", "", 60.0, times=None)  # the fixture's stop() ends them
        started = time.monotonic()
        with pytest.raises(JibError) as caught:
            client.push_image(ref_at(fault_proxy, repo), image)
        elapsed = time.monotonic() - started

    # Within the budget, plus the last attempt (a read timeout at most) and the other layers'
    # threads winding down: generous, never tight.
    assert elapsed < budget + 8.0
    err = caught.value
    assert isinstance(err, RegistryError)
    message = str(err)
    assert "\n" not in message and "Traceback" not in message
    # Which operation (a layer push: the blob and the repository), what went wrong, what to do,
    # and that it was retried until the budget ran out.
    pushing = rf"pushing layer sha256:[0-9a-f]{{12}}… to {re.escape(fault_proxy.host)}/{repo}"
    assert re.fullmatch(
        rf"{pushing} failed: {HOPELESS[fault]} "
        rf"\(gave up after \d+ attempts in \d+ s \(retry budget 2 s\)\)",
        message,
    ), message
    if fault == "every layer PUT cut":
        assert big.digest.hex[:12] in message  # the one layer that could not get through
    # It did try again, and never got as far as the manifest.
    assert sum(s.outcome in ("fail", "drop", "stall") for s in fault_proxy.log) > 3
    assert not any(s.method == "PUT" and MANIFEST in s.path for s in fault_proxy.log)
    # The registry holds no blob whose bytes differ from its digest (asked directly).
    states = [assert_absent_or_correct(registry, repo, d) for d in blobs_of(image)]
    if fault == "every layer PUT cut":
        # The small layers' commits landed though their answers were lost: the retry's HEAD
        # found them, with the right bytes. The cut layer never arrived whole: absent.
        assert states == ["absent", "correct", "correct", "absent"]
    else:
        assert states == ["absent"] * 4


# -- pull: resumed and refused blob downloads ---------------------------------------------------


@pytest.fixture
def stored_layer(registry: Registry) -> tuple[str, BlobLayer, bytes]:
    """A 3 MiB layer pushed straight into the registry (no proxy): (repo, layer, its bytes)."""
    layer = random_layer(3 * MIB, seed=61)
    repo = "faults/pull"
    with client_for(registry, retry=QUICK) as direct:
        direct.push_blob(repo, layer)
    with registry.client() as raw:
        data = raw.get(f"/v2/{repo}/blobs/{layer.digest}").content
    assert sha256(data) == str(layer.digest)
    return repo, layer, data


def descriptor_of(layer: BlobLayer) -> Descriptor:
    return Descriptor(layer.media_type, layer.digest, layer.size)


def test_download_dropped_mid_body_resumes_with_range(
    fault_proxy: FaultProxy, stored_layer: tuple[str, BlobLayer, bytes], tmp_path: Path
) -> None:
    repo, layer, data = stored_layer
    path = f"/blobs/{layer.digest}"
    # The first response dies after 1 MiB, the first resume after another MiB.
    fault_proxy.drop_after("GET", path, MIB, direction="response", times=2)
    dest = tmp_path / "blobs" / "layer.tar.gz"

    with proxied(fault_proxy) as client:
        client.download_blob(repo, descriptor_of(layer), dest)

    assert sha256(dest.read_bytes()) == str(layer.digest)
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    gets = [s.outcome for s in fault_proxy.log if s.method == "GET" and path in s.path]
    # 206: the registry answered each resume with a partial response, so the client asked for
    # a Range (a 200 would mean it started over).
    assert gets == ["drop", "drop", 206]


@pytest.mark.parametrize("how", ["same size", "wrong size", "wrong resumed tail"])
def test_download_of_wrong_bytes_is_refused_and_not_kept(
    fault_proxy: FaultProxy,
    stored_layer: tuple[str, BlobLayer, bytes],
    tmp_path: Path,
    how: str,
) -> None:
    repo, layer, data = stored_layer
    path = f"/blobs/{layer.digest}"
    wrong = bytearray(data)
    wrong[len(wrong) // 2] ^= 0xFF  # one flipped byte, past the first MiB
    if how == "same size":
        fault_proxy.fail("GET", path, 200, body=bytes(wrong), times=None)
    elif how == "wrong size":
        fault_proxy.fail("GET", path, 200, body=bytes(wrong[:-1]), times=None)
    else:  # the real bytes, dropped after 1 MiB, then a "resume" with a corrupted tail
        fault_proxy.drop_after("GET", path, MIB, direction="response")
        content_range = f"bytes {MIB}-{len(data) - 1}/{len(data)}"
        fault_proxy.fail(
            "GET", path, 206, headers={"Content-Range": content_range}, body=bytes(wrong[MIB:])
        )
    dest = tmp_path / "blobs" / "layer.tar.gz"

    with proxied(fault_proxy) as client, pytest.raises(DigestMismatchError) as caught:
        client.download_blob(repo, descriptor_of(layer), dest)

    message = str(caught.value)
    assert "\n" not in message
    assert layer.digest.hex[:12] in message
    assert any(word in message for word in ("corrupt", "bytes where the manifest says"))
    # Nothing kept: no file at dest, and no temporary file beside it.
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []
    gets = [s.outcome for s in fault_proxy.log if s.method == "GET" and path in s.path]
    assert gets == (["drop", "fail"] if how == "wrong resumed tail" else ["fail"])
