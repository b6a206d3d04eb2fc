"""What a lock says to install for one target: packages, their files and hashes.

Every lock format ends up as a ``LockSet``: markers already evaluated for the target, only the
runtime dependencies plus the asked extras, sorted by name so two reads of the same lock (or the
same resolution) are equal and fingerprint the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from jib.errors import JibError
from jib.python.tags import tag_ranks, target_tags
from jib.python.target import TargetPython

SourceKind = Literal["registry", "path", "directory", "git", "url"]
#: Kinds that are the user's own code rather than a published release: they go in the
#: local-dependencies layer, built from source on every build.
LOCAL_KINDS = frozenset({"path", "directory", "git"})


def split_hash(text: str) -> tuple[str, str]:
    """``"sha256:ab12"`` -> ``("sha256", "ab12")``."""
    algo, sep, value = text.strip().partition(":")
    if not sep or not value:
        algo, sep, value = text.strip().partition("=")
    if not sep or not value:
        raise JibError(f"malformed hash {text!r} in the lock: expected sha256:<hex>")
    return algo.lower(), value.lower()


@dataclass(frozen=True)
class LockedFile:
    """One distribution file of a locked release (a wheel or an sdist)."""

    #: Where to download it; None when the lock names the file but not its URL (poetry.lock).
    url: str | None
    filename: str
    hashes: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: A local file (pylock ``path``, poetry ``file`` sources), absolute.
    path: Path | None = None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def wheel_tags(self) -> frozenset[Tag]:
        if not self.is_wheel:
            return frozenset()
        try:
            return parse_wheel_filename(self.filename)[3]
        except InvalidWheelFilename:
            return frozenset()


@dataclass(frozen=True)
class LockedPackage:
    """One dependency to install, as the lock pins it."""

    name: str
    version: str | None
    files: tuple[LockedFile, ...] = ()
    source_kind: SourceKind = "registry"
    #: The local source for ``path``/``directory`` packages, absolute.
    path: Path | None = None
    #: The archive URL (``url``) or ``git+URL@commit`` (``git``).
    url: str | None = None
    #: Extras the lock asked of this package (informational: their deps are locked entries too).
    extras: tuple[str, ...] = ()
    #: Index the lock says the release comes from (pylock ``index``, Poetry legacy sources).
    index: str | None = None
    #: ``sha256:<hex>`` values allowed for any file, when the lock names no files (requirements).
    hashes: tuple[str, ...] = ()
    subdirectory: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", canonicalize_name(self.name))
        object.__setattr__(self, "files", tuple(sorted(self.files, key=lambda f: f.filename)))
        object.__setattr__(self, "hashes", tuple(sorted(set(self.hashes))))

    @property
    def is_local(self) -> bool:
        return self.source_kind in LOCAL_KINDS

    @property
    def allowed_sha256(self) -> frozenset[str]:
        """Every sha256 the lock accepts for this package's files."""
        values = {f.sha256 for f in self.files if f.sha256}
        values |= {split_hash(h)[1] for h in self.hashes if split_hash(h)[0] == "sha256"}
        return frozenset(values)

    def pin(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


def best_wheel(files: Iterable[LockedFile], target: TargetPython) -> LockedFile | None:
    """The wheel the target prefers most (by its best tag), or None when none fits."""
    ranks = tag_ranks(target)
    best: tuple[int, str, LockedFile] | None = None
    for file in files:
        rank = min((ranks[t] for t in file.wheel_tags() if t in ranks), default=None)
        if rank is not None and (best is None or (rank, file.filename) < best[:2]):
            best = (rank, file.filename, file)
    return best[2] if best else None


def sdist_of(files: Iterable[LockedFile]) -> LockedFile | None:
    return next((f for f in files if not f.is_wheel), None)


@dataclass(frozen=True)
class LockSet:
    """The packages to install for one target, sorted by name."""

    packages: tuple[LockedPackage, ...]
    target: TargetPython
    #: What produced it, for messages: ``poetry.lock``, ``uv pip compile``...
    source: str
    #: Index settings the lock itself carries (requirements ``--index-url`` lines).
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()

    @classmethod
    def from_packages(
        cls,
        packages: Iterable[LockedPackage],
        target: TargetPython,
        *,
        source: str,
        index_url: str | None = None,
        extra_index_urls: Iterable[str] = (),
    ) -> LockSet:
        """A LockSet from packages already selected for the target (e.g. by Poetry's own API)."""
        by_name: dict[str, LockedPackage] = {}
        for package in packages:
            other = by_name.get(package.name)
            if other is not None and other != package:
                raise JibError(
                    f"{source} gives two entries for {package.name} ({other.pin()} and "
                    f"{package.pin()}) on {target.describe()}; regenerate the lock"
                )
            by_name[package.name] = package
        return cls(
            packages=tuple(by_name[name] for name in sorted(by_name)),
            target=target,
            source=source,
            index_url=index_url,
            extra_index_urls=tuple(extra_index_urls),
        )

    def __iter__(self) -> Iterator[LockedPackage]:
        return iter(self.packages)

    def __len__(self) -> int:
        return len(self.packages)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.packages)

    def get(self, name: str) -> LockedPackage | None:
        wanted = canonicalize_name(name)
        return next((p for p in self.packages if p.name == wanted), None)

    def fingerprint(self) -> str:
        """sha256 over ``name==version``, the files the target will get and the target's tags.

        Stable across runs and machines: the later layer cache keys the third-party layer on it.
        Where the lock names the wheel files, only the one chosen for the target counts, so a
        new wheel for another platform does not invalidate this target's layer; otherwise all
        locked hashes count.
        """
        entries = []
        for package in self.packages:
            chosen = best_wheel(package.files, self.target) or sdist_of(package.files)
            hashes = [chosen.sha256 or ""] if chosen else sorted(package.allowed_sha256)
            entries.append(
                [package.pin(), package.source_kind, package.url or "", package.extras, hashes]
            )
        document = {
            "packages": entries,
            "tags": [str(t) for t in target_tags(self.target)],
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
