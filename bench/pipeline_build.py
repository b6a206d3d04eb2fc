"""Build-and-push times of ``pyjib push`` against ``podman build`` + ``podman push``, same run.

    .venv/bin/python bench/pipeline_build.py [--projects sample,large] [--repeat N]

For two projects (sample-project/, and a larger app depending on fastapi, uvicorn, pydantic,
numpy and pandas), three scenarios, each timed for both tools against one local docker-registry
that also serves the base image (the test bed's Debian 12 + Python 3.11):

- cold:  empty caches (pyjib: a new JIB_CACHE_DIR and uv cache; podman: new storage), so both
         download the base's metadata/layers and every wheel;
- warm:  one source file changed since the last build;
- no-op: nothing changed.

The Containerfile is the equivalent a careful user writes: the same base, a virtual environment
at /app/.venv, the dependencies installed with pip in their own layer (so a source change reuses
it), then the project installed from its source. The base has no pip (like pyjib's images), so
pip runs from a wheel bind-mounted for the RUN; the host's CA bundle is mounted too, since this
machine reaches PyPI through a TLS-intercepting proxy. podman needs ``--runtime runc``, the two
``--ulimit`` flags and ``--network host`` (for pip) here; see tests/testbed/podman.py.

Prints a table of seconds and the ratio podman / pyjib (how many times faster pyjib is).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testbed.baseimage import base_image_tar, push_base_image  # noqa: E402
from testbed.podman import Podman  # noqa: E402
from testbed.registry import Registry  # noqa: E402

LARGE_DEPS = ["fastapi", "uvicorn", "pydantic", "numpy", "pandas"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

CONTAINERFILE = """\
FROM {base}
RUN --mount=type=bind,source=pip.whl,target=/tmp/pip.whl \\
    --mount=type=bind,source=ca.pem,target=/tmp/ca.pem \\
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \\
    python3 -m venv --without-pip /app/.venv && \\
    PIP_CERT=/tmp/ca.pem /app/.venv/bin/python /tmp/pip.whl/pip install --no-cache-dir \\
      --disable-pip-version-check -q -r /tmp/requirements.txt
# COPY, not a bind mount: a bind-mounted source is not part of the layer cache key, so a changed
# file would not rebuild the layer.
COPY project /src
RUN --mount=type=bind,source=pip.whl,target=/tmp/pip.whl \\
    --mount=type=bind,source=ca.pem,target=/tmp/ca.pem \\
    PIP_CERT=/tmp/ca.pem /app/.venv/bin/python /tmp/pip.whl/pip install --no-cache-dir \\
      --disable-pip-version-check -q --no-deps /src
