"""Package indexes: which ones the user configured, and what files they list for a project.

Index settings, first found wins (CONTRACT.md ``[tool.jib.python]``):
``index-url`` / ``extra-index-urls`` from pyproject, then the lock's own ``--index-url`` lines,
then ``PIP_INDEX_URL`` / ``UV_INDEX_URL`` / ``UV_DEFAULT_INDEX``, then pip's config files
(``global``, then ``install`` section), then PyPI. Files are listed through the simple API:
PEP 691 JSON when the index speaks it, PEP 503 HTML otherwise, and local ``file://`` indexes.
"""

from __future__ import annotations

import base64
import configparser
import logging
import os
import threading
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from packaging.utils import canonicalize_name

from jib.errors import JibError
from jib.image.digest import Digest
from jib.python.indextls import IndexTLS, index_transport, origin

log = logging.getLogger(__name__)

PYPI_SIMPLE = "https://pypi.org/simple"
_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
_MAIN_ENV = ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX")
_EXTRA_ENV = ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX")


def redact(url: str) -> str:
    """A URL fit for messages: ``https://user:secret@host/simple`` -> ``https://user:***@host/simple``;
    a user name alone (often a token, ``https://TOKEN@host``) -> ``https://***@host``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.password is not None else "***"
    netloc = f"{user}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


#: HTTP Basic credentials per index URL: ``{"https://repo.example/simple/": (user, password)}``.
IndexCredentials = Mapping[str, tuple[str, str]]


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


class IndexAuth(httpx.Auth):
    """HTTP Basic credentials for package indexes, each sent only where it belongs.

    Poetry's rule (``poetry.utils.authenticator``): an index's credentials go to every URL of the
    same origin (scheme, host and port), because PEP 503 places no constraint on where an index
    keeps its files (Artifactory and Nexus serve them beside ``/simple/``, not below it); among
    several indexes on one origin, the one sharing the most leading path segments with the URL
    wins, ties to the first given. Nothing is sent to another origin, and httpx drops the
    ``Authorization`` header when a redirect leaves the origin. Credentials in a URL's own
    userinfo win (as without this auth). The secrets are never part of ``repr``.
    """

    def __init__(self, credentials: IndexCredentials) -> None:
        self._entries = [
            (url, httpx.URL(url), (str(user), str(password)))
            for url, (user, password) in credentials.items()
        ]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __repr__(self) -> str:
        return f"IndexAuth({', '.join(redact(url) for url, _, _ in self._entries)})"

    def index_for(self, url: str | httpx.URL) -> str | None:
        """The configured index URL (as given) whose credentials ``url`` gets, if any."""
        found = self._match(httpx.URL(str(url)))
        return found[0] if found is not None else None

    def credentials_for(self, url: str) -> tuple[str, str] | None:
        """The (user, password) that requests to ``url`` get, if any."""
        found = self._match(httpx.URL(url))
        return found[1] if found is not None else None

    def _match(self, url: httpx.URL) -> tuple[str, tuple[str, str]] | None:
        path = _segments(url.path)
        best: tuple[str, tuple[str, str]] | None = None
        best_shared = -1
        for given, index, cred in self._entries:
            if origin(index) != origin(url):
                continue
            shared = 0
            for a, b in zip(_segments(index.path), path, strict=False):
                if a != b:
                    break
                shared += 1
            if shared > best_shared:
                best, best_shared = (given, cred), shared
        return best

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "Authorization" not in request.headers:
            url = request.url
            if url.username or url.password:
                user, password = url.username, url.password
            elif (found := self._match(url)) is not None:
                user, password = found[1]
            else:
                user = password = None
            if user is not None and password is not None:
                token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
                request.headers["Authorization"] = f"Basic {token}"
        yield request


class IndexAccessError(JibError):
    """A package index (or a file it lists) answered 401/403."""

    def __init__(self, url: str, status: int, *, credentials: bool, what: str = "") -> None:
        self.url = _without_userinfo(url)
        self.status = status
        #: Whether the refused request carried credentials.
        self.credentials = credentials
        subject = f"serving {what} ({redact(url)})" if what else redact(url)
        if credentials:
            detail = f"refused the credentials given for it ({status}); check them"
        else:
            detail = (
                f"refused access ({status}); put credentials in the index URL or check "
                "[tool.jib.python] index-url"
            )
        super().__init__(f"the package index {subject} {detail}")


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@dataclass(frozen=True)
class IndexConfig:
    index_url: str = PYPI_SIMPLE
    extra_index_urls: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls)


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, lowest priority first (global, user, site, PIP_CONFIG_FILE)."""
    if environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs.split(":")) if d]
    files.append(Path("/etc/pip.conf"))
    home = Path(environ.get("HOME") or Path.home())
    files.append(home / ".pip" / "pip.conf")
    files.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf")
    if environ.get("VIRTUAL_ENV"):
        files.append(Path(environ["VIRTUAL_ENV"]) / "pip.conf")
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return files


