"""Image manifests (OCI and Docker schema2) and image indexes (OCI index, Docker manifest list).

Parsing is lenient where the specs say unknown things must be tolerated and strict where a wrong
value would make a broken image: schema1 is refused, and descriptors must be well formed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jib.errors import ImageFormatError
from jib.image import canonical, mediatypes
from jib.image.descriptor import Descriptor
from jib.image.digest import Digest


def _media_type(data: Mapping[str, Any], content_type: str | None) -> str:
    """The document's own mediaType, else the Content-Type it came with, else a guess by shape."""
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if content_type and content_type.split(";")[0].strip() not in ("", "application/json"):
        return content_type.split(";")[0].strip()
    if data.get("schemaVersion") == 1:
        return mediatypes.DOCKER_SCHEMA1
    # The OCI spec made mediaType optional at first; the shape tells an index from a manifest.
    return mediatypes.OCI_INDEX if "manifests" in data else mediatypes.OCI_MANIFEST


def _annotations(data: Mapping[str, Any]) -> Mapping[str, str]:
    raw = data.get("annotations") or {}
    if not isinstance(raw, Mapping):
        raise ImageFormatError("annotations are not a JSON object")
    return MappingProxyType({str(k): str(v) for k, v in sorted(raw.items())})


def _with_extras(
    out: dict[str, Any],
    annotations: Mapping[str, str],
    subject: Descriptor | None,
    artifact_type: str | None,
) -> dict[str, Any]:
    """The optional fields manifests and indexes share, added only when set."""
    if annotations:
        out["annotations"] = dict(annotations)
    if subject is not None:
        out["subject"] = subject.to_json()
    if artifact_type:
        out["artifactType"] = artifact_type
    return out


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Manifest:
    """One image: a config descriptor and its layer descriptors, base layer first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=_empty)
    subject: Descriptor | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return _with_extras(out, self.annotations, self.subject, self.artifact_type)

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_json())


@dataclass(frozen=True)
class Index:
    """Several manifests (usually one per platform): an OCI index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=_empty)
    subject: Descriptor | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_json() for m in self.manifests],
        }
        return _with_extras(out, self.annotations, self.subject, self.artifact_type)

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_json())


def parse(raw: bytes, content_type: str | None = None, what: str = "manifest") -> Manifest | Index:
    """Parse a manifest or index document; ``content_type`` is the registry's Content-Type."""
    data = canonical.loads_object(raw, what)
    media_type = _media_type(data, content_type)
    if media_type in mediatypes.SCHEMA1 or data.get("schemaVersion") == 1:
        raise ImageFormatError(
            f"{what} uses Docker's schema1 format, which pyjib does not read; "
            "re-push the image with a current Docker, skopeo or crane to convert it"
        )
    if data.get("schemaVersion") != 2:
        raise ImageFormatError(f"{what} has schemaVersion {data.get('schemaVersion')!r}, not 2")
    subject = (
        Descriptor.from_json(data["subject"], f"{what} subject") if data.get("subject") else None
    )
    if media_type in mediatypes.INDEXES:
        entries = data.get("manifests")
        if not isinstance(entries, list):
            raise ImageFormatError(f"{what} is an index without a manifests list")
        return Index(
            media_type=media_type,
            manifests=tuple(
                Descriptor.from_json(e, f"{what} entry {i}") for i, e in enumerate(entries)
            ),
            annotations=_annotations(data),
            subject=subject,
            artifact_type=data.get("artifactType"),
        )
    if media_type not in mediatypes.MANIFESTS:
        raise ImageFormatError(f"{what} has media type {media_type!r}, which is not an image")
    layers = data.get("layers")
    if "config" not in data or not isinstance(layers, list):
        raise ImageFormatError(f"{what} lacks config or layers")
    return Manifest(
        media_type=media_type,
        config=Descriptor.from_json(data["config"], f"{what} config"),
        layers=tuple(Descriptor.from_json(e, f"{what} layer {i}") for i, e in enumerate(layers)),
        annotations=_annotations(data),
        subject=subject,
        artifact_type=data.get("artifactType"),
    )


def parse_manifest(raw: bytes, content_type: str | None = None, what: str = "manifest") -> Manifest:
    parsed = parse(raw, content_type, what)
    if not isinstance(parsed, Manifest):
        raise ImageFormatError(f"{what} is an image index where an image manifest was expected")
    return parsed


def descriptor_of(raw: bytes, media_type: str, **extra: Any) -> Descriptor:
    """The descriptor that names the document ``raw``."""
    return Descriptor(media_type=media_type, digest=Digest.of_bytes(raw), size=len(raw), **extra)
