"""Package indexes: which ones the user configured, and what files they list for a project.

Index settings, first found wins (CONTRACT.md ``[tool.jib.python]``):
``index-url`` / ``extra-index-urls`` from pyproject, then the lock's own ``--index-url`` lines,
then ``PIP_INDEX_URL`` / ``UV_INDEX_URL`` / ``UV_DEFAULT_INDEX``, then pip's config files
(``global``, then ``install`` section), then PyPI. Files are listed through the simple API:
PEP 691 JSON when the index speaks it, PEP 503 HTML otherwise, and local ``file://`` indexes.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from packaging.utils import canonicalize_name

from jib.errors import JibError

log = logging.getLogger(__name__)

PYPI_SIMPLE = "https://pypi.org/simple"
_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
_MAIN_ENV = ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX")
_EXTRA_ENV = ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX")


def redact(url: str) -> str:
    """``https://user:secret@host/simple`` -> ``https://user:***@host/simple``, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


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
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out.append(IndexFile(path.name, path.as_uri(), {"sha256": digest}))
    return out


class SimpleIndex:
    """Reads project pages from a list of indexes, once per project per build."""

    def __init__(self, client: httpx.Client, config: IndexConfig) -> None:
        self._client = client
        self.config = config
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
            response = self._client.get(page_url, headers={"Accept": _ACCEPT})
        except httpx.HTTPError as err:
            raise JibError(f"cannot reach the package index {redact(index)}: {err}") from None
        if response.status_code == 404:
            return []
        if response.status_code in (401, 403):
            raise JibError(
                f"the package index {redact(index)} refused access ({response.status_code}); "
                "put credentials in the index URL or check [tool.jib.python] index-url"
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