ENV PATH=/app/.venv/bin:$PATH VIRTUAL_ENV=/app/.venv
WORKDIR /app
ENTRYPOINT ["{script}"]
"""

LARGE_APP = '''\
"""A larger app for the benchmark: an API over a data frame."""

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
VERSION = "1"


class Stats(BaseModel):
    mean: float
    rows: int


@app.get("/stats")
def stats() -> Stats:
    frame = pd.DataFrame({"x": np.arange(10)})
    return Stats(mean=float(frame["x"].mean()), rows=len(frame))


def main() -> None:
    import uvicorn

    uvicorn.run(app, host="0.0.0.0", port=8000)
'''


def make_large(dest: Path) -> Path:
    pkg = dest / "src" / "bigapp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(LARGE_APP)
    deps = ", ".join(f'"{d}"' for d in LARGE_DEPS)
    (dest / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.24"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "bigapp"\nversion = "1.0.0"\nrequires-python = ">=3.10"\n'
        f"dependencies = [{deps}]\n\n"
        '[project.scripts]\nbigapp = "bigapp:main"\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/bigapp"]\n'
    )
    return pkg / "__init__.py"


def make_sample(dest: Path) -> Path:
    shutil.copytree(ROOT / "sample-project", dest, ignore=shutil.ignore_patterns("dist"))
    return dest / "src" / "hello_jib" / "__init__.py"


PROJECTS: dict[str, tuple[Callable[[Path], Path], str, list[str]]] = {
    "sample": (make_sample, "hello-jib", ["markupsafe>=2.1"]),
    "large": (make_large, "bigapp", LARGE_DEPS),
}


#: pyjib's own phase timings ("Timings: plan ..., push ...") of its last run per scenario.
PHASES: dict[tuple[str, str], str] = {}


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])}... failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    return run(argv, env)[0]


def install_pyjib(venv: Path) -> str:
    """``pyjib`` installed as a user installs it: a wheel of this checkout in a venv of its own,
    bytecode compiled at install (pip's default), only pyjib's runtime dependencies.

    Not this checkout's .venv: that is an editable install on a machine with
    PYTHONDONTWRITEBYTECODE=1 (~80 modules recompiled on every run), holding the dev tools too
    (with click installed, ``import httpx`` also imports its CLI: +40 ms per run).
    """
    uv = [sys.executable, "-m", "uv"]
    subprocess.run(
        [*uv, "build", "--wheel", "--quiet", "-o", str(venv.parent / "pyjib-dist"), str(ROOT)],
        check=True,
    )
    wheel = next((venv.parent / "pyjib-dist").glob("pyjib-*.whl"))
    subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [*uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
    subprocess.run([*install, str(wheel)], check=True)
    return str(venv / "bin" / "pyjib")


class PyjibRunner:
    def __init__(self, pyjib: str, project: Path, base: str, image: str, work: Path) -> None:
        self.argv = [pyjib, "push", str(project), "--from-image", base, "--image", image]
        self.timings = ""
        self.env = {
            **os.environ,
            "JIB_CACHE_DIR": str(work / "jib-cache"),
            # uv's own cache (resolution, build environments) starts empty too for "cold".
            "UV_CACHE_DIR": str(work / "uv-cache"),
        }

    def __call__(self) -> float:
        elapsed, out = run(self.argv, self.env)
        self.timings = next((x for x in out.splitlines() if x.startswith("Timings:")), "")
        return elapsed


class PodmanRunner:
    def __init__(self, podman: Podman, context: Path, image: str) -> None:
        self.podman, self.context, self.image = podman, context, image

    def __call__(self) -> float:
        build = [
            *self.podman.global_args, "build", "--runtime", "runc", "--network", "host",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000",
            "--tls-verify=false", "-q", "-t", self.image, str(self.context),
        ]  # fmt: skip
        push = [*self.podman.global_args, "push", "--tls-verify=false", "-q", self.image]
        return timed(build) + timed(push)


def podman_context(dest: Path, project: Path, base: str, script: str, deps: list[str]) -> None:
    dest.mkdir()
    shutil.copytree(project, dest / "project")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "pip", "-d", str(dest)],
        check=True,
    )
    next(dest.glob("pip-*.whl")).rename(dest / "pip.whl")
    shutil.copyfile(CA_BUNDLE, dest / "ca.pem")
    (dest / "requirements.txt").write_text("\n".join(deps) + "\n")
    (dest / "Containerfile").write_text(CONTAINERFILE.format(base=base, script=script))


def touch_source(paths: list[Path], n: int) -> None:
    for path in paths:
        path.write_text(path.read_text() + f"\n# change {n}\n")


def bench_project(
    name: str, pyjib_bin: str, base: str, registry: Registry, work: Path, repeat: int
) -> dict[str, tuple[float, float]]:
    make, script, deps = PROJECTS[name]
    work.mkdir(parents=True)
    project = work / "project"
    source = make(project)
    podman_project = work / "podman-context"
    podman_context(podman_project, project, base, script, deps)
    pod_source = podman_project / "project" / source.relative_to(project)
    pyjib = PyjibRunner(pyjib_bin, project, base, f"{registry.host}/bench/{name}-pyjib:1", work)
    results: dict[str, tuple[float, float]] = {}
    with Podman() as podman:
        runner = PodmanRunner(podman, podman_project, f"{registry.host}/bench/{name}-podman:1")
        rows: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "no-op": []}
        rows["cold"].append((pyjib(), runner()))
        PHASES[(name, "cold")] = pyjib.timings
        for change in range(1, repeat + 1):
            touch_source([source, pod_source], change)
            rows["warm"].append((pyjib(), runner()))
            PHASES[(name, "warm")] = pyjib.timings
            rows["no-op"].append((pyjib(), runner()))
            PHASES[(name, "no-op")] = pyjib.timings
        for scenario, times in rows.items():
            # Best of the repeats per tool: the machine is shared and noisy.
            results[scenario] = (min(t[0] for t in times), min(t[1] for t in times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", default="sample,large")
    parser.add_argument("--repeat", type=int, default=3, help="warm/no-op runs (best kept)")
    args = parser.parse_args()
    names = [n for n in args.projects.split(",") if n]
    table: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="pyjib-bench-") as scratch, Registry() as registry:
        work = Path(scratch)
        base = push_base_image(base_image_tar(), registry)
        pyjib_bin = install_pyjib(work / "pyjib-venv")
        for name in names:
            print(f"benchmarking {name}...", file=sys.stderr, flush=True)
            for scenario, (jib_s, pod_s) in bench_project(
                name, pyjib_bin, base, registry, work / name, args.repeat
            ).items():
                table.append((name, scenario, jib_s, pod_s))
    print(f"\n{'project':<8} {'scenario':<8} {'pyjib s':>9} {'podman s':>9} {'podman/pyjib':>13}")
    for name, scenario, jib_s, pod_s in table:
        print(f"{name:<8} {scenario:<8} {jib_s:>9.2f} {pod_s:>9.2f} {pod_s / jib_s:>12.1f}x")
    print("\npyjib's own phases (last run of each):")
    for (name, scenario), line in PHASES.items():
        print(f"  {name:<8} {scenario:<8} {line.removeprefix('Timings: ')}")


if __name__ == "__main__":
    main()
