"""Hatch's entry point (``[project.entry-points.hatch] jib = "hatch_jib.hooks"``).

hatchling loads every ``hatch`` entry point of its environment for any build, so this module
stays cheap: the builder imports the core only when a ``jib`` build actually runs.
"""

from __future__ import annotations

from hatchling.plugin import hookimpl

from hatch_jib.builder import JibBuilder


@hookimpl
def hatch_register_builder() -> type[JibBuilder]:
    return JibBuilder
