"""Issue 7's "done when", through the real ``poetry`` CLI in subprocesses.

Poetry (latest 2.x, or ``$PYJIB_TEST_POETRY``) gets its own virtual environment, and the plugin
is installed into it the way users do: ``poetry self add`` (of this checkout, editable, so the
environment stays valid while the plugin's code changes). The environment is cached under
``~/.cache/pyjib-testbed/`` keyed by the Poetry requirement, this checkout's path and its
pyproject.toml; a ``ready`` marker written last makes a half-built one start over. One more
environment, Poetry alone, shows ``[tool.poetry.requires-plugins]`` installing the plugin into the
project's ``.poetry/plugins``.

The test project (``tests/projects/poetry-app``) has a native dependency (markupsafe), a path
dependency (``libs/localdep``), a dev group (six), and a ``[tool.poetry] exclude``; its
``poetry.lock`` is made by the real ``poetry lock`` once per session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from testbed.baseimage import cache_dir

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "projects" / "poetry-app"
POETRY_SPEC = os.environ.get("PYJIB_TEST_POETRY", "poetry>=2,<3")
#: What the app prints in the image: markupsafe's C speedups, the path dependency, and the
#: file that [tool.poetry] exclude keeps out of the wheel.
APP_OUTPUT = [
    "escaped: &lt;b&gt;",
    "native: _speedups.cpython-311-x86_64-linux-gnu.so",
    "local: hello from a path dependency",
    "excluded file shipped: False",
]
IMPORT_SIX = ["--entrypoint", "/app/.venv/bin/python"]


# -- Poetry environments -------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check(argv: list[str], env: Mapping[str, str], what: str) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{what} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


def _poetry_env(home: Path) -> dict[str, str]:
    """The environment every ``poetry`` here runs with: its own config dir (``poetry self``
    writes there), virtualenvs inside the project copies, no JIB_* or POETRY_* from outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JIB_", "POETRY_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(
        POETRY_CONFIG_DIR=str(home / "config"),
        POETRY_VIRTUALENVS_IN_PROJECT="true",
        POETRY_NO_INTERACTION="1",
    )
    return env


def _poetry_home(kind: str, with_plugin: bool) -> Path:
    """A cached venv with Poetry (and the plugin, via ``poetry self add``, if asked)."""
    key = hashlib.sha256()
    key.update(f"{POETRY_SPEC}\0{sys.version}\0{kind}".encode())
    if with_plugin:
        key.update(f"\0{REPO}\0".encode() + (REPO / "pyproject.toml").read_bytes())
    home = cache_dir() / f"poetry-{kind}-{key.hexdigest()[:16]}"
    with _locked(home.with_suffix(".lock")):
        if (home / "ready").is_file():
            return home
        shutil.rmtree(home, ignore_errors=True)
        env = _poetry_env(home)
        _check([sys.executable, "-m", "venv", str(home / "venv")], env, "python -m venv")
        pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        _check([*pip, POETRY_SPEC], env, f"pip install {POETRY_SPEC}")
        if with_plugin:
            poetry = str(home / "venv" / "bin" / "poetry")
            _check([poetry, "self", "add", "--editable", str(REPO)], env, "poetry self add")
        (home / "ready").write_text(POETRY_SPEC + "\n")
    return home


class PoetryCLI:
    """``poetry`` of one cached environment, run on project copies."""

    def __init__(self, home: Path, jib_cache: Path) -> None:
        self.bin = home / "venv" / "bin" / "poetry"
        self.env = _poetry_env(home)
        self.env["JIB_CACHE_DIR"] = str(jib_cache)

    def __call__(
        self, project: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin), "--no-ansi", *args],
            cwd=project,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(scope="session")
def jib_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jib-cache")


@pytest.fixture(scope="session")
def poetry(jib_cache: Path) -> PoetryCLI:
    """Poetry with the plugin installed by ``poetry self add``."""
    return PoetryCLI(_poetry_home("plugin", with_plugin=True), jib_cache)