def _pip_config(files: Iterable[Path]) -> dict[str, str]:
    values: dict[str, str] = {}
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error) as err:
            log.warning("ignoring unreadable pip config %s: %s", path, err)
            continue
        for section in ("global", "install"):  # pip install reads [install] over [global]
            if parser.has_section(section):
                for key in ("index-url", "extra-index-url"):
                    if parser.has_option(section, key):
                        values[key] = parser.get(section, key)
    return values


def _split(text: str) -> list[str]:
    # UV_INDEX entries may be "name=url".
    return [u.split("=", 1)[1] if "=" in u.split("://")[0] else u for u in text.split()]


def index_config(
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    *,
    lock_index_url: str | None = None,
    lock_extra_index_urls: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    config_files: Sequence[Path] | None = None,
) -> IndexConfig:
    """The indexes to use, from the settings in the order the module docstring gives."""
    env = os.environ if environ is None else environ
    pip = _pip_config(pip_config_files(env) if config_files is None else config_files)
    main = (
        index_url
        or lock_index_url
        or next((env[k] for k in _MAIN_ENV if env.get(k)), None)
        or pip.get("index-url")
        or PYPI_SIMPLE
    )
    if extra_index_urls:
        extras = list(extra_index_urls)
    else:
        env_extras = [u for k in _EXTRA_ENV for u in _split(env.get(k, ""))]
        extras = env_extras or _split(pip.get("extra-index-url", ""))
    extras += lock_extra_index_urls
    unique = [u.rstrip("/") for u in dict.fromkeys(extras) if u.rstrip("/") != main.rstrip("/")]
    return IndexConfig(main.rstrip("/"), tuple(dict.fromkeys(unique)))


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    hashes: Mapping[str, str] = field(default_factory=dict, hash=False)
    requires_python: str | None = None
    yanked: bool = False


class _Links(HTMLParser):
    """PEP 503 anchors: href (with ``#sha256=``), data-requires-python, data-yanked."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def _from_html(text: str, page_url: str) -> list[IndexFile]:
    parser = _Links()
    parser.feed(text)
    out = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        url, _, fragment = urljoin(page_url, href).partition("#")
        algo, _, value = fragment.partition("=")
        out.append(
            IndexFile(
                filename=unquote(urlsplit(url).path.rsplit("/", 1)[-1]),
                url=url,
                hashes={algo: value.lower()} if value else {},
                requires_python=link.get("data-requires-python"),
                yanked="data-yanked" in link,
            )
        )
    return out


def _from_json(data: Mapping[str, object], page_url: str) -> list[IndexFile]:
    out = []
    for item in data.get("files") or ():  # type: ignore[attr-defined]
        out.append(
            IndexFile(
                filename=item["filename"],
                url=urljoin(page_url, item["url"]),
                hashes={k.lower(): v.lower() for k, v in (item.get("hashes") or {}).items()},
                requires_python=item.get("requires-python"),
                yanked=bool(item.get("yanked")),
            )
        )
    return out


def _from_directory(root: Path, project: str) -> list[IndexFile]:
    """A ``file://`` index: ``<root>/<project>/index.html`` or the files in that directory."""
    folder = root / project
    if (folder / "index.html").is_file():
        return _from_html((folder / "index.html").read_text("utf-8"), folder.as_uri() + "/")
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.endswith((".whl", ".tar.gz", ".zip")):
            digest = Digest.of_file(path)[0].hex
            out.append(IndexFile(path.name, path.as_uri(), {"sha256": digest}))
    return out


