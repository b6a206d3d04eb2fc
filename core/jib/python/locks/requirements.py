"""``requirements.txt`` with pinned versions and ``--hash`` options (pip's format).

What is understood: ``name==version [; marker] --hash=...`` lines (with backslash
continuations), ``name @ URL``, bare paths/URLs (``./libs/x``, ``file:...``, ``git+...``),
``-e``/``--editable`` (installed as a regular wheel), ``-r`` includes, ``-i``/``--index-url``
and ``--extra-index-url``. Other pip options are ignored with a warning.

Extras: an ``extra == "x"`` marker makes a line part of extra ``x`` (pip evaluates ``extra``
as empty, so it skips such lines, and pyjib installs them only when ``x`` is asked).
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from jib.errors import JibError
from jib.python.locks._toml import load_toml
from jib.python.locks.model import LockedFile, LockedPackage
from jib.python.markers import evaluate
from jib.python.target import TargetPython

log = logging.getLogger(__name__)

_IGNORED = {"-f", "--find-links", "--trusted-host", "--pre", "--prefer-binary", "--no-binary",
            "--only-binary", "--no-index", "--use-feature", "--require-hashes", "-c",
            "--constraint", "--config-settings"}  # fmt: skip
_NAME_FRAGMENT = re.compile(r"[#&]egg=([A-Za-z0-9._-]+)")


@dataclass
class Requirements:
    packages: list[LockedPackage] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()  # comments, but not URL fragments
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            out.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        out.append((start, buffer.strip()))
    return out


def _local_name(path: Path) -> str:
    """The project name of a local directory (its pyproject), or of an archive (its file name)."""
    if not path.is_dir():
        try:
            if path.name.endswith(".whl"):
                return parse_wheel_filename(path.name)[0]
            return parse_sdist_filename(path.name)[0]
        except (InvalidWheelFilename, InvalidSdistFilename):
            raise JibError(
                f"cannot tell the project name of {path.name}: write `name @ ...`"
            ) from None
    pyproject = path / "pyproject.toml"
    if pyproject.is_file():
        name = (load_toml(pyproject).get("project") or {}).get("name")
        if name:
            return canonicalize_name(name)
    return canonicalize_name(path.name)


def _direct(
    target_text: str, name: str | None, base: Path, where: str, hashes: list[str]
) -> LockedPackage:
    """A package named by a path or URL rather than by a version on an index."""
    if fragment := _NAME_FRAGMENT.search(target_text):
        name = name or fragment.group(1)
    url = target_text.split("#", 1)[0]
    if url.startswith("git+"):
        if not name:
            raise JibError(f"{where}: name the VCS requirement (`name @ {url}`)")
        return LockedPackage(name, None, source_kind="git", url=url)
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        name = name or _local_name(Path(filename))
        algo_hashes = dict(h.split(":", 1) for h in hashes)
        file = LockedFile(url=url, filename=filename, hashes=algo_hashes)
        version = _archive_version(filename)
        return LockedPackage(name, version, files=(file,), source_kind="url", url=url)
    path = Path(unquote(urlsplit(url).path)) if scheme == "file" else Path(url).expanduser()
    path = (base / path).resolve()
    if not path.exists():
        raise JibError(f"{where}: {path} does not exist")
    name = name or _local_name(path)
    if path.is_dir():
        return LockedPackage(name, None, source_kind="directory", path=path)
    algo_hashes = dict(h.split(":", 1) for h in hashes)
    file = LockedFile(url=None, filename=path.name, hashes=algo_hashes, path=path)
    version = _archive_version(path.name)
    return LockedPackage(name, version, files=(file,), source_kind="path", path=path)


def _archive_version(filename: str) -> str | None:
    """The version an archive's file name carries (None when it does not follow the specs)."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _is_direct(text: str) -> bool:
    return text.startswith((".", "/", "~", "file:", "git+", "http://", "https://")) or (
        "/" in text and not re.match(r"^[A-Za-z0-9._-]+\s*(\[|@|==|;|$)", text)
    )


def read_requirements(
    path: Path,
    *,
    target: TargetPython,
    extras: Collection[str] = (),
    project_dir: Path | None = None,
    _seen: set[Path] | None = None,
) -> Requirements:
    seen = _seen if _seen is not None else set()
    if path.resolve() in seen:
        return Requirements()
    seen.add(path.resolve())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise JibError(f"cannot read {path}: {err}") from None
    base = path.parent
    result = Requirements()
    skip_dir = project_dir.resolve() if project_dir else None
    for number, line in _logical_lines(text):
        where = f"{path.name} line {number}"
        try:
            words = shlex.split(line, posix=False)  # keeps the quotes markers need
        except ValueError as err:
            raise JibError(f"{where}: {err}") from None
        hashes: list[str] = []
        rest: list[str] = []
        editable = False
        i = 0
        while i < len(words):
            word = words[i]
            option, _, value = word.partition("=")
            value = value.strip("'\"")
            if option == "--hash":
                hashes.append(value)
            elif option in ("-i", "--index-url", "--extra-index-url", "-r", "--requirement"):
                value = value or (words[i + 1].strip("'\"") if i + 1 < len(words) else "")
                i += 0 if "=" in word else 1
                if option in ("-i", "--index-url"):
                    result.index_url = value
                elif option == "--extra-index-url":
                    result.extra_index_urls.append(value)
                else:
                    nested = read_requirements(
                        base / value, target=target, extras=extras, project_dir=project_dir,
                        _seen=seen,
                    )  # fmt: skip
                    result.packages += nested.packages
                    result.index_url = result.index_url or nested.index_url
                    result.extra_index_urls += nested.extra_index_urls
            elif option in ("-e", "--editable"):
                editable = True
                if value:
                    rest.append(value)
            elif option in _IGNORED or (word.startswith("-") and not rest):
                log.warning("%s: ignoring pip option %s", where, option)
                if option in ("-f", "--find-links", "--trusted-host", "-c", "--constraint"):
                    i += 0 if "=" in word else 1
            else:
                rest.append(word)
            i += 1
        if not rest:
            continue
        spec = " ".join(rest)
        marker = None
        if ";" in spec and (editable or _is_direct(spec)):
            spec, _, marker = spec.partition(";")
            spec = spec.strip()
        if editable or _is_direct(spec):
            if not evaluate(marker, target, extras=extras, where=where):
                continue
            package = _direct(spec, None, base, where, hashes)
        else:
            try:
                req = Requirement(spec)
            except InvalidRequirement as err:
                raise JibError(f"{where}: {err}") from None
            if not evaluate(req.marker, target, extras=extras, where=where):
                continue
            if req.url:
                package = _direct(req.url, req.name, base, where, hashes)
            else:
                pins = [s for s in req.specifier if s.operator in ("==", "===")]
                if len(pins) != 1 or "*" in pins[0].version:
                    raise JibError(
                        f"{where}: {req.name} is not pinned to one version (name==X.Y); "
                        "a lock needs exact versions (e.g. `uv pip compile --generate-hashes`)"
                    )
                package = LockedPackage(
                    req.name,
                    pins[0].version,
                    extras=tuple(sorted(req.extras)),
                    hashes=tuple(hashes),
                )
        if package.path is not None and package.path == skip_dir:
            continue  # `-e .`: the project itself, which has its own layer
        result.packages.append(package)
    return result
