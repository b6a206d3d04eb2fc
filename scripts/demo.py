"""The main job, end to end, on sample-project/: build an image, push it locally, run it.

Starts a real docker-registry on 127.0.0.1, uses the test bed's Debian+Python base image (built
with mmdebstrap and cached), builds the image through pyjib's core API, writes the hybrid tarball,
pushes it with skopeo (until pyjib's own registry client is wired into a CLI), and runs it with
Podman. Everything it starts stops when it ends.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testbed.baseimage import base_image_tar  # noqa: E402
from testbed.podman import Podman  # noqa: E402
from testbed.registry import Registry  # noqa: E402

from jib.image import mutate  # noqa: E402
from jib.image.reference import Reference  # noqa: E402
from jib.layers import build_layer, entries_from_tree  # noqa: E402
from jib.local import read_local, tarball  # noqa: E402

PROJECT = ROOT / "sample-project"


def main() -> None:
    started = time.monotonic()
    base_tar = base_image_tar()
    with tempfile.TemporaryDirectory(prefix="pyjib-demo-") as scratch, Registry() as registry:
        work = Path(scratch)
        ref = Reference.parse(f"{registry.host}/demo/hello-jib:0.1.0")

        build_started = time.monotonic()
        base = read_local(f"tar://{base_tar}")
        app = build_layer(entries_from_tree(PROJECT / "src", "/app/src"), work / "layers")
        image = mutate.append_layers(
            base,
            [(app, {"created": "1970-01-01T00:00:00Z", "created_by": "pyjib", "comment": "app"})],
        )
        image = mutate.with_config(
            image,
            lambda c: (
                c.with_entrypoint(["python3", "-m", "hello_jib"])
                .with_cmd(None)
                .with_working_dir("/app")
                .with_env({**c.env, "PYTHONPATH": "/app/src", "GREETING": "Hello"})
                .with_labels({"org.opencontainers.image.title": "hello-jib"})
            ),
        )
        out = work / "dist" / "hello-jib-0.1.0-image.tar"
        tarball.write_image(out, image, [ref])
        build_seconds = time.monotonic() - build_started
        print(f"built {ref}@{image.digest} in {build_seconds:.2f}s -> {out.name}")

        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci-archive:{out}",
                f"docker://{ref}",
            ],
            check=True,
        )
        print(f"pushed {ref}")

        with Podman() as podman:
            podman.pull(str(ref), tls_verify=False)
            result = podman.run(str(ref))
        print(f"ran it: {result.stdout.strip()}")
    print(f"demo done in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
