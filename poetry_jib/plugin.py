"""The entry point Poetry loads: ``poetry.application.plugin: jib = poetry_jib.plugin:JibPlugin``.

Poetry loads every application plugin before every command it runs, so this module imports
only Poetry's own classes; pyjib's core is imported when a ``jib`` command actually runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry.plugins.application_plugin import ApplicationPlugin

if TYPE_CHECKING:
    from poetry.console.commands.command import Command


class JibPlugin(ApplicationPlugin):
    """Registers ``poetry jib build``, ``poetry jib push`` and ``poetry jib docker``."""

    @property
    def commands(self) -> list[type[Command]]:
        from poetry_jib.commands import JibBuildCommand, JibDockerCommand, JibPushCommand

        return [JibBuildCommand, JibPushCommand, JibDockerCommand]
