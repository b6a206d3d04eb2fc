"""A private package index behind HTTP Basic auth: credentials given per index URL reach the
index pages and the file downloads, go nowhere else, and never show in messages or logs."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import zipfile
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.python import sourcebuild
from jib.python.index import IndexAccessError, IndexAuth, redact
from jib.python.locks import LockSet, read_lock
from jib.python.target import TargetPython
from jib.python.wheels import fetch_wheels

USER, PASSWORD = "ci-bot", "s3cret-Pa55word"
WHEEL = "tinypkg-1.0-py3-none-any.whl"
MOVED = "movedpkg-1.0-py3-none-any.whl"


def target() -> TargetPython:
    return TargetPython(
        Platform.parse("linux/amd64"), (3, 11, 2), "/usr/bin/python3.11", ("glibc", (2, 36))
    )


def make_wheel(path: Path) -> bytes:
    """A minimal, valid pure wheel (RECORD with hashes), 1.0 of the project its file name
    gives; the same bytes every time."""
    name = path.name.split("-")[0]
    return make_wheel_of(path, {f"{name}/__init__.py": "VALUE = 42\n"})


def make_wheel_of(path: Path, modules: dict[str, str]) -> bytes:
    """``make_wheel`` holding ``modules`` (archive name -> source)."""
    name = path.name.split("-")[0]
    info = f"{name}-1.0.dist-info"
    files = {
        **{arcname: text.encode() for arcname, text in modules.items()},
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for arcname, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as whl:
        for arcname, data in files.items():
            whl.writestr(zipfile.ZipInfo(arcname, (2020, 1, 1, 0, 0, 0)), data)
    return path.read_bytes()


@dataclass
class Server:
    """One HTTP server on 127.0.0.1, recording each request's path and Authorization header."""

    httpd: ThreadingHTTPServer
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


def serve(routes: dict[str, tuple[int, dict[str, str], bytes]], *, auth: bool) -> Server:
    """``routes``: path -> (status, headers, body); with ``auth``, Basic USER:PASSWORD or 401."""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    server: Server

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # uv asks for a wheel's size before reading its metadata
            self.do_GET(body=False)

        def do_GET(self, body: bool = True) -> None:
            header = self.headers.get("Authorization")
            server.seen.append((self.path, header))
            if auth and header != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, headers, content = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if body:
                self.wfile.write(content)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server = Server(httpd)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server


@dataclass
class Index:
    private: Server  # the index, behind auth
    mirror: Server  # another origin, no auth: where /packages/moved/ redirects
    wheel_sha: str
    moved_sha: str

    @property
    def simple(self) -> str:
        return f"{self.private.url}/simple/"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    data = make_wheel(tmp_path / WHEEL)
    sha = hashlib.sha256(data).hexdigest()
    moved = make_wheel(tmp_path / MOVED)
    moved_sha = hashlib.sha256(moved).hexdigest()
    html = {"Content-Type": "text/html"}
    mirror = serve({f"/files/{MOVED}": (200, {}, moved)}, auth=False)
    # Files beside /simple/, not below it (as Artifactory and Nexus serve them).
    private = serve(
        {
            "/simple/tinypkg/": (
                200,
                html,
                f'<a href="../../packages/{WHEEL}#sha256={sha}">{WHEEL}</a>'.encode(),
            ),
            "/simple/movedpkg/": (
                200,
                html,
                f'<a href="/packages/moved/{MOVED}#sha256={moved_sha}">{MOVED}</a>'.encode(),
            ),
            f"/packages/{WHEEL}": (200, {}, data),
            f"/packages/moved/{MOVED}": (302, {"Location": f"{mirror.url}/files/{MOVED}"}, b""),
        },
        auth=True,
    )
    yield Index(private, mirror, sha, moved_sha)
    for server in (private, mirror):
        server.httpd.shutdown()
        server.httpd.server_close()


