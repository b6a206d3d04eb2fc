"""The main job, end to end, on sample-project/: build an image, push it locally, run it.

Starts a real docker-registry on 127.0.0.1, pushes the test bed's Debian + Python 3.11 base
image to it (built with mmdebstrap and cached), then runs the real `pyjib push` on a copy of
sample-project/ and runs the pushed image with Podman. It then changes one source file and
pushes again, to show that only the application layer moves. Everything it starts stops when it
ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testbed.baseimage import base_image_tar, push_base_image  # noqa: E402
from testbed.podman import Podman  # noqa: E402
from testbed.registry import Registry  # noqa: E402

PYJIB = str(Path(sys.executable).parent / "pyjib")


def pyjib_push(project: Path, base: str, image: str, cache: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [PYJIB, "push", str(project), "--from-image", base, "--image", image],
        check=True,
        env={**os.environ, "JIB_CACHE_DIR": str(cache)},
    )
    return time.monotonic() - started


def main() -> None:
    started = time.monotonic()
    base_tar = base_image_tar()
    with tempfile.TemporaryDirectory(prefix="pyjib-demo-") as scratch, Registry() as registry:
        work = Path(scratch)
        base = push_base_image(base_tar, registry)
        project = work / "sample-project"
        shutil.copytree(ROOT / "sample-project", project, ignore=shutil.ignore_patterns("dist"))
        image = f"{registry.host}/demo/hello-jib:0.1.0"

        print(f"\n$ pyjib push sample-project --from-image {base} --image {image}")
        cold = pyjib_push(project, base, image, work / "cache")

        with Podman() as podman:
            podman.pull(image, tls_verify=False)
            print(f"\n$ podman run {image}\n{podman.run(image).stdout.rstrip()}")

            source = project / "src" / "hello_jib" / "__init__.py"
            code = source.read_text().replace("from hello-jib", "from hello-jib, rebuilt")
            source.write_text(code)
            print("\n(changed one line of src/hello_jib/__init__.py)")
            since = registry.mark()
            warm = pyjib_push(project, base, image, work / "cache")
            uploads = [
                r for r in registry.requests(since) if r.method == "PUT" and "/uploads/" in r.route
            ]
            podman.pull(image, tls_verify=False)
            print(f"\n$ podman run {image}\n{podman.run(image).stdout.rstrip()}")
    print(
        f"\nfirst push {cold:.1f}s; push after a one-line change {warm:.1f}s "
        f"({len(uploads)} blobs uploaded: the application layer and the config); "
        f"demo done in {time.monotonic() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
