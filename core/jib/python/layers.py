"""A Python project as image layers, Jib-style: what changes least goes lowest.

1. ``dependencies``: the venv skeleton and the third-party wheels. Its bytes depend only on the
   wheels' contents, the target interpreter and the layout (plus, when bytecode is compiled, the
   compiling interpreter's magic number), never on the project's name or version, so bumping the
   version or editing the code reuses it by digest.
2. ``local-dependencies``: path/VCS/editable dependencies, installed as regular wheels.
3. ``application``: the project's own wheel (never its source tree), with its console scripts.

Empty layers are dropped. Each layer's selector names everything its bytes depend on, so with
the cache a rebuild after a one-file change only installs and writes the small application
layer.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jib
from jib.cache import Cache
from jib.errors import JibError
from jib.image.digest import Digest
from jib.layers import EPOCH_PLUS_SECOND, BuiltLayer, LayerEntry
from jib.pipeline.assemble import build_planned
from jib.plan import LayerPlan
from jib.python.install import Spool, can_precompile, install_wheels
from jib.python.target import TargetPython
from jib.python.venv import DEFAULT_APP_ROOT, VenvLayout, venv_entries

log = logging.getLogger(__name__)

DEPENDENCIES = "dependencies"
LOCAL_DEPENDENCIES = "local-dependencies"
APPLICATION = "application"

#: Bump when the way wheels become entries changes without a pyjib version change.
_SELECTOR_FORMAT = 1
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


def python_layer_plans(
    target: TargetPython,
    *,
    dependency_wheels: Sequence[Path],
    local_wheels: Sequence[Path] = (),
    project_wheel: Path | None,
    app_root: str = DEFAULT_APP_ROOT,
    compile_bytecode: bool = True,
    mtime: int = EPOCH_PLUS_SECOND,
    known_sha256: Mapping[Path, str] | None = None,
) -> list[LayerPlan]:
    """The dependency, local-dependency and application layers, as plans: each with a selector
    naming everything its bytes depend on, its entries made only if the cache lacks it.

    ``project_wheel`` is None for projects that are not packages (Poetry's non-package mode).
    Bytecode is compiled only if ``compile_bytecode`` and the host's cache tag matches the
    target's: UNCHECKED_HASH for third-party code, CHECKED_HASH for local and application code,
    which someone may patch in a derived image.
    """
    layout = VenvLayout(target, app_root)
    precompile = compile_bytecode and can_precompile(target)
    # The fetcher already knows each wheel's sha256 (its cache is keyed by it): no re-read.
    known_sha256 = known_sha256 or {}
    wanted: list[tuple[str, Sequence[Path], bool, bool]] = [
        (DEPENDENCIES, dependency_wheels, True, False),
        (LOCAL_DEPENDENCIES, local_wheels, False, True),
        (APPLICATION, [project_wheel] if project_wheel is not None else [], False, True),
    ]
    plans = []
    for name, wheels, with_skeleton, checked in wanted:
        if not wheels and not with_skeleton:
            continue
        plans.append(
            LayerPlan(
                name,
                _selector(name, layout, wheels, precompile, checked, mtime, known_sha256),
                partial(_entries, layout, tuple(wheels), with_skeleton, precompile, checked, mtime),
            )
        )
    return plans


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
    """``python_layer_plans`` built now, through a cache in ``out_dir``."""
    cache = Cache(Path(out_dir))
    built = []
    for planned in python_layer_plans(
        target,
        dependency_wheels=dependency_wheels,
        local_wheels=local_wheels,
        project_wheel=project_wheel,
        app_root=app_root,
        compile_bytecode=compile_bytecode,
    ):
        layer, cached = build_planned(cache, planned)
        if cached:
            log.debug("reusing the %s layer %s", planned.name, layer.digest)
        history = {"created_by": "pyjib", "comment": planned.name}
        built.append(PythonLayer(planned.name, layer, history))
    return PythonLayers(tuple(built))


def _entries(
    layout: VenvLayout,
    wheels: Sequence[Path],
    with_skeleton: bool,
    precompile: bool,
    checked: bool,
    mtime: int,
    scratch: Path,
) -> list[LayerEntry]:
    # The spool holds big files until the layer builder has read them.
    entries: list[LayerEntry] = []
    if with_skeleton:
        entries += venv_entries(layout.target, layout.app_root)
    entries += install_wheels(
        wheels, layout, Spool(scratch), compile_bytecode=precompile, checked_hash=checked
    )
    if mtime != EPOCH_PLUS_SECOND:  # [tool.jib.container] files-modification-time
        entries = [dataclasses.replace(entry, mtime=mtime) for entry in entries]
    return entries


def _wheel_hash(wheel: Path, known: Mapping[Path, str]) -> str:
    if wheel in known:
        return known[wheel]
    try:
        return Digest.of_file(wheel)[0].hex
    except OSError as exc:
        raise JibError(f"cannot read wheel {wheel}: {exc.strerror or exc}") from None


def _selector(
    name: str,
    layout: VenvLayout,
    wheels: Sequence[Path],
    precompile: bool,
    checked: bool,
    mtime: int,
    known: Mapping[Path, str],
) -> str:
    """Everything the layer's bytes depend on, and nothing else (not the wheels' paths or
    mtimes, nor the project's version unless it is the project's own wheel)."""
    target = layout.target
    parts = {
        "format": _SELECTOR_FORMAT,
        "layer": name,
        "pyjib": jib.__version__,
        # installer's launcher template and RECORD writer shape the bytes too.
        "installer": importlib.metadata.version("installer"),
        "python": [list(target.version), target.executable, target.abi_flags],
        "app_root": layout.app_root,
        "bytecode": importlib.util.MAGIC_NUMBER.hex() if precompile else None,
        "checked": checked,
        "mtime": mtime,
        # File names too: they order the installation (which matters where wheels overlap)
        # and name the headers directory.
        "wheels": sorted((wheel.name, _wheel_hash(wheel, known)) for wheel in wheels),
    }
    return "python-layer:" + json.dumps(parts, sort_keys=True)
