"""``hatch build -t jib[:tar,push,docker]``: the Hatch builder target.

A thin front end: it builds the project's wheel with hatchling's own ``WheelBuilder`` (in this
process, so build hooks, ``only-include``, version sources and the like all apply), then hands
that wheel and the version hatch computed to :func:`jib.api.build`, which reads and validates
``[tool.jib]``, plans the layers and delivers the image.

hatchling calls one callable per version, one at a time; ``-t jib:tar,push`` must still build
once. So :meth:`JibBuilder.build` notes every version asked for, the first callable runs one
``jib.api.build`` with all of them as targets, and the others return what it produced.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.plugin.interface import BuilderInterface
from hatchling.plugin.manager import PluginManager

if TYPE_CHECKING:
    from jib.pipeline.run import BuildResult

#: hatch version -> the core's build target (the same names, on purpose).
VERSIONS = ("tar", "push", "docker")


class JibBuilderConfig(BuilderConfig):
    """``[tool.hatch.build.targets.jib]``: hatch's usual target options (``versions``,
    ``dependencies``, ``hooks``...). The image itself is configured in ``[tool.jib]``, which
    Poetry users and the ``pyjib`` CLI share."""


class JibBuilder(BuilderInterface[JibBuilderConfig, PluginManager]):
    PLUGIN_NAME = "jib"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requested: tuple[str, ...] = ()
        #: (directory, versions) -> {version: artifact}; one core build per key.
        self._built: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}

    @classmethod
    def get_config_class(cls) -> type[JibBuilderConfig]:
        return JibBuilderConfig

    def get_version_api(self) -> dict[str, Callable[..., str]]:
        return {"tar": self._build_tar, "push": self._build_push, "docker": self._build_docker}

    def get_default_versions(self) -> list[str]:
        return ["tar"]

    def build(
        self,
        *,
        directory: str | None = None,
        versions: list[str] | None = None,
        **kwargs: Any,
    ) -> Generator[str, None, None]:
        requested = list(versions or self.config.versions)
        unknown = [v for v in requested if v not in VERSIONS]
        if unknown:
            # hatchling's own check raises a ValueError (a traceback); say it in one line.
            self.app.abort(
                f"pyjib: error: unknown version {', '.join(unknown)} for target `jib`: "
                f"use {', '.join(VERSIONS)} (e.g. -t jib:tar,push)"
            )
        self._requested = tuple(dict.fromkeys(requested))
        yield from super().build(directory=directory, versions=list(self._requested), **kwargs)

    def clean(self, directory: str, versions: list[str]) -> None:
        """``hatch build -c -t jib``: remove this project's image tarball from ``directory``."""
        stem = f"{self.normalized_name}-{self.metadata.version}"
        for path in Path(directory).glob(f"{stem}-image.tar"):
            path.unlink(missing_ok=True)

    @property
    def normalized_name(self) -> str:
        import re

        return re.sub(r"[-_.]+", "-", self.metadata.name).lower()

    # --- the versions ----------------------------------------------------------------------------

    def _build_tar(self, directory: str, **_build_data: Any) -> str:
        return self._once(directory)["tar"]

    def _build_push(self, directory: str, **_build_data: Any) -> str:
        return self._once(directory)["push"]

    def _build_docker(self, directory: str, **_build_data: Any) -> str:
        return self._once(directory)["docker"]

    def _once(self, directory: str) -> dict[str, str]:
        key = (os.path.abspath(directory), self._requested or VERSIONS[:1])
        if key not in self._built:
            self._built[key] = self._build_image(key[0], key[1])
        return self._built[key]

    # --- the build -------------------------------------------------------------------------------

    def _build_image(self, directory: str, versions: tuple[str, ...]) -> dict[str, str]:
        from jib.errors import JibError

        with _jib_logging(self.app):
            try:
                result, tar = self._run_core(directory, versions)
            except JibError as err:
                self.app.abort(f"pyjib: error: {err}")
                raise  # abort exits; this is for type checkers
        artifacts: dict[str, str] = {}
        if "tar" in versions and tar is not None:
            artifacts["tar"] = str(tar)
        if "push" in versions:
            artifacts["push"] = f"{result.references[0].name}@{result.digest}"
        if "docker" in versions:
            artifacts["docker"] = f"{result.references[0]} (loaded into {result.engine})"
        return artifacts

    def _run_core(self, directory: str, versions: tuple[str, ...]) -> tuple[BuildResult, Path]:
        from jib import api
        from jib.config import Overrides
        from jib.planner import ProjectInputs

        root = Path(self.root)
        version = self.metadata.version  # hatch's, so dynamic versions and version sources work
        # Validate [tool.jib] before spending time on the wheel: a typo fails in milliseconds.
        settings = api.settings_for(root, overrides=Overrides(version=version))
        tar = self._tar_path(directory, settings.project.file_stem, settings.output_paths.tar)
        overrides = Overrides(version=version, tar_output=tar)

        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="pyjib-hatch-") as scratch:
            wheel = self._build_wheel(scratch)
            self.app.display_debug(
                f"built {Path(wheel).name} in {time.monotonic() - started:.2f}s", level=1
            )
            result = api.build(
                root,
                versions,
                overrides=overrides,
                inputs=ProjectInputs(wheel=Path(wheel)),
                report=self._report,
            )
        return result, tar

    def _tar_path(self, directory: str, stem: str, configured: Path) -> Path:
        """``[tool.jib.output-paths] tar`` if the project sets it, else hatch's directory (the
        ``LOCATION`` of ``hatch build``, ``[tool.hatch.build] directory``, or ``dist``)."""
        paths = self.raw_config.get("tool", {}).get("jib", {}).get("output-paths", {})
        if "tar" in paths:
            return configured
        return Path(directory) / f"{stem}-image.tar"

    def _build_wheel(self, scratch: str) -> str:
        """The project's wheel, built exactly as ``hatch build -t wheel`` would, into scratch
        (never the user's dist/)."""
        from hatchling.builders.wheel import WheelBuilder

        builder = WheelBuilder(
            self.root,
            plugin_manager=self.plugin_manager,
            config=self.raw_config,
            metadata=self.metadata,
            app=self.app,
        )
        return next(builder.build(directory=scratch, versions=["standard"]))

    def _report(self, line: str) -> None:
        # hatch prints each artifact (the tar path, image@digest) itself; the rest says how.
        if line.startswith("Wrote ") or "@sha256:" in line:
            return
        if line.startswith("Timings:"):
            self.app.display_debug(line, level=1)
        else:
            self.app.display_info(line)