class LazyClient:
    """An httpx client made on first use: a build whose wheels are all cached never needs one,
    and making one costs ~20 ms (loading the CA bundle), a tenth of a no-op build's own work."""

    def __init__(self, tls: Mapping[str, IndexTLS] | None = None) -> None:
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._tls = dict(tls or {})

    def _made(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                timeout = httpx.Timeout(60.0, connect=20.0)
                transport = index_transport(self._tls)
                self._client = httpx.Client(
                    follow_redirects=True,
                    timeout=timeout,
                    transport=transport,
                    trust_env=transport is None,  # else the transport applies the proxies
                )
            return self._client

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._made().get(url, **kwargs)

    def stream(self, method: str, url: str, **kwargs: Any) -> Any:
        return self._made().stream(method, url, **kwargs)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class SimpleIndex:
    """Reads project pages from a list of indexes, once per project per build."""

    def __init__(
        self,
        client: httpx.Client | LazyClient,
        config: IndexConfig,
        auth: IndexAuth | None = None,
    ) -> None:
        self._client = client
        self.config = config
        self.auth = auth
        #: Per-request ``auth=`` only when credentials are configured: the client's own
        #: behaviour (userinfo in the URL) is otherwise left as it is.
        self.request_kwargs: dict[str, object] = {"auth": auth} if auth else {}
        self._pages: dict[tuple[str, str], list[IndexFile]] = {}
        self._lock = threading.Lock()

    def _page(self, index: str, project: str) -> list[IndexFile]:
        key = (index, project)
        with self._lock:
            if key in self._pages:
                return self._pages[key]
        if index.startswith("file:"):
            root = Path(unquote(urlsplit(index).path))
            if not root.is_dir():
                log.debug("skipping missing local index %s", index)
                files: list[IndexFile] = []
            else:
                files = _from_directory(root, project)
        else:
            files = self._fetch(index, project)
        with self._lock:
            self._pages[key] = files
        return files

    def _fetch(self, index: str, project: str) -> list[IndexFile]:
        page_url = f"{index.rstrip('/')}/{project}/"
        try:
            response = self._client.get(
                page_url,
                headers={"Accept": _ACCEPT},
                **self.request_kwargs,  # type: ignore[arg-type]
            )
        except httpx.HTTPError as err:
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in str(err):
                hint = (
                    "; its certificate is not trusted: give its CA bundle (SSL_CERT_FILE, or "
                    "Poetry's certificates.<source>.cert)"
                )
            raise JibError(f"cannot reach the package index {redact(index)}: {err}{hint}") from None
        if response.status_code == 404:
            return []
        if response.status_code in (401, 403):
            raise IndexAccessError(
                index,
                response.status_code,
                credentials="Authorization" in response.request.headers,
            )
        if response.status_code >= 400:
            raise JibError(
                f"the package index {redact(index)} answered {response.status_code} for {project}"
            )
        base = str(response.url)
        if "json" in response.headers.get("content-type", ""):
            return _from_json(response.json(), base)
        return _from_html(response.text, base)

    def files(self, name: str, prefer: str | None = None) -> list[IndexFile]:
        """Every file any index lists for ``name``; ``prefer``'s (the lock's index) first."""
        project = canonicalize_name(name)
        indexes = list(self.config.urls)
        if prefer and prefer.rstrip("/") not in indexes:
            indexes.insert(0, prefer.rstrip("/"))
        elif prefer:
            indexes.remove(prefer.rstrip("/"))
            indexes.insert(0, prefer.rstrip("/"))
        out: list[IndexFile] = []
        for index in indexes:
            out += self._page(index, project)
        return out


def uv_index_args(config: IndexConfig) -> list[str]:
    """uv's ``--default-index``/``--index`` options for ``config``; a local ``file://`` index
    that does not exist is left out (pip only warns about it; uv would fail).

    These settings mean pip's ``index-url``/``extra-index-url``, where every index is equal and
    the best version wins; uv's default would stop at the first index that has the project.
    """
    args = ["--default-index", config.index_url]
    extras = [
        url
        for url in config.extra_index_urls
        if not url.startswith("file:") or Path(unquote(urlsplit(url).path)).is_dir()
    ]
    for url in extras:
        args += ["--index", url]
    if extras:
        args += ["--index-strategy", "unsafe-best-match"]
    return args
