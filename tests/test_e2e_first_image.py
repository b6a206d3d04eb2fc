"""The first end-to-end path, through the core's public API only: a real Debian Python base from
``tar://``, one layer with a script, entrypoint/env/labels set, written as a tarball, then loaded
and run by Podman and inspected by skopeo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jib.image import mutate
from jib.image.reference import Reference
from jib.layers import LayerEntry, build_layer
from jib.local import read_local, tarball

pytestmark = pytest.mark.e2e

SCRIPT = b"""\
import os, sys
major, minor = sys.version_info[:2]
print(f"hello from {os.environ['GREETING_TARGET']} on Python {major}.{minor}")
"""


def test_script_image_loads_and_runs_in_podman(
    tmp_path: Path, base_image_tar: Path, podman: object
) -> None:
    base = read_local(f"tar://{base_image_tar}")
    layer = build_layer([LayerEntry.data(SCRIPT, "/app/hello.py")], tmp_path / "layers")
    image = mutate.append_layers(
        base,
        [(layer, {"created": "1970-01-01T00:00:00Z", "created_by": "pyjib", "comment": "app"})],
    )
    image = mutate.with_config(
        image,
        lambda c: (
            c.with_entrypoint(["python3", "/app/hello.py"])
            .with_cmd(None)
            .with_env({**c.env, "GREETING_TARGET": "pyjib"})
            .with_labels({**c.labels, "org.opencontainers.image.title": "hello"})
        ),
    )
    ref = Reference.parse("registry.example.com/pyjib/hello:1.0")
    out = tmp_path / "dist" / "hello-image.tar"
    tarball.write_image(out, image, [ref])

    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{out}"],
        capture_output=True,
        check=True,
    ).stdout
    assert raw == image.raw_manifest

    names = podman.load(out)  # type: ignore[attr-defined]
    assert "registry.example.com/pyjib/hello:1.0" in names
    result = podman.run("registry.example.com/pyjib/hello:1.0")  # type: ignore[attr-defined]
    assert result.stdout.strip() == "hello from pyjib on Python 3.11"
    config = podman.inspect("registry.example.com/pyjib/hello:1.0")  # type: ignore[attr-defined]
    assert config["Config"]["Labels"]["org.opencontainers.image.title"] == "hello"
    assert config["Config"]["Entrypoint"] == ["python3", "/app/hello.py"]
    assert "GREETING_TARGET=pyjib" in config["Config"]["Env"]
