"""ImageConfig: immutable edits that keep every field pyjib does not know about."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jib.errors import ImageFormatError, JibError
from jib.image.config import EPOCH, ImageConfig
from jib.image.descriptor import Platform
from jib.image.digest import Digest

#: What pytest.raises raises when the expected error does not come.
DID_NOT_RAISE = pytest.fail.Exception

D1 = Digest.of_bytes(b"layer one")
D2 = Digest.of_bytes(b"layer two")
D3 = Digest.of_bytes(b"layer three")

#: Shaped like a Docker Hub config: fields pyjib does not model, at the top and inside `config`.
BASE: dict[str, Any] = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-05-01T12:00:00.123456789Z",
    "author": "someone",
    "docker_version": "20.10.23",
    "container": "8a7b",
    "container_config": {"Hostname": "8a7b", "Cmd": ["/bin/sh", "-c", "#(nop) CMD"]},
    "moby.buildkit.buildinfo.v1": "eyJmcm9udGVuZCI6ImRvY2tlcmZpbGUudjAifQ==",
    "config": {
        "Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "OPTS=a=b=c"],
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["python3"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000},
        "StopSignal": "SIGTERM",
        "OnBuild": None,
        "ArgsEscaped": True,
    },
    "rootfs": {"type": "layers", "diff_ids": [str(D1)]},
    "history": [{"created": "2024-05-01T12:00:00Z", "created_by": "ADD rootfs.tar /"}],
}

UNKNOWN_TOP = [
    "author",
    "docker_version",
    "container",
    "container_config",
    "moby.buildkit.buildinfo.v1",
]
UNKNOWN_INNER = ["Healthcheck", "StopSignal", "OnBuild", "ArgsEscaped"]

EDITS = {
    "env": lambda c: c.with_env({"A": "1"}),
    "entrypoint": lambda c: c.with_entrypoint(["/app/run"]),
    "no entrypoint": lambda c: c.with_entrypoint(None),
    "cmd": lambda c: c.with_cmd(["serve", "--port=80"]),
    "no cmd": lambda c: c.with_cmd(None),
    "user": lambda c: c.with_user("1000:1000"),
    "working dir": lambda c: c.with_working_dir("/app"),
    "labels": lambda c: c.with_labels({"b": "2", "a": "1"}),
    "ports": lambda c: c.with_exposed_ports(["8080/tcp"]),
    "volumes": lambda c: c.with_volumes(["/data"]),
    "created": lambda c: c.with_created(EPOCH),
    "platform": lambda c: c.with_platform(Platform("linux", "arm64", "v8")),
    "layer": lambda c: c.with_layer_added(D2, {"created_by": "pyjib: dependencies"}),
}


def base() -> ImageConfig:
    return ImageConfig.parse(json.dumps(BASE).encode())


@pytest.mark.parametrize("edit", list(EDITS))
def test_unknown_fields_survive_every_edit(edit):
    edited = EDITS[edit](base())
    for document in (edited.to_dict(), json.loads(edited.to_bytes())):
        for key in UNKNOWN_TOP:
            assert document[key] == BASE[key]
        for key in UNKNOWN_INNER:
            assert document["config"][key] == BASE["config"][key]
        assert document["history"][0] == BASE["history"][0]


@pytest.mark.parametrize("edit", list(EDITS))
def test_edits_leave_the_original_untouched(edit):
    original = base()
    before = original.to_bytes()
    edited = EDITS[edit](original)
    assert original.to_bytes() == before
    assert original == base()
    assert edited != original


def test_config_is_isolated_from_the_dicts_it_came_from_and_gives_out():
    data = json.loads(json.dumps(BASE))
    config = ImageConfig(data)
    data["config"]["Env"].append("X=1")
    data["rootfs"]["diff_ids"].clear()
    out = config.to_dict()
    out["config"]["Cmd"].append("oops")
    config.history[0]["created_by"] = "oops"
    config.labels["x"] = "y"
    assert config == base()


def test_reading_fields():
    config = base()
    assert config.platform == Platform("linux", "amd64")
    assert config.created == BASE["created"]
    assert config.diff_ids == (D1,)
    assert config.cmd == ("python3",)
    assert config.entrypoint == ("docker-entrypoint.sh",)
    assert config.user is None
    assert config.history == tuple(BASE["history"])


def test_env_splits_at_the_first_equals_sign():
    config = base().with_env({"A": "x=y", "EMPTY": "", "URL": "a?b=c&d=e"})
    assert config.env == {"A": "x=y", "EMPTY": "", "URL": "a?b=c&d=e"}
    assert config.to_dict()["config"]["Env"] == ["A=x=y", "EMPTY=", "URL=a?b=c&d=e"]
    assert base().env == {
        "PATH": "/usr/local/bin:/usr/bin",
        "LANG": "C.UTF-8",
        "OPTS": "a=b=c",
    }


def test_env_later_duplicates_win_and_order_is_kept():
    config = ImageConfig({"config": {"Env": ["B=1", "A=2", "B=3", "NOVALUE"]}})
    assert config.env == {"B": "3", "A": "2", "NOVALUE": ""}
    assert list(base().with_env({"Z": "1", "A": "2"}).env) == ["Z", "A"]


def test_container_fields_set_and_cleared():
    config = (
        base()
        .with_entrypoint(["/app/run"])
        .with_cmd([])
        .with_user("app")
        .with_working_dir("/app")
        .with_labels({"b": "2", "a": "1"})
    )
    assert config.entrypoint == ("/app/run",)
    assert config.cmd == ()
    assert config.user == "app"
    assert config.working_dir == "/app"
    assert config.labels == {"a": "1", "b": "2"}
    cleared = config.with_entrypoint(None).with_cmd(None).with_user(None).with_labels({})
    inner = cleared.to_dict()["config"]
    for key in ("Entrypoint", "Cmd", "User", "Labels"):
        assert key not in inner
    assert cleared.entrypoint is None and cleared.cmd is None


def test_with_layer_added_appends_diff_id_and_history():
    config = (
        base()
        .with_layer_added(D2, {"created_by": "deps"})
        .with_layer_added(D3, {"created_by": "app", "comment": "pyjib"})
    )
    assert config.diff_ids == (D1, D2, D3)
    assert [h.get("created_by") for h in config.history] == ["ADD rootfs.tar /", "deps", "app"]
    assert config.to_dict()["rootfs"]["type"] == "layers"


def test_with_layer_added_on_config_without_rootfs():
    config = ImageConfig({"os": "linux", "architecture": "amd64"}).with_layer_added(D1, {})
    assert config.diff_ids == (D1,)
    assert config.to_dict()["rootfs"] == {"type": "layers", "diff_ids": [str(D1)]}
    assert len(config.history) == 1


@pytest.mark.parametrize(
    ("method", "key", "values", "expected"),
    [
        (
            "with_exposed_ports",
            "ExposedPorts",
            ["8080/tcp", "53/udp", "8080/tcp", "443/tcp"],
            ("443/tcp", "53/udp", "8080/tcp"),
        ),
        ("with_volumes", "Volumes", ["/var/lib/x", "/data", "/data"], ("/data", "/var/lib/x")),
    ],
)
def test_ports_and_volumes_sorted_and_deduplicated(method, key, values, expected):
    config = getattr(base(), method)(values)
    property_name = "exposed_ports" if key == "ExposedPorts" else "volumes"
    assert getattr(config, property_name) == expected
    raw = json.loads(config.to_bytes())["config"][key]
    assert list(raw) == list(expected)
    assert all(v == {} for v in raw.values())
    assert getattr(base(), method)(reversed(values)).to_bytes() == config.to_bytes()
    assert key not in getattr(config, method)([]).to_dict()["config"]


@pytest.mark.parametrize(
    ("platform", "variant"),
    [(Platform("linux", "arm64", "v8"), "v8"), (Platform("linux", "amd64"), None)],
)
def test_with_platform(platform, variant):
    config = base().with_platform(Platform("linux", "arm", "v7")).with_platform(platform)
    assert config.platform == platform
    assert config.to_dict().get("variant") == variant


@pytest.mark.parametrize(
    "platform",
    [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7")],
)
def test_new_for_scratch(platform):
    config = ImageConfig.new(platform)
    data = json.loads(config.to_bytes())
    assert (data["os"], data["architecture"], data.get("variant")) == (
        platform.os,
        platform.architecture,
        platform.variant,
    )
    assert data["created"] == EPOCH
    assert data["rootfs"] == {"type": "layers", "diff_ids": []}
    assert config.diff_ids == ()
    assert config.platform == platform
    assert ImageConfig.new(platform).to_bytes() == config.to_bytes()


def test_to_bytes_is_canonical():
    out = base().to_bytes()
    assert out == json.dumps(BASE, sort_keys=True, separators=(",", ":")).encode()
    assert ImageConfig.parse(out) == base()


def test_equal_configs_hash_equal():
    assert hash(base()) == hash(ImageConfig(BASE))
    assert len({base(), ImageConfig(BASE), base().with_user("x")}) == 2


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"{",
        b"[]",
        b'"config"',
        b"null",
        json.dumps({**BASE, "rootfs": []}).encode(),
        json.dumps({**BASE, "rootfs": {"type": "layers", "diff_ids": "sha256:x"}}).encode(),
        json.dumps({**BASE, "rootfs": {"type": "layers", "diff_ids": ["sha256:abc"]}}).encode(),
        json.dumps({**BASE, "rootfs": {"type": "layers", "diff_ids": [str(D1).upper()]}}).encode(),
        json.dumps({**BASE, "rootfs": {"type": "layers", "diff_ids": [D1.hex]}}).encode(),
    ],
)
def test_parse_rejects_malformed_configs(document):
    with pytest.raises(ImageFormatError) as info:
        ImageConfig.parse(document, "base image config")
    assert isinstance(info.value, JibError)
    assert "\n" not in str(info.value)


def test_parse_rejects_unknown_rootfs_type():
    with pytest.raises(ImageFormatError):
        ImageConfig.parse(json.dumps({**BASE, "rootfs": {"type": "zfs", "diff_ids": []}}).encode())


def test_parse_rejects_non_string_diff_id():
    with pytest.raises(ImageFormatError):
        ImageConfig.parse(
            json.dumps({**BASE, "rootfs": {"type": "layers", "diff_ids": [5]}}).encode()
        )


def test_parse_rejects_non_object_container_config():
    with pytest.raises(ImageFormatError):
        ImageConfig.parse(json.dumps({**BASE, "config": "python3"}).encode())