class _AppHandler(logging.Handler):
    """The core's log records, shown through hatch's application (its verbosity, its stream)."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                self.app.display_error(message)
            elif record.levelno >= logging.WARNING:
                self.app.display_warning(message)
            else:
                self.app.display_info(message)  # the logger's level already filtered it
        except Exception:  # pragma: no cover - logging must never break a build
            self.handleError(record)


class _jib_logging:
    """While a build runs: ``jib`` logs at WARNING by default, INFO with ``hatch -v``, DEBUG
    (and httpx's requests) with ``-vv``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.saved: list[tuple[logging.Logger, list[logging.Handler], int, bool]] = []

    def __enter__(self) -> None:
        verbosity = getattr(self.app, "verbosity", 0)
        level = logging.WARNING
        if verbosity >= 1:
            level = logging.INFO
        if verbosity >= 2:
            level = logging.DEBUG
        handler = _AppHandler(self.app)
        for name, lvl in (("jib", level), ("httpx", logging.INFO if verbosity >= 3 else 100)):
            logger = logging.getLogger(name)
            self.saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
            logger.handlers[:] = [handler]
            logger.setLevel(lvl)
            logger.propagate = False

    def __exit__(self, *exc: object) -> None:
        for logger, handlers, level, propagate in self.saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        self.saved.clear()
