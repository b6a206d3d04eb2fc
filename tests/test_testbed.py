"""Checks that the test bed really works, so a later failure points at pyjib and not at it."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from testbed import baseimage
from testbed.podman import Podman
from testbed.registry import Registry

pytestmark = pytest.mark.e2e


def test_plain_registry_answers_v2(registry: Registry) -> None:
    since = registry.mark()
    with registry.client() as client:
        resp = client.get("/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert registry.requests(since) == [("GET", "/v2/", 200)]


def test_requests_keep_order_and_query(registry: Registry) -> None:
    since = registry.mark()
    with registry.client() as client:
        assert client.head("/v2/testbed/order/manifests/latest").status_code == 404
        start = client.post("/v2/testbed/order/blobs/uploads/", params={"mount": "sha256:00"})
        assert start.status_code == 202
    logged = registry.requests(since)
    assert [(r.method, r.status) for r in logged] == [("HEAD", 404), ("POST", 202)]
    assert logged[1].route == "/v2/testbed/order/blobs/uploads/"
    assert logged[1].params == {"mount": ["sha256:00"]}


def test_basic_registry_needs_credentials(basic_registry: Registry) -> None:
    assert basic_registry.credentials is not None
    with basic_registry.client() as client:
        anonymous = client.get("/v2/")
        wrong = client.get("/v2/", auth=(basic_registry.username, "wrong"))
        right = client.get("/v2/", auth=basic_registry.credentials)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert wrong.status_code == 401
    assert right.status_code == 200


def test_tls_registry_trusts_only_its_ca(tls_registry: Registry) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_path is not None and tls_registry.ca_path.is_file()
    with tls_registry.client() as client:
        assert client.get("/v2/").status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_registry.url}/v2/")
    # The certificate is valid for the name too, not only the IP address.
    with httpx.Client(verify=tls_registry.verify) as client:
        assert client.get(f"https://localhost:{tls_registry.port}/v2/").status_code == 200


def test_token_registry_accepts_tokens_from_its_server(token_registry: Registry) -> None:
    server = token_registry.token_server
    assert server is not None
    with token_registry.client() as client:
        challenge = client.get("/v2/")
        assert challenge.status_code == 401
        header = challenge.headers["WWW-Authenticate"]
        assert header == f'Bearer realm="{server.realm}",service="{server.service}"'

        scope = "repository:testbed/token:pull"
        params = {"service": server.service, "scope": scope}
        got = httpx.get(server.realm, params=params, auth=token_registry.credentials)
        assert got.status_code == 200
        pull = {"Authorization": f"Bearer {got.json()['token']}"}
        assert client.get("/v2/", headers=pull).status_code == 200
        # The token carries only pull, so the registry must refuse an upload with it.
        refused = client.post("/v2/testbed/token/blobs/uploads/", headers=pull)
        assert refused.status_code == 401
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]

    assert server.requests[-1].scopes == (scope,)
    assert server.requests[-1].account == token_registry.username
    assert server.requests[-1].granted == (scope,)
    bad = httpx.get(server.realm, params=params, auth=(token_registry.username, "nope"))
    assert bad.status_code == 401
    assert server.requests[-1].status == 401


def test_token_server_oauth2_password_and_refresh(token_registry: Registry) -> None:
    server = token_registry.token_server
    assert server is not None
    user, password = token_registry.credentials or ("", "")
    form = {
        "grant_type": "password",
        "username": user,
        "password": password,
        "service": server.service,
        "client_id": "pyjib-tests",
        "access_type": "offline",
        "scope": "repository:testbed/oauth:pull,push",
    }
    first = httpx.post(server.realm, data=form)
    assert first.status_code == 200
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first.json()["refresh_token"],
        "service": server.service,
        "client_id": "pyjib-tests",
        "scope": "repository:testbed/oauth:pull,push",
    }
    second = httpx.post(server.realm, data=refresh)
    assert second.status_code == 200
    bearer = {"Authorization": f"Bearer {second.json()['access_token']}"}
    with token_registry.client() as client:
        upload = client.post("/v2/testbed/oauth/blobs/uploads/", headers=bearer)
    assert upload.status_code == 202


def test_registry_process_is_gone_after_stop() -> None:
    reg = Registry().start()
    pid = reg.pid
    assert pid is not None
    reg.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_base_image_archive_is_docker_save_shaped(base_image_tar: Path) -> None:
    with tarfile.open(base_image_tar) as tar:
        manifest = json.load(_member(tar, "manifest.json"))
        assert manifest[0]["RepoTags"] == [baseimage.REPO_TAG]
        config = json.load(_member(tar, manifest[0]["Config"]))
        (layer_name,) = manifest[0]["Layers"]
        digest = hashlib.sha256()
        layer = _member(tar, layer_name)
        while chunk := layer.read(1 << 20):
            digest.update(chunk)
    assert config["rootfs"]["diff_ids"] == [f"sha256:{digest.hexdigest()}"]
    assert config["architecture"] == baseimage.go_arch(baseimage.debian_arch())
    assert config["os"] == "linux"
    assert config["config"]["Env"] == baseimage.ENV
    assert config["config"]["Cmd"] == ["python3"]
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert len(config["history"]) == 1


def test_base_image_is_cached(base_image_tar: Path) -> None:
    mtime = base_image_tar.stat().st_mtime_ns
    assert baseimage.base_image_tar(base_image_tar.parent) == base_image_tar
    assert base_image_tar.stat().st_mtime_ns == mtime


def test_podman_load_names_the_base_image(podman: Podman, base_image_tar: Path) -> None:
    names = podman.load(base_image_tar)
    # podman qualifies a registry-less RepoTag with localhost/.
    assert names == [f"localhost/{baseimage.REPO_TAG}"]
    assert names[0] in podman.image_names()
    inspected = podman.inspect(names[0])
    assert inspected["Config"]["Env"] == baseimage.ENV


def test_pushed_base_image_runs_python_311(
    podman: Podman, registry: Registry, base_image_ref: str
) -> None:
    assert base_image_ref == f"{registry.host}/pyjib-test/python:3.11"
    pushes = [r for r in registry.requests() if r.method == "PUT"]
    assert ("PUT", "/v2/pyjib-test/python/manifests/3.11", 201) in pushes
    podman.pull(base_image_ref, tls_verify=False)
    assert base_image_ref in podman.image_names()
    code = "import sys; print(sys.version_info[:2])"
    result = podman.run(base_image_ref, "python3", "-c", code, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert result.stdout.strip() == "(3, 11)"


def test_base_image_pushes_with_credentials_over_tls(
    registry_factory: Callable[..., Registry], podman: Podman, base_image_tar: Path
) -> None:
    secure = registry_factory(auth="basic", tls=True)
    ref = baseimage.push_base_image(base_image_tar, secure, "testbed/secure", "1")
    assert ("PUT", "/v2/testbed/secure/manifests/1", 201) in secure.requests()
    podman.pull(ref, tls_verify=True, cert_dir=secure.cert_dir, creds=secure.credentials)
    assert ref in podman.image_names()


def _member(tar: tarfile.TarFile, name: str) -> tarfile.ExFileObject:
    fh = tar.extractfile(name)
    assert fh is not None, name
    return fh
