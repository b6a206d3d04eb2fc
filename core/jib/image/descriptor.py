"""Descriptors (what a manifest or index points at) and the platforms they are built for."""

from __future__ import annotations

import base64
import platform as platform_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jib.errors import ImageFormatError, JibError
from jib.image.digest import Digest

#: Default CPU variants, as containerd's platforms package normalizes them: "linux/arm64" means
#: v8 and "linux/arm" means v7, so a request without a variant still matches an index that names it.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


@dataclass(frozen=True)
class Platform:
    """An ``os/architecture[/variant]`` target, with the OCI spec's optional extras."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``linux/amd64`` or ``linux/arm64/v8``; ``x86_64``/``aarch64`` are accepted too."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise JibError(
                f"invalid platform {text!r}: use os/architecture[/variant], e.g. linux/amd64"
            )
        os_, arch = parts[0], _ARCH_ALIASES.get(parts[1], parts[1])
        return cls(os_, arch, parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        """linux on this machine's CPU: what to pick from an index when nothing else is said."""
        machine = platform_module.machine().lower()
        return cls("linux", _ARCH_ALIASES.get(machine, machine))

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        if not isinstance(data, Mapping):
            raise ImageFormatError(f"platform {data!r} is not a JSON object")
        try:
            return cls(
                os=str(data["os"]),
                architecture=str(data["architecture"]),
                variant=data.get("variant") or None,
                os_version=data.get("os.version") or None,
                os_features=tuple(data.get("os.features") or ()),
                features=tuple(data.get("features") or ()),
            )
        except (KeyError, TypeError) as err:
            raise ImageFormatError(f"platform {dict(data)!r} lacks os or architecture") from err

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.features:
            out["features"] = list(self.features)
        return out

    @property
    def normalized_variant(self) -> str | None:
        return self.variant or _DEFAULT_VARIANT.get(self.architecture)

    def satisfies(self, wanted: Platform) -> bool:
        """Whether an image for this platform runs where ``wanted`` is asked for.

        Like go-containerregistry's ``Satisfies``: os and architecture must match; the variant
        must match once defaults are filled in; requested feature lists must be subsets.
        """
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        if wanted.variant and self.normalized_variant != wanted.normalized_variant:
            return False
        if wanted.os_version and self.os_version != wanted.os_version:
            return False
        return set(wanted.os_features) <= set(self.os_features) and set(wanted.features) <= set(
            self.features
        )

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted((mapping or {}).items())))


@dataclass(frozen=True)
class Descriptor:
    """A typed pointer to content: media type, digest, size, and optional metadata."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ImageFormatError(f"descriptor {self.digest} has negative size {self.size}")
        if not isinstance(self.annotations, MappingProxyType):
            object.__setattr__(self, "annotations", _frozen(self.annotations))

    @classmethod
    def from_json(cls, data: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(data, Mapping):
            raise ImageFormatError(f"{what} is not a JSON object")
        try:
            media_type = data["mediaType"]
            digest = Digest.parse(data["digest"])
            size = data["size"]
        except KeyError as err:
            raise ImageFormatError(f"{what} lacks the field {err.args[0]!r}") from None
        if not isinstance(media_type, str) or not isinstance(size, int):
            raise ImageFormatError(f"{what} has a malformed mediaType or size")
        inline = None
        if data.get("data") is not None:
            try:
                inline = base64.b64decode(data["data"], validate=True)
            except (ValueError, TypeError):
                raise ImageFormatError(f"{what} has inline data that is not base64") from None
            if len(inline) != size:
                raise ImageFormatError(f"{what} has {len(inline)} bytes of data, not {size}")
            digest.verify(inline, what)
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, Mapping):
            raise ImageFormatError(f"{what} has annotations that are not an object")
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            platform=Platform.from_json(platform) if platform else None,
            urls=tuple(data.get("urls") or ()),
            artifact_type=data.get("artifactType"),
            data=inline,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode()
        return out


def is_attestation(descriptor: Descriptor) -> bool:
    """BuildKit's provenance/SBOM entries (``unknown/unknown``): never an image to run."""
    if descriptor.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    platform = descriptor.platform
    return platform is not None and platform.os == "unknown" and platform.architecture == "unknown"


def select_platform(
    manifests: Iterable[Descriptor], wanted: Platform, image: str = "the image"
) -> Descriptor:
    """The first manifest of an index that runs on ``wanted`` (the OCI spec's rule)."""
    candidates = [d for d in manifests if not is_attestation(d)]
    for descriptor in candidates:
        if descriptor.platform is not None and descriptor.platform.satisfies(wanted):
            return descriptor
    available = ", ".join(str(d.platform) for d in candidates if d.platform) or "none listed"
    raise JibError(
        f"{image} has no variant for platform {wanted} (available: {available}); "
        "choose one of those in [tool.jib.from] platforms or use another base image"
    )
