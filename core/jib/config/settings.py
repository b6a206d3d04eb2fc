"""The typed, frozen result of reading ``[tool.jib]``: what every other part of pyjib consumes.

Everything here is already validated and defaulted (see :mod:`jib.config.load`); consumers never
look at raw TOML. Paths on the host are absolute; paths in the image are absolute POSIX strings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from packaging.specifiers import SpecifierSet

from jib.image.descriptor import Platform
from jib.image.reference import Reference
from jib.local import is_local
from jib.registry.credentials import Credential

from .values import EPOCH, ConfigError

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_APP_ROOT = "/app"
DEFAULT_FORMAT: Literal["oci"] = "oci"
#: ``files-modification-time`` default: EPOCH_PLUS_SECOND, as Jib.
EPOCH_PLUS_SECOND = 1


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping that keeps the order it was written in (TOML order).

    Hashable so the frozen settings stay usable as cache keys; ordered so whatever is built from
    them is deterministic.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True)
class ProjectInfo:
    """``[project]`` metadata pyjib uses (image name, labels, entrypoint, default base image)."""

    name: str
    #: PEP 503 normalized: lowercase, runs of ``-_.`` -> ``-``. Used for image and file names.
    normalized_name: str
    #: PEP 440 normalized (``1.0.0-alpha`` -> ``1.0.0a0``); None if dynamic and not passed in.
    version: str | None
    description: str | None = None
    license_expression: str | None = None  # PEP 639 SPDX expression: ``license = "MIT"``
    license_text: str | None = None  # legacy ``license = { text = "..." }``
    urls: Mapping[str, str] = field(default_factory=FrozenMap)
    requires_python: SpecifierSet = field(default_factory=SpecifierSet)
    scripts: Mapping[str, str] = field(default_factory=FrozenMap)  # name -> "pkg.mod:func"
    authors: tuple[str, ...] = ()  # "Name <email>", "Name" or "email"

    @property
    def image_tag(self) -> str:
        """The version as an image tag: ``+`` (and anything else a tag cannot hold) -> ``_``.

        ``_`` as Helm does for OCI tags, so ``1.0+local`` does not read as a semver pre-release.
        Without a known version: ``latest``.
        """
        if not self.version:
            return "latest"
        tag = re.sub(r"[^A-Za-z0-9_.-]", "_", self.version)[:128]
        return tag if re.match(r"[A-Za-z0-9_]", tag) else f"_{tag[:127]}"

    @property
    def file_stem(self) -> str:
        """``<name>-<version>`` for output files (``<name>`` alone without a known version)."""
        return f"{self.normalized_name}-{self.version}" if self.version else self.normalized_name


@dataclass(frozen=True)
class FromSettings:
    #: A registry reference as written (``python:3.12-slim``), or ``tar:///abs/path`` /
    #: ``oci:///abs/dir`` with the path made absolute against the project directory.
    image: str
    platforms: tuple[Platform, ...]
    cred_helper: str | None = None
    #: ``JIB_FROM_USERNAME``/``JIB_FROM_PASSWORD`` if set, else ``[tool.jib.from] auth``.
    auth: Credential | None = None

    @property
    def is_local(self) -> bool:
        return is_local(self.image)

    @property
    def reference(self) -> Reference | None:
        """The parsed registry reference; None for ``tar://``/``oci://`` bases."""
        return None if self.is_local else Reference.parse(self.image)


@dataclass(frozen=True)
class ToSettings:
    #: None when neither ``[tool.jib.to] image`` nor ``JIB_TO_IMAGE``/``--image`` says; see
    #: :meth:`JibSettings.to_reference` for the default.
    image: Reference | None = None
    tags: tuple[str, ...] = ()  # extra tags besides the one in ``image``, in order, unique
    cred_helper: str | None = None
    auth: Credential | None = None


@dataclass(frozen=True)
class ContainerSettings:
    #: None: inferred by the build. ``()``: explicitly no entrypoint (``entrypoint = []``).
    entrypoint: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None  # CMD; None: not set
    environment: Mapping[str, str] = field(default_factory=FrozenMap)
    ports: tuple[str, ...] = ()  # "8000/tcp", ranges expanded, unique, in the order written
    labels: Mapping[str, str] = field(default_factory=FrozenMap)
    user: str | None = None  # None: inherit the base image's
    working_directory: str = DEFAULT_APP_ROOT  # defaults to app_root
    volumes: tuple[str, ...] = ()
    app_root: str = DEFAULT_APP_ROOT
    format: Literal["oci", "docker"] = DEFAULT_FORMAT
    creation_time: dt.datetime = EPOCH  # always UTC
    files_modification_time: int = EPOCH_PLUS_SECOND  # seconds since the epoch


@dataclass(frozen=True)
class ExtraDirectory:
    from_: Path  # absolute, exists, is a directory
    into: str = "/"  # absolute POSIX path in the image
    includes: tuple[str, ...] = ()  # globs relative to from_; () means everything
    excludes: tuple[str, ...] = ()
    #: Container-path glob -> mode (0o755), in the order written.
    permissions: Mapping[str, int] = field(default_factory=FrozenMap)


@dataclass(frozen=True)
class PythonSettings:
    version: str | None = None  # "3.12"; None: detected from the base image
    executable: str | None = None  # absolute path in the image; None: detected
    lock: Literal["auto"] | Path = "auto"  # a Path is absolute (not checked for existence)
    index_url: str | None = None  # None: the user's pip/uv configuration
    extra_index_urls: tuple[str, ...] = ()
    compile_bytecode: bool = True


@dataclass(frozen=True)
class OutputPaths:
    """Where build results are written; all absolute."""

    digest: Path
    image_id: Path
    image_json: Path
    tar: Path


@dataclass(frozen=True)
class JibSettings:
    project_dir: Path
    project: ProjectInfo
    from_: FromSettings
    to: ToSettings
    container: ContainerSettings
    extra_directories: tuple[ExtraDirectory, ...]
    python: PythonSettings
    output_paths: OutputPaths
    allow_insecure_registries: bool
    cache_dir: Path

    def to_reference(self, for_push: bool) -> Reference:
        """The target image: the configured one, else ``<name>:<version>`` for local outputs.

        Pushing needs a registry the user chose, so there is no default for it.
        """
        if self.to.image is not None:
            return self.to.image
        if for_push:
            raise ConfigError("set [tool.jib.to] image (or JIB_TO_IMAGE) to push")
        text = f"{self.project.normalized_name}:{self.project.image_tag}"
        try:
            return Reference.parse(text)
        except Exception as err:  # a project name no image name can hold
            raise ConfigError(
                f"cannot use {text!r} as the default image name ({err}); set [tool.jib.to] image"
            ) from None

    def to_references(self, for_push: bool) -> tuple[Reference, ...]:
        """The target image and one reference per extra tag, without duplicates."""
        primary = self.to_reference(for_push)
        out = [primary]
        for tag in self.to.tags:
            ref = primary.with_tag(tag)
            if ref not in out:
                out.append(ref)
        return tuple(out)
