"""How long `hatch build -t jib:push` takes for a Hatch user: cold, after a one-line change, and
when nothing changed, on sample-project/ against a local docker-registry.

    .venv/bin/python bench/hatch_push.py [--runs 5]

Same set-up as the README's main job (scripts/demo.py): the test bed's registry and base image,
a copy of sample-project/ whose `dependencies = ["pyjib"]` points at a wheel of this checkout,
hatch's environments and pyjib's cache in a temp dir. Prints each run and the medians, and how
many blobs each warm push uploaded (it should be two: the application layer and the config).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]

from demo import HATCH, sample_for_hatch  # noqa: E402
from testbed.baseimage import base_image_tar, push_base_image  # noqa: E402
from testbed.registry import Registry  # noqa: E402


def push(project: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(HATCH), "build", "-t", "jib:push"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="pyjib-bench-") as scratch, Registry() as registry:
        work = Path(scratch)
        base = push_base_image(base_image_tar(), registry)
        image = f"{registry.host}/bench/hello-jib:0.1.0"
        project, env = sample_for_hatch(work, base, image)
        cold = push(project, env)
        source = project / "src" / "hello_jib" / "__init__.py"
        warm, uploads = [], []
        for i in range(runs):
            text = re.sub(r"TAGLINE = .*", f'TAGLINE = "change {i}"', source.read_text())
            source.write_text(text)
            since = registry.mark()
            warm.append(push(project, env))
            logged = registry.requests(since)
            uploads.append(sum(r.method == "PUT" and "/uploads/" in r.route for r in logged))
        noop = [push(project, env) for _ in range(runs)]
    print(f"cold (hatch creates its build env)  {cold:6.2f}s")
    print(f"after a one-line change             {_runs(warm)}  blobs uploaded: {uploads}")
    print(f"nothing changed                     {_runs(noop)}")


def _runs(times: list[float]) -> str:
    each = ", ".join(f"{t:.2f}" for t in times)
    return f"median {statistics.median(times):5.2f}s  ({each})"


if __name__ == "__main__":
    main()
