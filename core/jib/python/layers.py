"""A Python project as image layers, Jib-style: what changes least goes lowest.

1. ``dependencies``: the venv skeleton and the third-party wheels. Its bytes depend only on the
   wheels' contents, the target interpreter and the layout (plus, when bytecode is compiled, the
   compiling interpreter's magic number), never on the project's name or version, so bumping the
   version or editing the code reuses it by digest.
2. ``local-dependencies``: path/VCS/editable dependencies, installed as regular wheels.
3. ``application``: the project's own wheel (never its source tree), with its console scripts.

Empty layers are dropped. Each layer is memoized in ``out_dir`` under a key of everything its
bytes depend on, so a rebuild after a one-file change only installs and writes the small
application layer; a stale or missing memo just means the layer is built again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jib
from jib.atomic import write_bytes
from jib.errors import JibError
from jib.image.digest import Digest
from jib.layers import BuiltLayer, LayerEntry, build_layer
from jib.python.install import Spool, can_precompile, install_wheels
from jib.python.target import TargetPython
from jib.python.venv import DEFAULT_APP_ROOT, VenvLayout, venv_entries

log = logging.getLogger(__name__)

DEPENDENCIES = "dependencies"
LOCAL_DEPENDENCIES = "local-dependencies"
APPLICATION = "application"

#: Bump when the way wheels become entries changes without a pyjib version change.
_MEMO_FORMAT = 1
_MEMO_DIR = "python-layers"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class PythonLayer:
    """One built layer with the history entry that goes with it in the image config."""

    name: str
    layer: BuiltLayer
    #: ``created_by`` and ``comment``; the image assembler adds ``created`` per its time policy.
    history: Mapping[str, str]


@dataclass(frozen=True)
class PythonLayers:
    """The non-empty Python layers, bottom to top."""

    layers: tuple[PythonLayer, ...]

    def get(self, name: str) -> PythonLayer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def additions(self) -> list[tuple[BuiltLayer, dict[str, str]]]:
        """What ``jib.image.mutate.append_layers`` takes."""
        return [(layer.layer, dict(layer.history)) for layer in self.layers]


def container_env(
    target: TargetPython,
    app_root: str = DEFAULT_APP_ROOT,
    base_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The base image's environment with the venv activated: ``PATH`` starting with the venv's
    ``bin`` (then the base's ``PATH``, or the usual default), ``VIRTUAL_ENV``, and
    ``PYTHONUNBUFFERED=1`` unless the base already chose. ``[tool.jib.container] environment``
    goes on top of this."""
    layout = VenvLayout(target, app_root)
    base_env = base_env or {}
    base_path = base_env.get("PATH") or _DEFAULT_PATH
    # A base built from a pyjib image already has our bin on PATH; don't list it twice.
    rest = [part for part in base_path.split(":") if part and part != layout.bin]
    env = dict(base_env)
    env["PATH"] = ":".join([layout.bin, *rest])
    env["VIRTUAL_ENV"] = layout.venv
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def python_layers(
    target: TargetPython,
    *,
    dependency_wheels: Sequence[Path],
    local_wheels: Sequence[Path] = (),
    project_wheel: Path | None,
    app_root: str = DEFAULT_APP_ROOT,
    out_dir: Path,
    compile_bytecode: bool = True,
) -> PythonLayers:
    """Build (or reuse from ``out_dir``) the dependency, local-dependency and application layers.

    ``project_wheel`` is None for projects that are not packages (Poetry's non-package mode).
    Bytecode is compiled only if ``compile_bytecode`` and the host's cache tag matches the
    target's: UNCHECKED_HASH for third-party code, CHECKED_HASH for local and application code,
    which someone may patch in a derived image.
    """
    layout = VenvLayout(target, app_root)
    precompile = compile_bytecode and can_precompile(target)
    out_dir = Path(out_dir)
    plan: list[tuple[str, Sequence[Path], bool, bool]] = [
        (DEPENDENCIES, dependency_wheels, True, False),
        (LOCAL_DEPENDENCIES, local_wheels, False, True),
        (APPLICATION, [project_wheel] if project_wheel is not None else [], False, True),
    ]
    built: list[PythonLayer] = []
    for name, wheels, with_skeleton, checked in plan:
        if not wheels and not with_skeleton:
            continue
        key = _memo_key(name, layout, wheels, precompile, checked)
        layer = _recall(out_dir, key)
        if layer is None:
            layer = _build(layout, wheels, with_skeleton, precompile, checked, out_dir)
            _remember(out_dir, key, layer)
        else:
            log.debug("reusing the %s layer %s", name, layer.digest)
        built.append(PythonLayer(name, layer, {"created_by": "pyjib", "comment": name}))
    return PythonLayers(tuple(built))


