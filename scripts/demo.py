"""The main job, end to end: `hatch build -t jib:push` on sample-project/, run it, change it.

1. Starts a real docker-registry on 127.0.0.1 and pushes the test bed's Debian + Python 3.11
   base image to it (built once with mmdebstrap, then cached).
2. Copies sample-project/ (a small Hatch web app) and runs the real `hatch build -t jib:push`
   on it, with JIB_FROM_IMAGE / JIB_TO_IMAGE pointing at that registry. hatch creates its build
   environment and installs pyjib there, as it would for any user; since pyjib is not on an
   index, the copy's `dependencies = ["pyjib"]` names a wheel of this checkout instead.
3. Pulls the image with Podman, starts it (its entrypoint is the app's console script, serving
   HTTP on port 8000) and asks it for a page from inside the container.
4. Changes one line of one source file, pushes again (one small layer goes up), and asks again.

Everything runs in a temp dir (hatch's environments, pyjib's cache, Podman's store) and
everything it starts stops when it ends.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testbed.baseimage import base_image_tar, push_base_image  # noqa: E402
from testbed.podman import RUN_FLAGS, Podman  # noqa: E402
from testbed.registry import Registry  # noqa: E402

HATCH = Path(sys.executable).parent / "hatch"
CONTAINER = "hello-jib-demo"
# Run inside the container, next to the server: no port publishing, no host networking needed.
CLIENT = """
import sys, time, urllib.request
for attempt in range(50):
    try:
        with urllib.request.urlopen("http://127.0.0.1:8000" + sys.argv[1], timeout=2) as r:
            print(r.status, r.headers["Content-Type"]); print(r.read().decode()); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the app did not answer on port 8000")
"""


def pyjib_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "uv", "build", "--wheel", "--quiet", "-o", str(out), str(ROOT)],
        check=True,
    )
    return next(out.glob("pyjib-*.whl"))


def sample_for_hatch(work: Path, base: str, image: str) -> tuple[Path, dict[str, str]]:
    """A copy of sample-project/ in ``work`` whose jib target installs a wheel of this checkout,
    and the environment to run hatch in: pushing ``base`` + the app to ``image``, with hatch's
    data and pyjib's cache under ``work``."""
    project = work / "sample-project"
    shutil.copytree(ROOT / "sample-project", project, ignore=shutil.ignore_patterns("dist"))
    pyproject = project / "pyproject.toml"
    wheel = pyjib_wheel(work / "wheel")
    pyproject.write_text(
        pyproject.read_text().replace('["pyjib"]', f'["pyjib @ {wheel.as_uri()}"]')
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIB_", "HATCH_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        JIB_FROM_IMAGE=base,
        JIB_TO_IMAGE=image,
        JIB_CACHE_DIR=str(work / "jib-cache"),
        HATCH_DATA_DIR=str(work / "hatch-data"),
        HATCH_CACHE_DIR=str(work / "hatch-cache"),
    )
    return project, env


def hatch_push(project: Path, env: dict[str, str]) -> float:
    print("\n$ hatch build -t jib:push", flush=True)
    started = time.monotonic()
    subprocess.run([str(HATCH), "build", "-t", "jib:push"], cwd=project, env=env, check=True)
    return time.monotonic() - started


def ask(podman: Podman, image: str, path: str) -> None:
    podman.pull(image, tls_verify=False)
    podman.call("rm", "--force", CONTAINER, check=False)
    podman.call("run", "--detach", *RUN_FLAGS, "--network=none", "--name", CONTAINER, image)
    try:
        print(f"\n$ podman run -d {image}   # entrypoint: hello-jib, serving on :8000")
        print(f"$ podman exec {CONTAINER} python3 -c 'urlopen(\"http://127.0.0.1:8000{path}\")'")
        print(podman.call("exec", CONTAINER, "python3", "-c", CLIENT, path).stdout.rstrip())
    finally:
        podman.call("rm", "--force", "--time", "0", CONTAINER, check=False)


def main() -> None:
    if not HATCH.exists():
        sys.exit(f"hatch is not installed in {HATCH.parent}: run scripts/demo.sh")
    started = time.monotonic()
    base_tar = base_image_tar()
    with tempfile.TemporaryDirectory(prefix="pyjib-demo-") as scratch, Registry() as registry:
        work = Path(scratch)
        base = push_base_image(base_tar, registry)
        image = f"{registry.host}/demo/hello-jib:0.1.0"
        project, env = sample_for_hatch(work, base, image)
        print(f"\n# sample-project/ copied to {project} ([tool.jib] as in the original)")
        print(f"$ export JIB_FROM_IMAGE={base} JIB_TO_IMAGE={image}")
        cold = hatch_push(project, env)

        with Podman() as podman:
            ask(podman, image, "/?name=podman")

            source = project / "src" / "hello_jib" / "__init__.py"
            source.write_text(
                re.sub(
                    r"TAGLINE = .*",
                    'TAGLINE = "Changed one line; pushed one layer."',
                    source.read_text(),
                )
            )
            print("\n# changed one line of src/hello_jib/__init__.py (TAGLINE)")
            since = registry.mark()
            warm = hatch_push(project, env)
            uploads = [
                r for r in registry.requests(since) if r.method == "PUT" and "/uploads/" in r.route
            ]
            ask(podman, image, "/?name=again")
            ask(podman, image, "/static/style.css")
    print(
        f"\nfirst `hatch build -t jib:push` {cold:.1f}s (creates hatch's build env, fetches "
        f"wheels); after a one-line change {warm:.1f}s ({len(uploads)} blobs uploaded: the "
        f"application layer and the config); demo done in {time.monotonic() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
