"""``pyjib inspect``: what an image is, from a registry or a tarball, in a form people read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jib.errors import ImageFormatError
from jib.image.config import ImageConfig
from jib.image.image import Image
from jib.image.manifest import Index, parse
from jib.image.reference import Reference
from jib.local import is_local, read_local
from jib.local.files import TarFiles, read_document
from jib.local.ocilayout import INDEX_FILE, blob_path, is_layout
from jib.registry.client import Registries
from jib.registry.credentials import default_keychain
from jib.sizes import human


def inspect(spec: str, *, registries: Registries | None = None, insecure: bool = False) -> dict:
    """Platforms, layers and config of the image ``spec`` (a reference, a tar path, or
    ``tar://``/``oci://``), as a JSON-able dict."""
    if is_local(spec) or Path(spec).is_file():
        return _local(spec if is_local(spec) else f"tar://{spec}")
    ref = Reference.parse(spec)
    own = registries is None
    regs = registries or Registries(insecure=insecure)
    try:
        client = regs.get(ref.registry, default_keychain())
        raw, media_type, digest = client.get_manifest(ref)
        document = parse(raw, media_type, str(ref))
        if isinstance(document, Index):
            images = [
                client.pull_image(ref.with_digest(d.digest), None)
                for d in document.manifests
                if d.platform is None or d.platform.os != "unknown"
            ]
            return _describe(str(ref), str(digest), media_type, images)
        return _describe(str(ref), str(digest), media_type, [client.pull_image(ref, None)])
    finally:
        if own:
            regs.close()


def _local(spec: str) -> dict:
    path = Path(spec.split("://", 1)[1])
    if spec.startswith("tar://"):
        files = TarFiles(path)
        if is_layout(files):
            index = parse(read_document(files, INDEX_FILE), what=f"{path} index.json")
            if not isinstance(index, Index) or not index.manifests:
                raise ImageFormatError(f"{path}: index.json lists no image")
            top = index.manifests[0]
            document = parse(read_document(files, blob_path(top.digest)), top.media_type)
            if isinstance(document, Index):
                images = [read_local(spec, d.platform) for d in document.manifests if d.platform]
                return _describe(str(path), str(top.digest), top.media_type, images)
    image = read_local(spec)
    return _describe(str(path), str(image.digest), image.media_type, [image])


def _describe(name: str, digest: str, media_type: str, images: list[Image]) -> dict:
    return {
        "image": name,
        "digest": digest,
        "mediaType": media_type,
        "platforms": [_platform(image) for image in images],
    }


def _platform(image: Image) -> dict[str, Any]:
    config = image.config
    return {
        "platform": str(image.platform),
        "digest": str(image.digest),
        "imageId": str(image.config_digest),
        "layers": [
            {
                "digest": str(layer.digest),
                "size": layer.size,
                "mediaType": layer.media_type,
                "holds": holds,
            }
            for layer, holds in zip(image.layers, _layer_notes(config), strict=False)
        ],
        "config": _container(config),
    }


def _layer_notes(config: ImageConfig) -> Iterator[str]:
    """What each layer holds, from the history entries that made a layer (not empty ones)."""
    for entry in config.history:
        if entry.get("empty_layer"):
            continue
        yield entry.get("comment") or entry.get("created_by") or ""
    while True:
        yield ""


def _container(config: ImageConfig) -> dict[str, Any]:
    return {
        "entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
        "cmd": list(config.cmd) if config.cmd is not None else None,
        "env": config.env,
        "workingDir": config.working_dir,
        "user": config.user,
        "exposedPorts": list(config.exposed_ports),
        "volumes": list(config.volumes),
        "labels": config.labels,
        "created": config.created,
    }


def render(info: dict) -> str:
    """A terminal view of ``inspect``'s result."""
    lines = [f"{info['image']}  {info['digest']}", f"  {info['mediaType']}"]
    for platform in info["platforms"]:
        lines.append(f"\n{platform['platform']}  {platform['digest']}")
        lines.append(f"  image id {platform['imageId']}")
        for i, layer in enumerate(platform["layers"]):
            holds = f"  {layer['holds']}" if layer["holds"] else ""
            lines.append(f"  layer {i}: {layer['digest'][:19]}  {human(layer['size']):>9}{holds}")
        lines.append("  config " + json.dumps(platform["config"], indent=2).replace("\n", "\n  "))
    return "\n".join(lines)