def _build(
    layout: VenvLayout,
    wheels: Sequence[Path],
    with_skeleton: bool,
    precompile: bool,
    checked: bool,
    out_dir: Path,
) -> BuiltLayer:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        spool_dir = tempfile.TemporaryDirectory(prefix=".spool-", dir=out_dir)
    except OSError as exc:
        raise JibError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    # The spool holds big files until the layer builder has read them.
    with spool_dir as spool_path:
        entries: list[LayerEntry] = []
        if with_skeleton:
            entries += venv_entries(layout.target, layout.app_root)
        entries += install_wheels(
            wheels,
            layout,
            Spool(Path(spool_path)),
            compile_bytecode=precompile,
            checked_hash=checked,
        )
        return build_layer(entries, out_dir)


def _wheel_hash(wheel: Path) -> str:
    try:
        digest = hashlib.sha256()
        with wheel.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError as exc:
        raise JibError(f"cannot read wheel {wheel}: {exc.strerror or exc}") from None


def _memo_key(
    name: str,
    layout: VenvLayout,
    wheels: Sequence[Path],
    precompile: bool,
    checked: bool,
) -> str:
    """A hash of everything the layer's bytes depend on, and nothing else (not the wheels'
    paths or mtimes, nor the project's version unless it is the project's own wheel)."""
    target = layout.target
    parts = {
        "format": _MEMO_FORMAT,
        "layer": name,
        "pyjib": jib.__version__,
        # installer's launcher template and RECORD writer shape the bytes too.
        "installer": importlib.metadata.version("installer"),
        "python": [list(target.version), target.executable, target.abi_flags],
        "app_root": layout.app_root,
        "bytecode": importlib.util.MAGIC_NUMBER.hex() if precompile else None,
        "checked": checked,
        # File names too: they order the installation (which matters where wheels overlap)
        # and name the headers directory.
        "wheels": sorted((wheel.name, _wheel_hash(wheel)) for wheel in wheels),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _recall(out_dir: Path, key: str) -> BuiltLayer | None:
    memo = out_dir / _MEMO_DIR / f"{key}.json"
    try:
        data = json.loads(memo.read_text())
        path = out_dir / data["file"]
        layer = BuiltLayer(
            path=path,
            digest=Digest.parse(data["digest"]),
            diff_id=Digest.parse(data["diff_id"]),
            size=int(data["size"]),
            uncompressed_size=int(data["uncompressed_size"]),
            media_type=data["media_type"],
        )
        if path.stat().st_size != layer.size:
            return None
    except (OSError, ValueError, KeyError, TypeError, JibError):
        return None
    return layer


def _remember(out_dir: Path, key: str, layer: BuiltLayer) -> None:
    data = {
        "file": layer.path.name,
        "digest": str(layer.digest),
        "diff_id": str(layer.diff_id),
        "size": layer.size,
        "uncompressed_size": layer.uncompressed_size,
        "media_type": layer.media_type,
    }
    try:
        (out_dir / _MEMO_DIR).mkdir(parents=True, exist_ok=True)
        write_bytes(out_dir / _MEMO_DIR / f"{key}.json", json.dumps(data).encode())
    except OSError as exc:
        # A memo is an optimization: failing to write one costs a rebuild, not the build.
        log.debug("cannot remember layer %s: %s", layer.digest, exc)
