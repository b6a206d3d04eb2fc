"""The image config: what a container runs, and the diff_ids of its layers.

An ``ImageConfig`` wraps the JSON document itself, so fields pyjib does not know (Docker's
``container_config``, ``Healthcheck``, vendor extensions) survive a rewrite untouched, as the OCI
spec requires. Every ``with_*`` returns a new value; nothing is changed in place.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jib.errors import ImageFormatError
from jib.image import canonical
from jib.image.descriptor import Platform
from jib.image.digest import Digest

EPOCH = "1970-01-01T00:00:00Z"


class ImageConfig:
    """An immutable view of an image config document."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data: dict[str, Any] = copy.deepcopy(dict(data))

    @classmethod
    def parse(cls, raw: bytes, what: str = "image config") -> ImageConfig:
        data = canonical.loads_object(raw, what)
        rootfs = data.get("rootfs")
        if rootfs is not None and (
            not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list)
        ):
            raise ImageFormatError(f"{what} has a malformed rootfs")
        if rootfs is not None and rootfs.get("type", "layers") != "layers":
            raise ImageFormatError(f"{what} has rootfs type {rootfs.get('type')!r}, not 'layers'")
        if not isinstance(data.get("config") or {}, dict):
            raise ImageFormatError(f"{what} has a 'config' field that is not a JSON object")
        config = cls(data)
        config.diff_ids  # noqa: B018 - validates every diff_id now, not at first use
        return config

    @classmethod
    def new(cls, platform: Platform, created: str = EPOCH) -> ImageConfig:
        """A config for an image with no layers (a ``scratch`` base)."""
        data: dict[str, Any] = {
            "created": created,
            "os": platform.os,
            "architecture": platform.architecture,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        if platform.variant:
            data["variant"] = platform.variant
        return cls(data)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def to_bytes(self) -> bytes:
        return canonical.dumps(self._data)

    # -- reading -------------------------------------------------------------------------------

    def _container(self) -> Mapping[str, Any]:
        return self._data.get("config") or {}

    @property
    def platform(self) -> Platform:
        return Platform(
            os=self._data.get("os") or "linux",
            architecture=self._data.get("architecture") or "amd64",
            variant=self._data.get("variant") or None,
            os_version=self._data.get("os.version") or None,
        )

    @property
    def created(self) -> str | None:
        return self._data.get("created")

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        rootfs = self._data.get("rootfs") or {}
        return tuple(Digest.parse(d) for d in rootfs.get("diff_ids") or ())

    @property
    def history(self) -> tuple[dict[str, Any], ...]:
        return tuple(copy.deepcopy(h) for h in self._data.get("history") or ())

    @property
    def env(self) -> dict[str, str]:
        """``Env`` as an ordered mapping (later duplicates win, as in a container runtime)."""
        out: dict[str, str] = {}
        for item in self._container().get("Env") or ():
            key, _, value = str(item).partition("=")
            out[key] = value
        return out

    @property
    def entrypoint(self) -> tuple[str, ...] | None:
        value = self._container().get("Entrypoint")
        return tuple(value) if value is not None else None

    @property
    def cmd(self) -> tuple[str, ...] | None:
        value = self._container().get("Cmd")
        return tuple(value) if value is not None else None

    @property
    def user(self) -> str | None:
        return self._container().get("User") or None

    @property
    def working_dir(self) -> str | None:
        return self._container().get("WorkingDir") or None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._container().get("Labels") or {})

    @property
    def exposed_ports(self) -> tuple[str, ...]:
        return tuple(sorted((self._container().get("ExposedPorts") or {}).keys()))

    @property
    def volumes(self) -> tuple[str, ...]:
        return tuple(sorted((self._container().get("Volumes") or {}).keys()))

    # -- new values ----------------------------------------------------------------------------

    def _with(self, top: Mapping[str, Any] | None = None, **container: Any) -> ImageConfig:
        data = copy.deepcopy(self._data)
        data.update(top or {})
        inner = dict(data.get("config") or {})
        for key, value in container.items():
            if value is None:
                inner.pop(key, None)
            else:
                inner[key] = value
        data["config"] = inner
        return ImageConfig._adopt(data)

    @classmethod
    def _adopt(cls, data: dict[str, Any]) -> ImageConfig:
        """Wrap a dict this module just built, skipping the defensive copy."""
        config = cls.__new__(cls)
        config._data = data
        return config

    def with_env(self, env: Mapping[str, str]) -> ImageConfig:
        """``Env`` replaced by ``env``, in order; merge with ``self.env`` to keep the base's."""
        return self._with(Env=[f"{k}={v}" for k, v in env.items()])

    def with_entrypoint(self, entrypoint: Sequence[str] | None) -> ImageConfig:
        return self._with(Entrypoint=list(entrypoint) if entrypoint is not None else None)

    def with_cmd(self, cmd: Sequence[str] | None) -> ImageConfig:
        return self._with(Cmd=list(cmd) if cmd is not None else None)

    def with_user(self, user: str | None) -> ImageConfig:
        return self._with(User=user)

    def with_working_dir(self, path: str | None) -> ImageConfig:
        return self._with(WorkingDir=path)

    def with_labels(self, labels: Mapping[str, str]) -> ImageConfig:
        return self._with(Labels=dict(sorted(labels.items())) or None)

    def with_exposed_ports(self, ports: Iterable[str]) -> ImageConfig:
        return self._with(ExposedPorts={p: {} for p in sorted(set(ports))} or None)

    def with_volumes(self, volumes: Iterable[str]) -> ImageConfig:
        return self._with(Volumes={v: {} for v in sorted(set(volumes))} or None)

    def with_created(self, created: str) -> ImageConfig:
        return self._with({"created": created})

    def with_platform(self, platform: Platform) -> ImageConfig:
        data = copy.deepcopy(self._data)
        data["os"], data["architecture"] = platform.os, platform.architecture
        if platform.variant:
            data["variant"] = platform.variant
        else:
            data.pop("variant", None)
        return ImageConfig._adopt(data)

    def with_layer_added(self, diff_id: Digest, history: Mapping[str, Any]) -> ImageConfig:
        """One more layer on top: its diff_id and a history entry that describes it."""
        data = copy.deepcopy(self._data)
        rootfs = data.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["type"] = "layers"
        rootfs.setdefault("diff_ids", []).append(str(diff_id))
        data.setdefault("history", []).append(dict(history))
        return ImageConfig._adopt(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageConfig) and self._data == other._data

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"ImageConfig({self.platform}, {len(self.diff_ids)} layers)"
