"""Wheels for the target: chosen by its tags, downloaded, hash-checked, cached by sha256.

For each locked package the best wheel for the target's tags is taken from the lock's file list;
a lock without URLs (poetry.lock, requirements) is matched against the index's simple API, by
file name or by hash. Every download is verified against the lock before it enters the cache
(``cache_dir/wheels/sha256/<hex>/<filename>``, written to a temp file and renamed), so a tampered
or stale file never lands there.

A package without a fitting wheel is built from its sdist only when the result is pure Python
(``*-none-any``): anything else would be built for the host's CPU and libc, not the image's.
Local path/directory/git dependencies are built the same way (non-editable), and keep their
``source_kind`` so they go in the local-dependencies layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from jib.atomic import write_bytes
from jib.errors import JibError
from jib.image.digest import Digest
from jib.python.index import (
    IndexAccessError,
    IndexAuth,
    IndexConfig,
    IndexCredentials,
    LazyClient,
    SimpleIndex,
    index_config,
    redact,
)
from jib.python.indextls import IndexTLS
from jib.python.locks import LockedFile, LockedPackage, LockSet, SourceKind, best_wheel, sdist_of
from jib.python.sourcebuild import build_wheel
from jib.python.tags import tag_ranks, target_tags
from jib.python.target import TargetPython

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_ATTEMPTS = 3


@dataclass(frozen=True)
class FetchedWheel:
    name: str
    version: str
    path: Path
    sha256: str
    #: ``registry``/``url`` go in the third-party layer; ``path``/``directory``/``git`` (see
    #: ``LockedPackage.is_local``) in the local-dependencies layer.
    source_kind: SourceKind = "registry"

    @property
    def filename(self) -> str:
        return self.path.name


def fetch_wheels(
    lockset: LockSet,
    target: TargetPython,
    *,
    cache_dir: Path,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    jobs: int = 4,
    client: httpx.Client | None = None,
    auth: IndexCredentials | None = None,
    tls: Mapping[str, IndexTLS] | None = None,
) -> list[FetchedWheel]:
    """One wheel per locked package, fit for ``target``, in name order.

    ``auth``: HTTP Basic credentials by index URL (see :class:`IndexAuth` for where each is
    sent), for index pages and file downloads alike. ``tls``: TLS settings by index URL, for that
    index's origin only (see ``jib.python.indextls``).
    """
    config = index_config(
        index_url,
        extra_index_urls,
        lock_index_url=lockset.index_url,
        lock_extra_index_urls=lockset.extra_index_urls,
    )
    own_client = client is None
    http = client or LazyClient(tls)
    try:
        index = SimpleIndex(http, config, IndexAuth(auth or {}))
        fetcher = _Fetcher(target, cache_dir, index, http, config, tls or {})
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pyjib-wheel") as pool:
            futures = [pool.submit(fetcher.fetch, package) for package in lockset]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            first = next((e for e in errors if isinstance(e, JibError)), errors[0])
            raise first
        return [f.result() for f in futures]
    finally:
        if own_client:
            http.close()


def _pure(filename: str) -> bool:
    return all(t.abi == "none" and t.platform == "any" for t in parse_wheel_filename(filename)[3])


class _Fetcher:
    def __init__(
        self,
        target: TargetPython,
        cache_dir: Path,
        index: SimpleIndex,
        http: httpx.Client | LazyClient,
        config: IndexConfig,
        tls: Mapping[str, IndexTLS],
    ) -> None:
        self.target = target
        self.root = cache_dir / "wheels"
        self.index = index
        self.http = http
        self.config = config
        self.tls = tls

    # -- the cache --------------------------------------------------------------------------

    def _cached(self, sha256: str | None, filename: str) -> Path | None:
        if not sha256:
            return None
        path = self.root / "sha256" / sha256 / filename
        return path if path.is_file() else None

    def _store(self, staged: Path, sha256: str, filename: str) -> Path:
        final = self.root / "sha256" / sha256 / filename
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)  # atomic: the cache holds whole, verified files only
        return final

    def _staging(self) -> Path:
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    # -- one package ------------------------------------------------------------------------

    def fetch(self, package: LockedPackage) -> FetchedWheel:
        if package.source_kind == "registry":
            return self._registry(package)
        return self._direct(package)

    def _registry(self, package: LockedPackage) -> FetchedWheel:
        files = list(package.files)
        needs_index = not files or any(f.url is None and f.path is None for f in files)
        choice = self._choice_path(package) if needs_index else None
        if choice is not None and (known := self._known_choice(choice)) is not None:
            return self._result(package, *known)
        if needs_index:
            files = self._from_index(package)
        wheel = best_wheel(files, self.target)
        if wheel is not None:
            path, sha256 = self._get(wheel, package)
            if choice is not None:
                self._remember_choice(choice, path, sha256)
            return self._result(package, path, sha256)
        sdist = sdist_of(files)
        if sdist is None:
            raise self._no_wheel(package, "and no sdist to build one from")
        path, _ = self._get(sdist, package)
        return self._built_from_sdist(package, path, sdist)

    # -- remembered choices --------------------------------------------------------------------
    # A lock that pins hashes but no URLs (requirements, uv pip compile, poetry.lock) needs the
    # index to find its files. Which wheel the target then gets is fixed by the pins and the
    # target's tags, so the choice is remembered under exactly those, and a warm build asks the
    # index nothing.

    def _choice_path(self, package: LockedPackage) -> Path | None:
        pins = sorted(package.allowed_sha256)
        if not pins:
            return None  # unpinned: the index's current answer is the answer
        key = json.dumps(
            [package.name, package.version, pins, [str(t) for t in target_tags(self.target)]]
        )
        return self.root / "choices" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _known_choice(self, choice: Path) -> tuple[Path, str] | None:
        try:
            known = json.loads(choice.read_text())
            path = self._cached(known["sha256"], known["filename"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (path, known["sha256"]) if path is not None else None

    def _remember_choice(self, choice: Path, path: Path, sha256: str) -> None:
        try:
            choice.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(choice, json.dumps({"filename": path.name, "sha256": sha256}).encode())
        except OSError as exc:  # an optimization only: the next build asks the index again
            log.debug("cannot remember the wheel choice %s: %s", choice, exc)

    def _from_index(self, package: LockedPackage) -> list[LockedFile]:
        """The lock's files with URLs from the index; matched by name, else by locked hash."""
        listed = [
            f
            for f in self.index.files(package.name, package.index)
            if self._python_ok(f.requires_python)
        ]
        if package.files:  # poetry.lock: names + hashes; the lock's hash is what counts
            by_name = {f.filename.lower(): f for f in listed}
            out = []
            for locked in package.files:
                found = by_name.get(locked.filename.lower())
                if found is not None:
                    out.append(LockedFile(found.url, locked.filename, dict(locked.hashes)))
            if not out:
                raise self._not_on_index(package, "none of the locked files")
            return out
        allowed = package.allowed_sha256
        if not allowed:
            log.warning(
                "%s pins %s without --hash; trusting the index's sha256 for it",
                package.name,
                package.version,
            )
        matching = [
            f
            for f in listed
            if _name_version(f.filename) == (package.name, _parse_version(package.version))
        ]
        # Verified against the lock's hashes at download, so the index's hashes only guide the
        # choice (and stand in when the lock has none).
        files = [LockedFile(f.url, f.filename, {} if allowed else dict(f.hashes)) for f in matching]
        locked = [
            file
            for file, f in zip(files, matching, strict=True)
            if not allowed or f.hashes.get("sha256") in allowed
        ]
        if (
            allowed
            and best_wheel(locked, self.target) is None
            and best_wheel(files, self.target) is not None
        ):
            # The lock has no hash for the wheel the target needs: take it anyway, so the
            # download check reports the mismatch (as pip does) rather than building the sdist.
            return files
        if not locked:
            what = "no file with a locked hash" if allowed else "no file"
            raise self._not_on_index(package, what)
        return locked

    def _python_ok(self, requires_python: str | None) -> bool:
        if not requires_python:
            return True
        try:
            return SpecifierSet(requires_python).contains(self.target.full_version, True)
        except InvalidSpecifier:
            return True

    def _direct(self, package: LockedPackage) -> FetchedWheel:
        if package.source_kind == "directory":
            assert package.path is not None
            source = package.path / (package.subdirectory or "")
            return self._built(package, source, str(package.path))
        if package.source_kind == "git":
            return self._from_git(package)
        file = package.files[0] if package.files else None
        if file is None and package.path is not None:
            file = LockedFile(None, package.path.name, {}, package.path)
        if file is None or (file.url is None and file.path is None):
            raise JibError(f"the lock gives no location for {package.pin()}; regenerate it")
        path, sha256 = self._get(file, package)
        if file.is_wheel:
            if best_wheel([file], self.target) is None:
                raise self._no_wheel(package, f"({file.filename} is for another platform)")
            return self._result(package, path, sha256)
        return self._built_from_sdist(package, path, file)

    def _result(self, package: LockedPackage, path: Path, sha256: str) -> FetchedWheel:
        version = package.version or parse_wheel_filename(path.name)[1].public
        return FetchedWheel(package.name, str(version), path, sha256, package.source_kind)

    # -- downloads --------------------------------------------------------------------------

    def _expected(self, file: LockedFile, package: LockedPackage) -> dict[str, set[str]]:
        if package.hashes:  # requirements: any of the package's hashes, and only those
            return {"sha256": set(package.allowed_sha256)}
        return {algo: {v} for algo, v in file.hashes.items()}

    def _get(self, file: LockedFile, package: LockedPackage) -> tuple[Path, str]:
        """The file in the cache, downloading (or copying) and verifying it if needed."""
        expected = self._expected(file, package)
        sha_set = expected.get("sha256", set())
        if len(sha_set) == 1 and (hit := self._cached(next(iter(sha_set)), file.filename)):
            return hit, next(iter(sha_set))
        fd, staged_name = tempfile.mkstemp(prefix=".dl-", dir=self._staging())
        staged = Path(staged_name)
        try:
            with os.fdopen(fd, "wb") as out:
                digests = self._copy_into(file, out, expected)
            for algo, allowed in expected.items():
                if allowed and digests[algo] not in allowed:
                    wanted = (
                        f"{algo}:{' or '.join(sorted(allowed))}"
                        if len(allowed) <= 3
                        else f"one of the {len(allowed)} {algo} hashes the lock lists"
                    )
                    raise JibError(
                        f"{file.filename} of {package.pin()} does not match the lock: expected "
                        f"{wanted}, got {algo}:{digests[algo]}; the lock is stale or the file "
                        "was tampered with: regenerate the lock"
                    )
            return self._store(staged, digests["sha256"], file.filename), digests["sha256"]
        finally:
            staged.unlink(missing_ok=True)

    def _copy_into(
        self, file: LockedFile, out: BinaryIO, expected: dict[str, set[str]]
    ) -> dict[str, str]:
        for attempt in range(1, _ATTEMPTS + 1):
            hashers = {a: hashlib.new(a) for a in {"sha256", *expected}}
            out.seek(0)
            out.truncate()
            try:
                local = file.path or _file_url_path(file.url)
                if local is not None:
                    with local.open("rb") as src:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            for h in hashers.values():
                                h.update(chunk)
                else:
                    assert file.url is not None
                    kwargs = self.index.request_kwargs
                    with self.http.stream("GET", file.url, **kwargs) as response:  # type: ignore[arg-type]
                        if response.status_code in (401, 403):
                            raise IndexAccessError(
                                file.url,
                                response.status_code,
                                credentials="Authorization" in response.request.headers,
                                what=file.filename,
                            )
                        if response.status_code >= 400:
                            raise _HTTPStatus(response.status_code)
                        for chunk in response.iter_bytes(_CHUNK):
                            out.write(chunk)
                            for h in hashers.values():
                                h.update(chunk)
                return {a: h.hexdigest() for a, h in hashers.items()}
            except OSError as err:
                raise JibError(f"cannot read {file.path}: {err}") from None
            except (httpx.TransportError, _HTTPStatus) as err:
                retryable = not isinstance(err, _HTTPStatus) or err.status >= 500
                if attempt == _ATTEMPTS or not retryable:
                    raise JibError(
                        f"cannot download {file.filename} from {redact(file.url or '')}: {err}"
                    ) from None
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    # -- building ---------------------------------------------------------------------------

    def _built_from_sdist(
        self, package: LockedPackage, sdist_path: Path, sdist: LockedFile
    ) -> FetchedWheel:
        sdist_sha = Digest.of_file(sdist_path)[0].hex
        pointer = self.root / "built" / f"{sdist_sha}.json"
        if pointer.is_file():
            # A build is not byte-reproducible, so the first build of an sdist is kept and
            # reused: rebuilding the same lock gives the same wheel, hence the same layer.
            try:
                data = json.loads(pointer.read_text())
                if hit := self._cached(data["sha256"], data["filename"]):
                    return self._result(package, hit, data["sha256"])
            except (ValueError, KeyError):
                pass
        wheel = self._built(package, sdist_path, sdist.filename)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(
            pointer, json.dumps({"sha256": wheel.sha256, "filename": wheel.filename}).encode()
        )
        return wheel

    def _built(self, package: LockedPackage, source: Path, what: str) -> FetchedWheel:
        with tempfile.TemporaryDirectory(prefix="pyjib-build-") as tmp:
            built = build_wheel(
                source,
                Path(tmp),
                self.config,
                what=f"{package.pin()} ({what})",
                auth=self.index.auth,
                tls=self.tls,
            )
            ranks = tag_ranks(self.target)
            fits = any(t in ranks for t in parse_wheel_filename(built.name)[3])
            if not (_pure(built.name) and fits):
                raise self._no_wheel(
                    package,
                    f"and building {what} gave {built.name}, not a pure-Python (py3-none-any) "
                    "wheel, so it would be built for this machine rather than the image",
                )
            sha256 = Digest.of_file(built)[0].hex
            staged = self._staging() / f".built-{os.getpid()}-{built.name}"
            shutil.move(built, staged)
            return self._result(package, self._store(staged, sha256, built.name), sha256)

    def _from_git(self, package: LockedPackage) -> FetchedWheel:
        assert package.url is not None
        url = package.url.removeprefix("git+")
        head, _, last = url.rpartition("/")
        revision = None
        if "@" in last:
            last, _, revision = last.partition("@")
        url = f"{head}/{last}"
        with tempfile.TemporaryDirectory(prefix="pyjib-git-") as tmp:
            checkout = Path(tmp) / "src"
            _run(["git", "clone", "--quiet", url, str(checkout)], f"git clone of {package.name}")
            if revision:
                _run(
                    ["git", "-C", str(checkout), "checkout", "--quiet", revision],
                    f"git checkout of {package.name} at {revision}",
                )
            return self._built(package, checkout / (package.subdirectory or ""), redact(url))

    # -- errors -----------------------------------------------------------------------------

    def _no_wheel(self, package: LockedPackage, why: str) -> JibError:
        return JibError(
            f"{package.pin()} has no wheel for {self.target.describe()} {why}; use a version "
            "or base image that has one, or another package"
        )

    def _not_on_index(self, package: LockedPackage, what: str) -> JibError:
        indexes = ", ".join(redact(u) for u in self.index.config.urls)
        return JibError(
            f"{what} of {package.pin()} is on the index ({indexes}); regenerate the lock or "
            "set [tool.jib.python] index-url to the index it was locked against"
        )


class _HTTPStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _file_url_path(url: str | None) -> Path | None:
    """The local path of a ``file://`` URL (local indexes list those)."""
    if url and url.startswith("file:"):
        return Path(unquote(urlsplit(url).path))
    return None


def _parse_version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _name_version(filename: str) -> tuple[str, Version] | None:
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return canonicalize_name(name), version


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=1800
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JibError(f"{what} failed: {err}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        raise JibError(f"{what} failed: {' '.join(lines[-6:]) or done.returncode}")
    return done.stdout
