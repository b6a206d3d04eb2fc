"""A real distribution 2.8 registry (``docker-registry serve``) on 127.0.0.1, for end-to-end tests.

Variants: no auth or htpasswd Basic or token auth (via tokenserver.TokenServer), each over plain
HTTP or TLS with a throwaway CA. Configs follow oci.md §6, where each one was verified.

The registry runs in its own session (process group) with a parent-death signal, is stopped with
SIGTERM then SIGKILL, and an atexit hook stops any left running, so no registry outlives pytest.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs

import bcrypt
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import HarnessError, require_tool
from .tokenserver import TokenServer, issue_cert, self_signed_ca

Auth = Literal["none", "basic", "token"]

# The test bed's own requests carry this query parameter; requests() leaves them out.
_MARKER = "pyjib-testbed"
# The combined access log distribution writes to stdout, one line per finished request:
# 127.0.0.1 - - [04/Dec/2026:15:34:16 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
_ACCESS_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) ')
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


class Request(NamedTuple):
    """One request from the registry's access log. ``path`` is the request target as logged,
    query string included."""

    method: str
    path: str
    status: int

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.partition("?")[0]

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.path.partition("?")[2])


class Registry:
    """One ``docker-registry`` process with its own storage, config and (maybe) auth and TLS."""

    def __init__(
        self,
        auth: Auth = "none",
        tls: bool = False,
        *,
        username: str = "pyjib",
        password: str = "s3cret-pw",
        anonymous_pull: bool = False,
        base_dir: Path | None = None,
    ) -> None:
        self.auth: Auth = auth
        self.tls = tls
        self.username = username
        self.password = password
        self.anonymous_pull = anonymous_pull
        self._base_dir = base_dir
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._sync_seq = itertools.count()
        self.token_server: TokenServer | None = None

    # -- addresses and credentials -----------------------------------------------------------

    @property
    def variant(self) -> str:
        """One of plain, basic, token, tls, basic+tls, token+tls."""
        if self.auth == "none":
            return "tls" if self.tls else "plain"
        return f"{self.auth}+tls" if self.tls else self.auth

    @property
    def port(self) -> int:
        if self._port is None:
            raise HarnessError("registry not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """The registry's process ID (its process group too), or None when stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def credentials(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.auth != "none" else None

    @property
    def ca_path(self) -> Path | None:
        """PEM of the CA that signed the server certificate (TLS variants only)."""
        return self._path("ca.crt") if self.tls else None

    @property
    def cert_dir(self) -> Path | None:
        """A directory holding only ``ca.crt``, for skopeo/podman ``--cert-dir``."""
        return self._path("certs.d") if self.tls else None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's ``verify=`` to trust this registry."""
        if self.ca_path is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this registry (base URL and CA set; no credentials)."""
        return httpx.Client(base_url=self.url, verify=self.verify, **kwargs)

    def _path(self, name: str) -> Path:
        if self._dir is None:
            raise HarnessError("registry not started")
        return self._dir / name

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Registry:
        """Start the registry and return once ``/v2/`` answers."""
        if self._proc is not None:
            return self
        binary = require_tool("docker-registry")
        self._dir = Path(tempfile.mkdtemp(prefix="pyjib-registry-", dir=self._base_dir))
        atexit.register(self.stop)
        try:
            self._prepare()
            # The free port can be taken by someone else before the registry binds it.
            for _attempt in range(5):
                if self._spawn(binary):
                    return self
            raise HarnessError("docker-registry could not bind a free port in 5 attempts")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)
        if self.token_server is not None:
            self.token_server.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        atexit.unregister(self.stop)

    def _prepare(self) -> None:
        root = self._path("")
        (root / "data").mkdir()
        if self.tls:
            _write_tls_files(root)
        if self.auth == "basic":
            # The registry checks the hash on every request; cost 12 would add ~0.25 s to each.
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (root / "htpasswd").write_text(f"{self.username}:{hashed}\n")
        elif self.auth == "token":
            self.token_server = TokenServer(
                {self.username: self.password}, anonymous_pull=self.anonymous_pull
            ).start()
            (root / "token-bundle.crt").write_bytes(self.token_server.bundle_pem)

    def _config(self, port: int) -> dict[str, object]:
        root = self._path("")
        http: dict[str, object] = {"addr": f"127.0.0.1:{port}", "secret": "pyjib-testbed-secret"}
        if self.tls:
            http["tls"] = {"certificate": str(root / "server.crt"), "key": str(root / "server.key")}
        config: dict[str, object] = {
            "version": 0.1,
            # info level is what makes 2.8 write the per-request access log to stdout.
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
            },
            "http": http,
        }
        if self.auth == "basic":
            config["auth"] = {"htpasswd": {"realm": "pyjib-test", "path": str(root / "htpasswd")}}
        elif self.auth == "token":
            assert self.token_server is not None
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(root / "token-bundle.crt"),
                }
            }
        return config

    def _spawn(self, binary: str) -> bool:
        """Start on a fresh port; False if the port was taken, HarnessError on other failures."""
        port = _free_port()
        root = self._path("")
        cfg = root / "config.yml"
        # JSON is YAML, and saves a PyYAML dependency.
        cfg.write_text(json.dumps(self._config(port), indent=2))
        argv = [binary, "serve", str(cfg)]
        if setpriv := shutil.which("setpriv"):
            # Dies with pytest even on SIGKILL, where atexit never runs. (The signal fires when
            # the *thread* that started it exits, so start registries from the main thread.)
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        # Files, not pipes: nobody drains a pipe, and a full one would stall the registry.
        with open(root / "stdout.log", "wb") as out, open(root / "stderr.log", "wb") as err:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )
        self._port = port
        deadline = time.monotonic() + _START_TIMEOUT
        with self.client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    err = (root / "stderr.log").read_text(errors="replace")
                    self._proc = None
                    if "address already in use" in err:
                        return False
                    raise HarnessError(f"docker-registry exited early:\n{err[-2000:]}")
                try:
                    client.get("/v2/", params={_MARKER: "probe"})
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                return True
        raise HarnessError(f"docker-registry did not answer on {self.url} in {_START_TIMEOUT}s")

    # -- access log --------------------------------------------------------------------------

    def requests(self, since: int = 0) -> list[Request]:
        """The requests the registry has answered, in the order it finished them.

        ``since`` is a value from ``mark()``: only requests after it are returned.
        """
        if self._proc is None:
            raise HarnessError("registry not running")
        self._sync()
        text = self._path("stdout.log").read_text(errors="replace")
        out = []
        for line in text.splitlines():
            m = _ACCESS_LINE.match(line)
            if m and _MARKER not in m.group(2):
                out.append(Request(m.group(1), m.group(2), int(m.group(3))))
        return out[since:]

    def mark(self) -> int:
        """A position in the access log, for ``requests(since=...)``."""
        return len(self.requests())

    def _sync(self) -> None:
        # 2.8 writes a line after the handler returns, which for streamed bodies can be after the
        # client has the whole response. A request of our own, once logged, flushes that race.
        token = f"sync-{next(self._sync_seq)}"
        with self.client(timeout=5.0) as client:
            client.get("/v2/", params={_MARKER: token})
        log = self._path("stdout.log")
        deadline = time.monotonic() + 5.0
        while f"{_MARKER}={token} " not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise HarnessError("docker-registry did not log the test bed's sync request")
            time.sleep(0.01)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _write_tls_files(root: Path) -> None:
    """A throwaway CA (``ca.crt``, also as ``certs.d/ca.crt``) and a server cert it signed."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = self_signed_ca(ca_key, "pyjib test CA")
    cert, key = issue_cert(ca_key, ca_cert, server=True)
    pem = serialization.Encoding.PEM
    (root / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (root / "certs.d").mkdir()
    (root / "certs.d" / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (root / "server.crt").write_bytes(cert.public_bytes(pem))
    (root / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
