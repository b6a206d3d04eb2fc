"""``[tool.jib]`` configuration: read, validated and defaulted into frozen settings.

``load_settings(pyproject, project_dir, environ=..., overrides=Overrides(...))`` is the one entry
point; every mistake in the configuration becomes a one-line :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from .load import Overrides, default_cache_dir, load_settings, read_pyproject
from .project import KNOWN_MINORS, default_python_minor
from .settings import (
    EPOCH_PLUS_SECOND,
    ContainerSettings,
    ExtraDirectory,
    FromSettings,
    FrozenMap,
    JibSettings,
    OutputPaths,
    ProjectInfo,
    PythonSettings,
    ToSettings,
)
from .values import EPOCH, ConfigError

__all__ = [
    "EPOCH",
    "EPOCH_PLUS_SECOND",
    "KNOWN_MINORS",
    "ConfigError",
    "ContainerSettings",
    "ExtraDirectory",
    "FromSettings",
    "FrozenMap",
    "JibSettings",
    "OutputPaths",
    "Overrides",
    "ProjectInfo",
    "PythonSettings",
    "ToSettings",
    "default_cache_dir",
    "default_python_minor",
    "load_settings",
    "read_pyproject",
]