@pytest.fixture(scope="session")
def locked_project(poetry: PoetryCLI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test project with a poetry.lock made by ``poetry lock``."""
    root = tmp_path_factory.mktemp("poetry-app-locked") / "poetry-app"
    shutil.copytree(PROJECT, root)
    result = poetry(root, "lock")
    assert result.returncode == 0, result.stdout + result.stderr
    lock = (root / "poetry.lock").read_text()
    assert 'type = "directory"' in lock and 'name = "markupsafe"' in lock
    return root


@pytest.fixture
def app(locked_project: Path, tmp_path: Path) -> Path:
    """A fresh copy of the locked test project."""
    root = tmp_path / "poetry-app"
    shutil.copytree(locked_project, root, ignore=shutil.ignore_patterns(".venv"))
    return root


# -- helpers -------------------------------------------------------------------------------------


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed (stderr), checked to be alone and clean."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and 'File "' not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_app(podman: object, ref: str) -> list[str]:
    result = podman.run(ref)  # type: ignore[attr-defined]
    return [line for line in result.stdout.splitlines() if line]


def imports_six(podman: object, ref: str) -> bool:
    result = podman.run(  # type: ignore[attr-defined]
        ref, "-c", "import six", extra=IMPORT_SIX, check=False
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def layer_files(tar_path: Path) -> set[str]:
    """Every path in every layer of an image tarball."""
    names: set[str] = set()
    with tarfile.open(tar_path) as outer:
        for member in outer:
            if not member.isfile() or not member.name.startswith("blobs/"):
                continue
            data = outer.extractfile(member)
            assert data is not None
            with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=data) as layer:
                names.update(layer.getnames())
    return names


# -- the image -----------------------------------------------------------------------------------


def test_push_runs_the_console_script_with_native_and_path_dependencies(
    poetry: PoetryCLI, app: Path, registry: object, base_image_ref: str, podman: object
) -> None:
    ref = f"{registry.host}/poetry-app:1"  # type: ignore[attr-defined]
    out = ok(poetry(app, "jib", "push", "-i", ref, "--from-image", base_image_ref, "-t", "latest"))
    digest = re.search(r"@(sha256:[0-9a-f]{64})", out)
    assert digest, out
    assert "Building wheel" in out and "poetry_app-0.3.0-py3-none-any.whl" in out
    assert "main" in out.splitlines()[0]  # the groups used, main only by default

    podman.pull(ref)  # type: ignore[attr-defined]
    podman.pull(f"{registry.host}/poetry-app@{digest[1]}")  # type: ignore[attr-defined]
    podman.pull(f"{registry.host}/poetry-app:latest")  # type: ignore[attr-defined]
    assert run_app(podman, ref) == APP_OUTPUT
    assert not imports_six(podman, ref)  # the dev group stays out by default


def test_build_writes_a_tarball_podman_loads(
    poetry: PoetryCLI, app: Path, base_image_tar: Path, podman: object
) -> None:
    out_tar = app / "out" / "image.tar"
    out = ok(
        poetry(
            app,
            "jib",
            "build",
            "-i",
            "localhost/poetry-app:tar",
            "--from-image",
            f"tar://{base_image_tar}",
            "--output",
            "out/image.tar",
        )
    )
    assert f"Wrote {out_tar}" in out
    assert "localhost/poetry-app:tar" in podman.load(out_tar)  # type: ignore[attr-defined]
    assert run_app(podman, "localhost/poetry-app:tar") == APP_OUTPUT
    files = layer_files(out_tar)
    assert any(n.endswith("site-packages/localdep/__init__.py") for n in files)
    assert not any("/six" in n for n in files)
    assert not any(n.endswith("not_shipped.txt") for n in files)


def test_quiet_prints_only_the_result(poetry: PoetryCLI, app: Path, base_image_tar: Path) -> None:
    result = poetry(
        app, "jib", "build", "-q", "--from-image", f"tar://{base_image_tar}", "--output", "x.tar"
    )
    assert ok(result).splitlines() == [f"Wrote {app / 'x.tar'}"]
    assert result.stderr == ""


def test_docker_loads_into_podman(
    poetry: PoetryCLI, app: Path, base_image_tar: Path, podman: object, tmp_path: Path
) -> None:
    # No Docker engine answers (a stub `docker` fails `docker info`), so the core loads with
    # podman; containers.conf/storage.conf point that podman at the test bed's private store.
    opts = {
        key.lstrip("-"): value
        for key, _, value in (a.partition("=") for a in podman.global_args[1:])  # type: ignore[attr-defined]
    }
    storage = tmp_path / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "{opts["storage-driver"]}"\n'
        f'graphroot = "{opts["root"]}"\nrunroot = "{opts["runroot"]}"\n'
    )
    containers = tmp_path / "containers.conf"
    containers.write_text(
        f'[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n'
        f'tmp_dir = "{opts["tmpdir"]}"\n'
        f'[network]\nnetwork_config_dir = "{opts["network-config-dir"]}"\n'
    )
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "docker").write_text("#!/bin/sh\nexit 1\n")
    (stub / "docker").chmod(0o755)
    env = {
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_CONF": str(containers),
        "PATH": f"{stub}:{os.environ['PATH']}",
    }
    ref = "localhost/poetry-app:docker"
    out = ok(
        poetry(app, "jib", "docker", "-i", ref, "--from-image", f"tar://{base_image_tar}", env=env)
    )
    assert f"Loaded {ref} into podman" in out
    assert ref in podman.image_names()  # type: ignore[attr-defined]
    assert run_app(podman, ref) == APP_OUTPUT


def test_dev_group_only_with_the_with_option(
    poetry: PoetryCLI, app: Path, base_image_tar: Path, podman: object
) -> None:
    ref = "localhost/poetry-app:dev"
    out = ok(
        poetry(
            app,
            "jib",
            "build",
            "--with",
            "dev",
            "-i",
            ref,
            "--from-image",
            f"tar://{base_image_tar}",
            "--output",
            "dev.tar",
        )
    )
    assert "dev, main" in out.splitlines()[0]
    podman.load(app / "dev.tar")  # type: ignore[attr-defined]
    assert imports_six(podman, ref)
    assert run_app(podman, ref) == APP_OUTPUT
    # --only dev drops main (and so the app's own dependencies' layer loses markupsafe).
    ok(
        poetry(
            app,
            "jib",
            "build",
            "--only",
            "dev",
            "--from-image",
            f"tar://{base_image_tar}",
            "--output",
            "only.tar",
        )
    )
    files = layer_files(app / "only.tar")
    assert any("site-packages/six.py" in n for n in files)
    assert not any("site-packages/markupsafe/" in n for n in files)


# -- failures: one line, Poetry's error format, no traceback -------------------------------------


def test_stale_lock_fails_with_poetry_advice(poetry: PoetryCLI, app: Path) -> None:
    pyproject = app / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"localdep",', '"localdep",\n    "idna (>=3)",')
    )
    line = one_line_error(poetry(app, "jib", "build"))
    assert line == (
        "pyproject.toml changed significantly since poetry.lock was last generated. "
        "Run `poetry lock` to fix the lock file."
    )


def test_missing_lock_fails_with_poetry_advice(poetry: PoetryCLI, app: Path) -> None:
    (app / "poetry.lock").unlink()
    assert "Run `poetry lock`" in one_line_error(poetry(app, "jib", "build"))


def test_unknown_platform_fails_with_one_line(
    poetry: PoetryCLI, app: Path, base_image_tar: Path
) -> None:
    result = poetry(
        app, "jib", "build", "--platform", "windows/zz", "--from-image", f"tar://{base_image_tar}"
    )
    line = one_line_error(result)
    assert "windows/zz" in line


def test_unknown_group_fails_like_poetry_install(poetry: PoetryCLI, app: Path) -> None:
    line = one_line_error(poetry(app, "jib", "build", "--with", "nosuch"))
    assert line == "Group(s) not found: nosuch (via --with)"


def test_unreachable_registry_fails_with_one_line(
    poetry: PoetryCLI, app: Path, base_image_tar: Path
) -> None:
    port = closed_port()
    result = poetry(
        app,
        "jib",
        "push",
        "-i",
        f"127.0.0.1:{port}/poetry-app:1",
        "--from-image",
        f"tar://{base_image_tar}",
    )
    line = one_line_error(result)
    assert f"127.0.0.1:{port}" in line


# -- installation through [tool.poetry.requires-plugins] ----------------------------------------


def test_requires_plugins_installs_the_plugin_for_the_project(
    jib_cache: Path, app: Path, base_image_tar: Path
) -> None:
    bare = PoetryCLI(_poetry_home("bare", with_plugin=False), jib_cache)
    assert "jib build" not in ok(bare(app, "list"))
    pyproject = app / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + f'\n[tool.poetry.requires-plugins]\npyjib = {{ path = "{REPO}", develop = true }}\n'
    )
    # requires-plugins is not part of the lock's content hash, but relock to stay honest.
    ok(bare(app, "lock"))
    out = ok(bare(app, "install"))
    assert "Ensuring that the Poetry plugins required by the project are available" in out
    assert (app / ".poetry" / "plugins").is_dir()
    out = ok(
        bare(app, "jib", "build", "--from-image", f"tar://{base_image_tar}", "--output", "p.tar")
    )
    assert f"Wrote {app / 'p.tar'}" in out


def test_non_package_mode_ships_dependencies_and_the_given_entrypoint(
    poetry: PoetryCLI, app: Path, base_image_tar: Path, podman: object
) -> None:
    pyproject = app / "pyproject.toml"
    text = pyproject.read_text().replace("[tool.poetry]\n", "[tool.poetry]\npackage-mode = false\n")
    code = "import markupsafe, localdep; print('deps ok')"
    entrypoint = f'["/app/.venv/bin/python", "-c", "{code}"]'
    pyproject.write_text(text + f"\n[tool.jib.container]\nentrypoint = {entrypoint}\n")
    ok(poetry(app, "lock"))
    out = ok(
        poetry(app, "jib", "build", "-i", "localhost/poetry-app:nopkg",
               "--from-image", f"tar://{base_image_tar}", "--output", "out/nopkg.tar")
    )  # fmt: skip
    assert "Wrote" in out
    tar = app / "out" / "nopkg.tar"
    assert "localhost/poetry-app:nopkg" in podman.load(tar)  # type: ignore[attr-defined]
    assert podman.run("localhost/poetry-app:nopkg").stdout.strip() == "deps ok"  # type: ignore[attr-defined]
    files = layer_files(tar)
    assert not any("poetry_app" in n for n in files)


# -- a private source with credentials ------------------------------------------------------------


def source_project(project: Path, source: str, url: str) -> Path:
    """A Poetry project whose one dependency, tinypkg 1.0, comes from the explicit ``source``."""
    name = project.name
    (project / name).mkdir(parents=True)
    (project / name / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.0"\nrequires-python = ">=3.11,<4"\n'
        'dependencies = ["tinypkg (==1.0)"]\n\n'
        f'[tool.poetry.dependencies]\ntinypkg = {{ source = "{source}" }}\n\n'
        f'[[tool.poetry.source]]\nname = "{source}"\nurl = "{url}"\npriority = "explicit"\n\n'
        "[tool.jib.container]\n"
        'entrypoint = ["/app/.venv/bin/python", "-c", "import tinypkg"]\n\n'
        '[build-system]\nrequires = ["poetry-core>=2.0,<3"]\n'
        'build-backend = "poetry.core.masonry.api"\n'
    )
    return project


def test_private_source_credentials_reach_the_wheel_download(
    poetry: PoetryCLI, base_image_tar: Path, tmp_path: Path
) -> None:
    """A dependency from a ``[[tool.poetry.source]]`` behind HTTP Basic auth, credentials from
    Poetry's ``POETRY_HTTP_BASIC_<SOURCE>_*`` variables: locked, fetched, in the image; a wrong
    password fails with one line that names the source and shows no secret."""
    from test_private_index import PASSWORD, USER, WHEEL, make_wheel, serve

    data = make_wheel(tmp_path / WHEEL)
    sha = hashlib.sha256(data).hexdigest()
    page = f'<a href="/packages/{WHEEL}#sha256={sha}">{WHEEL}</a>'.encode()
    server = serve(
        {
            "/simple/tinypkg/": (200, {"Content-Type": "text/html"}, page),
            f"/packages/{WHEEL}": (200, {}, data),
        },
        auth=True,
    )
    try:
        project = source_project(tmp_path / "privapp", "private", f"{server.url}/simple/")
        env = {
            "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
            "POETRY_HTTP_BASIC_PRIVATE_USERNAME": USER,
            "POETRY_HTTP_BASIC_PRIVATE_PASSWORD": PASSWORD,
        }
        ok(poetry(project, "lock", env=env))
        lock = (project / "poetry.lock").read_text()
        assert 'reference = "private"' in lock and sha in lock and PASSWORD not in lock

        out_tar = project / "image.tar"
        result = poetry(
            project, "jib", "build", "-vvv", "--from-image", f"tar://{base_image_tar}",
            "--output", str(out_tar), env={**env, "JIB_CACHE_DIR": str(tmp_path / "jib-ok")},
        )  # fmt: skip
        ok(result)
        assert PASSWORD not in result.stdout + result.stderr
        files = layer_files(out_tar)
        assert any(n.endswith("site-packages/tinypkg/__init__.py") for n in files)
        with tarfile.open(out_tar) as outer:
            assert all(
                PASSWORD.encode() not in outer.extractfile(m).read()  # type: ignore[union-attr]
                for m in outer
                if m.isfile()
            )
        assert {h is not None for p, h in server.seen if p.startswith("/packages/")} == {True}

        wrong = {**env, "POETRY_HTTP_BASIC_PRIVATE_PASSWORD": "not-the-Pa55word"}
        result = poetry(
            project, "jib", "build", "--from-image", f"tar://{base_image_tar}",
            env={**wrong, "JIB_CACHE_DIR": str(tmp_path / "jib-wrong")},
        )  # fmt: skip
        line = one_line_error(result)
        assert line == (
            f"the package index {server.url}/simple/ refused the credentials for source private "
            "(401): check `poetry config http-basic.private`"
        )
        assert "not-the-Pa55word" not in result.stdout + result.stderr
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_private_https_source_with_its_own_ca_and_client_certificate(
    poetry: PoetryCLI, base_image_tar: Path, tmp_path: Path
) -> None:
    """A source on HTTPS with a private CA that wants a client certificate, both given as Poetry
    takes them (``certificates.<source>.cert`` / ``.client-cert``, here by their POETRY_*
    variables): Poetry locks through it, and ``poetry jib build`` fetches through it too."""
    from test_index_tls import https_index, make_tls_files
    from test_private_index import WHEEL, make_wheel

    (tmp_path / "tls").mkdir()
    tls = make_tls_files(tmp_path / "tls")
    data = make_wheel(tmp_path / WHEEL)
    httpd = https_index(tls, (WHEEL, data), client_certs=True)
    url = f"https://127.0.0.1:{httpd.server_address[1]}/simple/"
    try:
        project = source_project(tmp_path / "tlsapp", "corp", url)
        env = {
            "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
            "POETRY_CERTIFICATES_CORP_CERT": str(tls.ca),
            "POETRY_CERTIFICATES_CORP_CLIENT_CERT": str(tls.client),
        }
        ok(poetry(project, "lock", env=env))
        out_tar = project / "image.tar"
        result = poetry(
            project, "jib", "build", "--from-image", f"tar://{base_image_tar}",
            "--output", str(out_tar), env={**env, "JIB_CACHE_DIR": str(tmp_path / "jib-ok")},
        )  # fmt: skip
        ok(result)
        assert any(n.endswith("site-packages/tinypkg/__init__.py") for n in layer_files(out_tar))

        # Without the client certificate the index refuses the connection: one line.
        no_cert = {k: v for k, v in env.items() if "CLIENT_CERT" not in k}
        result = poetry(
            project, "jib", "build", "--from-image", f"tar://{base_image_tar}",
            env={**no_cert, "JIB_CACHE_DIR": str(tmp_path / "jib-no-cert")},
        )  # fmt: skip
        assert one_line_error(result).startswith(
            f"cannot reach the package index {url.rstrip('/')}"
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