def pinned(project: Path, index_url: str, name: str, sha256: str) -> LockSet:
    """The lock of a project ``project`` needing ``name`` 1.0 (hash-pinned) from ``index_url``."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "1"\n')
    (project / "requirements.txt").write_text(
        f"--index-url {index_url}\n{name}==1.0 --hash=sha256:{sha256}\n"
    )
    return read_lock(project, target=target())


def lockset(tmp_path: Path, index: Index, name: str = "tinypkg") -> LockSet:
    sha = index.wheel_sha if name == "tinypkg" else index.moved_sha
    return pinned(tmp_path / "proj", index.simple, name, sha)


def secrets_in(text: str) -> bool:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return PASSWORD in text or token in text


def test_credentials_reach_the_index_pages_and_the_files(
    index: Index, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wheels = fetch_wheels(
        lockset(tmp_path, index),
        target(),
        cache_dir=tmp_path / "cache",
        auth={index.simple: (USER, PASSWORD)},
    )
    assert [(w.name, w.filename, w.sha256) for w in wheels] == [("tinypkg", WHEEL, index.wheel_sha)]
    assert hashlib.sha256(wheels[0].path.read_bytes()).hexdigest() == index.wheel_sha
    paths = [path for path, _ in index.private.seen]
    assert paths == ["/simple/tinypkg/", f"/packages/{WHEEL}"]
    assert all(header and header.startswith("Basic ") for _, header in index.private.seen)
    assert caplog.records  # httpx and httpcore did log, at DEBUG
    assert not any(secrets_in(r.getMessage()) for r in caplog.records)
    assert not any(secrets_in(p.read_bytes().decode("latin-1")) for p in tmp_path.rglob("*.json"))


def test_without_credentials_one_line_naming_the_index(index: Index, tmp_path: Path) -> None:
    with pytest.raises(IndexAccessError) as err:
        fetch_wheels(lockset(tmp_path, index), target(), cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert message == (
        f"the package index {index.simple.rstrip('/')} refused access (401); put credentials "
        "in the index URL or check [tool.jib.python] index-url"
    )
    assert not err.value.credentials and err.value.status == 401
    assert index.private.seen == [("/simple/tinypkg/", None)]


def test_wrong_password_one_line_without_the_secret(
    index: Index, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Secret-Value"
    with pytest.raises(JibError) as err:
        fetch_wheels(
            lockset(tmp_path, index),
            target(),
            cache_dir=tmp_path / "cache",
            auth={index.simple: (USER, wrong)},
        )
    assert isinstance(err.value, IndexAccessError) and err.value.credentials
    message = str(err.value)
    assert "\n" not in message and wrong not in message and USER not in message
    assert "refused the credentials given for it (401)" in message
    assert not any(wrong in r.getMessage() for r in caplog.records)


def test_credentials_in_the_index_url_still_work(index: Index, tmp_path: Path) -> None:
    """Userinfo in the URL (the way [tool.jib.python] index-url takes credentials) wins."""
    url = index.simple.replace("http://", f"http://{USER}:{PASSWORD}@")
    locks = pinned(tmp_path / "proj", url, "tinypkg", index.wheel_sha)
    other = {"http://127.0.0.1:1/simple/": ("x", "y")}  # auth on: userinfo must still be used
    wheels = fetch_wheels(locks, target(), cache_dir=tmp_path / "cache", auth=other)
    assert wheels[0].sha256 == index.wheel_sha


def test_a_redirect_to_another_origin_does_not_carry_the_credentials(
    index: Index, tmp_path: Path
) -> None:
    wheels = fetch_wheels(
        lockset(tmp_path, index, "movedpkg"),
        target(),
        cache_dir=tmp_path / "cache",
        auth={index.simple: (USER, PASSWORD)},
    )
    assert wheels[0].sha256 == index.moved_sha
    assert [p for p, h in index.private.seen if h] == [
        "/simple/movedpkg/",
        f"/packages/moved/{MOVED}",
    ]
    assert index.mirror.seen == [(f"/files/{MOVED}", None)]


def test_which_urls_get_which_credentials() -> None:
    auth = IndexAuth(
        {
            "https://repo.example/api/pypi/team-a/simple/": ("a", "pa"),
            "https://repo.example/api/pypi/team-b/simple": ("b", "pb"),
            "http://other.example:8080/simple/": ("c", "pc"),
        }
    )
    assert auth.index_for("https://repo.example/api/pypi/team-b/packages/x.whl") == (
        "https://repo.example/api/pypi/team-b/simple"
    )
    assert auth.index_for("https://repo.example/api/pypi/team-a/simple/six/") == (
        "https://repo.example/api/pypi/team-a/simple/"
    )
    assert auth.index_for("https://repo.example/files/x.whl") is not None  # same origin
    assert auth.index_for("http://repo.example/api/pypi/team-a/simple/") is None  # not https
    assert auth.index_for("https://repo.example:8443/api/pypi/team-a/simple/") is None
    assert auth.index_for("https://files.example/x.whl") is None
    assert auth.index_for("http://other.example:8080/simple/six/") is not None
    assert auth.index_for("http://other.example/simple/six/") is None
    assert "pa" not in repr(auth) and "pb" not in repr(auth)


def test_redact_hides_passwords_and_token_user_names() -> None:
    assert redact("https://u:pw@h.example:8443/simple") == "https://u:***@h.example:8443/simple"
    assert redact("https://TOKEN@h.example/simple") == "https://***@h.example/simple"
    assert redact("https://h.example/simple") == "https://h.example/simple"


# -- an sdist whose build backend is only on the private index ---------------------------------

BACKEND = '''\
"""A PEP 517 backend for the test: a pure wheel of <name>/__init__.py."""
import base64, hashlib, os, tomllib, zipfile


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    name, version = project["name"], project["version"]
    info = f"{name}-{version}.dist-info"
    with open(f"{name}/__init__.py", "rb") as f:
        files = {f"{name}/__init__.py": f.read()}
    meta = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for arcname, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\\n".join(record + [f"{info}/RECORD,,"]) + "\\n").encode()
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as whl:
        for arcname, data in files.items():
            whl.writestr(arcname, data)
    return filename
'''


def make_sdist(path: Path) -> bytes:
    """``sdistpkg-1.0.tar.gz``: built by ``tinybackend``, which only the private index has."""
    import io
    import tarfile

    files = {
        "pyproject.toml": '[build-system]\nrequires = ["tinybackend"]\n'
        'build-backend = "tinybackend"\n\n[project]\nname = "sdistpkg"\nversion = "1.0"\n',
        "PKG-INFO": "Metadata-Version: 2.1\nName: sdistpkg\nVersion: 1.0\n",
        "sdistpkg/__init__.py": "FROM_SDIST = True\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"sdistpkg-1.0/{name}")
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def test_an_sdist_build_gets_its_backend_from_the_private_index_with_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # nothing cached: fetch all
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # and no netrc of this machine's
    backend_whl = "tinybackend-1.0-py3-none-any.whl"
    backend = make_wheel_of(tmp_path / backend_whl, {"tinybackend/__init__.py": BACKEND})
    sdist = make_sdist(tmp_path / "sdistpkg-1.0.tar.gz")
    html = {"Content-Type": "text/html"}
    backend_sha, sdist_sha = hashlib.sha256(backend).hexdigest(), hashlib.sha256(sdist).hexdigest()
    private = serve(
        {
            "/simple/tinybackend/": (
                200,
                html,
                f'<a href="/packages/{backend_whl}#sha256={backend_sha}">{backend_whl}'
                "</a>".encode(),
            ),
            "/simple/sdistpkg/": (
                200,
                html,
                f'<a href="/packages/sdistpkg-1.0.tar.gz#sha256={sdist_sha}">sdistpkg-1.0.tar.gz'
                "</a>".encode(),
            ),
            f"/packages/{backend_whl}": (200, {}, backend),
            "/packages/sdistpkg-1.0.tar.gz": (200, {}, sdist),
        },
        auth=True,
    )
    try:
        simple = f"{private.url}/simple/"
        locks = pinned(tmp_path / "proj", simple, "sdistpkg", sdist_sha)
        auth = {simple: (USER, PASSWORD)}
        # pyjib's own requests carry the credentials; without the netrc uv cannot get the backend.
        with monkeypatch.context() as patch:
            patch.setattr(sourcebuild, "netrc_environment", lambda *_: nullcontext({}))
            with pytest.raises(JibError) as err:
                fetch_wheels(locks, target(), cache_dir=tmp_path / "c1", auth=auth)
        message = str(err.value)
        assert message.startswith("building a wheel of sdistpkg==1.0") and "\n" not in message
        assert PASSWORD not in message

        (wheel,) = fetch_wheels(locks, target(), cache_dir=tmp_path / "c2", auth=auth)
        assert wheel.filename == "sdistpkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel.path) as whl:
            assert whl.read("sdistpkg/__init__.py") == b"FROM_SDIST = True\n"
        # uv asks without credentials first and answers the 401 from the netrc file.
        backend_fetches = [h for p, h in private.seen if p.endswith(backend_whl)]
        assert any(h and h.startswith("Basic ") for h in backend_fetches)
        assert not list(tmp_path.glob("**/pyjib-netrc-*"))  # the netrc file is gone
    finally:
        private.httpd.shutdown()
        private.httpd.server_close()


def test_the_netrc_file_is_private_holds_only_the_indexes_and_keeps_the_users_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    from jib.python.netrcfile import netrc_environment

    own = tmp_path / "own-netrc"
    own.write_text("machine git.example login me password mine\n")
    monkeypatch.setenv("NETRC", str(own))
    auth = IndexAuth(
        {
            "https://repo.example/simple/": (USER, PASSWORD),
            "https://spaced.example/simple/": ("user", "has a space"),
        }
    )
    urls = ["https://repo.example/simple/", "https://spaced.example/simple/", "https://pypi.org/"]
    with netrc_environment(auth, urls) as env:
        path = Path(env["NETRC"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
    assert not path.exists()
    assert text.splitlines() == [
        f"machine repo.example login {USER} password {PASSWORD}",
        "machine git.example login me password mine",
    ]
    with netrc_environment(IndexAuth({}), urls) as env:
        assert env == {}  # nothing to pass: the user's own netrc stays as it is
