"""``poetry jib build | push | docker``: Poetry's project, lock and groups handed to pyjib's core.

What Poetry knows is taken from Poetry (its API, in its own process):

- the lock must be fresh (``Locker.is_fresh()``), else Poetry's own advice to run ``poetry lock``;
- the dependency groups come from ``--with/--without/--only/--all-groups`` with the semantics of
  ``poetry install`` (unknown groups rejected the same way), except that the default is the main
  group only: an image carries what the application needs at run time;
- the project's wheel is built with poetry-core in-process, so Poetry's includes, excludes and
  package settings apply; where ``poetry build`` itself would build in an isolated environment
  (a build script, another backend, a poetry-core the project does not allow), the core builds
  it the same way, through the project's PEP 517 backend.

What must be decided for the image, not for this machine, is left to the core: it reads
``poetry.lock`` once per target platform, evaluating every marker for the image's interpreter
and platform, and fetches each wheel from the index the lock names, checking the lock's hashes.
Poetry's credentials for each source (``http-basic.<source>``, its environment variables, the
keyring) go with it, by the source's URL; a source that refuses them is named in the error.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import option
from cleo.io.outputs.output import Verbosity
from poetry.console.commands.group_command import GroupCommand

if TYPE_CHECKING:
    from cleo.io.inputs.option import Option
    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from jib.python.indextls import IndexTLS

#: The lines a script reads back, still printed under ``-q`` (as ``pyjib -q`` does).
_RESULT_PREFIXES = ("Wrote ", "Loaded ")


class JibCommandError(Exception):
    """A failure found by the plugin itself (lock state, options); printed as one line."""


def _jib_options() -> list[Option]:
    return [
        option(
            "image",
            "i",
            "The image to build, e.g. registry.example.com/team/app:1.0 "
            "(overrides [tool.jib.to] image).",
            flag=False,
        ),
        option(
            "tag",
            "t",
            "An extra tag for the image (replaces [tool.jib.to] tags).",
            flag=False,
            multiple=True,
        ),
        option(
            "from-image",
            None,
            "The base image (overrides [tool.jib.from] image).",
            flag=False,
        ),
        option(
            "platform",
            None,
            "A target platform, os/arch[/variant] (overrides [tool.jib.from] platforms).",
            flag=False,
            multiple=True,
        ),
        option(
            "allow-insecure-registries",
            None,
            "Allow plain HTTP and unverified TLS for non-loopback registries.",
        ),
        option(
            "output",
            None,
            "Where to write the image tarball (overrides [tool.jib.output-paths] tar).",
            flag=False,
        ),
        *GroupCommand._group_dependency_options(),
        option("all-groups", None, "Include dependencies from all groups."),
        option(
            "extras",
            "E",
            "Extra sets of dependencies to include.",
            flag=False,
            multiple=True,
        ),
        option("all-extras", None, "Include all extra dependencies."),
    ]


class JibCommand(GroupCommand):
    """What ``jib build``, ``jib push`` and ``jib docker`` share; they differ in ``targets``."""

    targets: ClassVar[tuple[str, ...]] = ("tar",)
    #: Poetry shows these loggers' records in its own style, as `poetry build` does.
    loggers: ClassVar[list[str]] = [  # type: ignore[misc]
        "poetry.core.masonry.builders.builder",
        "poetry.core.masonry.builders.wheel",
    ]
    options: ClassVar[list[Option]] = _jib_options()  # type: ignore[misc]

    @property
    def default_groups(self) -> set[str]:
        # `poetry install` defaults to every non-optional group; an image wants only what the
        # application runs with. `--with dev` adds a group, as it does for install.
        return {"main"}

    def handle(self) -> int:
        from poetry.console.exceptions import PoetryConsoleError

        from jib.errors import JibError

        try:
            return self._build()
        except (JibError, JibCommandError) as err:
            self._error(_escape(str(err)))
            return 1
        except PoetryConsoleError as err:  # Poetry's own messages carry cleo markup
            self._error(str(err))
            return 1
        except KeyboardInterrupt:
            self._error("interrupted")
            return 130

    # -- the steps ----------------------------------------------------------------------------

    def _build(self) -> int:
        from jib.api import build, settings_for
        from jib.planner import ProjectInputs
        from jib.python.index import IndexAccessError

        poetry = self.poetry
        project_dir = poetry.pyproject_path.parent
        if self.option("all-groups") and any(
            self.option(key) for key in ("with", "without", "only")
        ):
            raise JibCommandError(
                "You cannot specify `--with`, `--without`, or `--only` when using `--all-groups`."
            )
        groups = tuple(sorted(self.activated_groups))
        extras = self._extras(poetry)
        if self._uses_poetry_lock(poetry):
            self._check_lock(poetry)
        overrides = self._overrides(poetry)
        # [tool.jib] and the option values are checked before the wheel is built.
        settings_for(project_dir, overrides=overrides)
        sources = _sources(poetry)
        package = poetry.package
        self.line(
            f"Building the image of <c1>{_escape(package.pretty_name)}</c1> "
            f"(<c2>{_escape(package.pretty_version)}</c2>) with groups: "
            f"<info>{', '.join(groups)}</info>"
        )
        with _jib_logging(self.io), tempfile.TemporaryDirectory(prefix="poetry-jib-") as tmp:
            wheel = self._project_wheel(poetry, Path(tmp))
            inputs = ProjectInputs(
                wheel=wheel,
                extras=extras,
                groups=groups,
                package=poetry.is_package_mode,
                index_auth=_index_credentials(poetry, sources),
                index_tls=_index_tls(poetry, sources),
            )
            try:
                build(
                    project_dir,
                    self.targets,
                    overrides=overrides,
                    inputs=inputs,
                    report=self._report,
                    **_progress(build, self.io),
                )
            except IndexAccessError as err:
                raise JibCommandError(_refused(err, sources)) from None
        return 0

    def _extras(self, poetry: Poetry) -> tuple[str, ...]:
        if self.option("all-extras"):
            if self.option("extras"):
                raise JibCommandError(
                    "You cannot specify explicit `--extras` while using `--all-extras`."
                )
            return tuple(sorted(poetry.locker.lock_data.get("extras", {}) or ()))
        return tuple(
            sorted({e for value in self.option("extras") for e in value.replace(",", " ").split()})
        )

    def _uses_poetry_lock(self, poetry: Poetry) -> bool:
        """Whether the core will read poetry.lock: ``[tool.jib.python] lock`` may name another."""
        tool = poetry.pyproject.data.get("tool")
        jib = tool.get("jib") if isinstance(tool, dict) else None
        python = jib.get("python") if isinstance(jib, dict) else None
        lock = python.get("lock", "auto") if isinstance(python, dict) else "auto"
        return lock == "auto" or Path(str(lock)).name == "poetry.lock"

    def _check_lock(self, poetry: Poetry) -> None:
        locker = poetry.locker
        if not locker.is_locked():
            raise JibCommandError(
                "poetry.lock not found. Run `poetry lock` to create it: "
                "the image is built from the locked dependencies."
            )
        if not locker.is_fresh():
            # Poetry's own words (poetry/installation/installer.py) for the same state.
            raise JibCommandError(
                "pyproject.toml changed significantly since poetry.lock was last generated. "
                "Run `poetry lock` to fix the lock file."
            )

    def _overrides(self, poetry: Poetry) -> Any:
        from jib.config import Overrides

        output = self.option("output")
        return Overrides(
            to_image=self.option("image") or None,
            tags=tuple(self.option("tag") or ()),
            from_image=self.option("from-image") or None,
            platforms=tuple(self.option("platform") or ()),
            allow_insecure_registries=True if self.option("allow-insecure-registries") else None,
            tar_output=Path(output).resolve() if output else None,
            version=str(poetry.package.version),
        )

    def _project_wheel(self, poetry: Poetry, out_dir: Path) -> Path | None:
        """The project's wheel, built by poetry-core here; None: the core builds it (PEP 517),
        or, in non-package mode (``package-mode = false``), there is none."""
        if not poetry.is_package_mode:
            return None
        if self._needs_isolated_build(poetry):
            self.line("  - Building wheel (isolated, through the project's build backend)")
            return None
        from poetry.core.masonry.builders.wheel import WheelBuilder

        # "Building wheel" / "Built ...whl" come from poetry-core's loggers (``loggers``).
        try:
            name = WheelBuilder.make_in(poetry, directory=out_dir)
        except Exception as err:  # poetry-core raises plain exceptions for bad packaging
            message = " ".join(str(err).split()) or type(err).__name__
            raise JibCommandError(f"Building the wheel of the project failed: {message}") from err
        return out_dir / name

    @staticmethod
    def _needs_isolated_build(poetry: Poetry) -> bool:
        """``poetry build``'s own rule (``BuildHandler._requires_isolated_build``)."""
        from importlib import metadata

        from poetry.core.constraints.version import Version

        if "build-backend" not in poetry.pyproject.data.get("build-system", {}):
            return False  # Poetry falls back to its own poetry-core too
        requires = poetry.build_system_dependencies
        if poetry.package.build_script or len(requires) != 1:
            return True
        dependency = requires[0]
        if dependency.name != "poetry-core":
            return True
        installed = Version.parse(metadata.version("poetry-core"))
        return bool(not dependency.constraint.allows(installed) or dependency.source_type)

    # -- output -------------------------------------------------------------------------------

    def _report(self, line: str) -> None:
        text = _escape(line)
        if line.startswith(_RESULT_PREFIXES) or "@sha256:" in line:
            self.io.write_line(f"<info>{text}</info>", verbosity=Verbosity.QUIET)
        else:
            self.line(text)

    def _error(self, markup: str) -> None:
        """One line, in Poetry's error style."""
        self.line_error(f"<error>{' '.join(markup.split())}</error>")


class JibBuildCommand(JibCommand):
    name = "jib build"
    description = "Builds the project's container image as a tarball (docker/podman load)."
    targets = ("tar",)


class JibPushCommand(JibCommand):
    name = "jib push"
    description = "Builds the project's container image and pushes it to a registry."
    targets = ("push",)


class JibDockerCommand(JibCommand):
    name = "jib docker"
    description = "Builds the project's container image and loads it into Docker (or Podman)."
    targets = ("docker",)


def _sources(poetry: Poetry) -> dict[str, str]:
    """Every package source the project may fetch from, URL -> name: pyproject's
    ``[[tool.poetry.source]]``, the pool Poetry built from them, and the sources the lock names
    (``[package.source] reference``)."""
    sources: dict[str, str] = {}
    for source in poetry.get_sources():
        if source.url:
            sources.setdefault(source.url, source.name)
    for repository in getattr(poetry.pool, "repositories", ()):
        url = getattr(repository, "url", None)
        if isinstance(url, str) and url and repository.name.lower() != "pypi":
            sources.setdefault(url, repository.name)
    try:
        lock_data = poetry.locker.lock_data if poetry.locker.is_locked() else {}
    except Exception:  # an unreadable lock is reported by the core, in its own words
        lock_data = {}
    for entry in lock_data.get("package") or ():
        source = entry.get("source") or {}
        if source.get("type") == "legacy" and source.get("url") and source.get("reference"):
            sources.setdefault(str(source["url"]), str(source["reference"]))
    return sources


def _index_credentials(poetry: Poetry, sources: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Poetry's credentials for each source (``poetry config http-basic.<name>``, its
    ``POETRY_HTTP_BASIC_<NAME>_USERNAME/PASSWORD`` variables, the keyring), by the source's URL.

    Read through Poetry's own ``Authenticator``, as ``poetry install`` reads them. The passwords
    go to the core only: never logged, never in a message.
    """
    from poetry.utils.authenticator import Authenticator

    authenticator = Authenticator(poetry.config)
    for url, name in sources.items():
        authenticator.add_repository(name, url)
    credentials: dict[str, tuple[str, str]] = {}
    for url, name in sources.items():
        try:
            found = authenticator.get_http_auth(name)
        except Exception as err:  # a keyring that cannot be read: as if nothing were stored
            logging.getLogger("jib.poetry").warning(
                "cannot read the credentials of source %s: %s", name, type(err).__name__
            )
            continue
        if found is not None and (found.username or found.password):
            credentials[url] = (found.username or "", found.password or "")
    return credentials


def _index_tls(poetry: Poetry, sources: dict[str, str]) -> dict[str, IndexTLS]:
    """Poetry's TLS settings for each source (``poetry config certificates.<name>.cert``,
    ``.client-cert``, ``cert = false``), by the source's URL, read as Poetry reads them."""
    from poetry.utils.authenticator import RepositoryCertificateConfig

    from jib.python.indextls import IndexTLS

    settings: dict[str, IndexTLS] = {}
    for url, name in sources.items():
        certs = RepositoryCertificateConfig.create(name, poetry.config)
        if certs.cert or certs.client_cert or not certs.verify:
            settings[url] = IndexTLS(
                ca=certs.cert, client_cert=certs.client_cert, verify=certs.verify
            )
    return settings


def _refused(err: Any, sources: dict[str, str]) -> str:
    """A 401/403 from a package index, in Poetry's terms: which source, which setting."""
    from jib.python.index import IndexAuth, redact

    given = IndexAuth(dict.fromkeys(sources, ("", ""))).index_for(err.url)
    if given is None:
        return str(err)
    name = sources[given]
    if err.credentials:
        return (
            f"the package index {redact(given)} refused the credentials for source {name} "
            f"({err.status}): check `poetry config http-basic.{name}`"
        )
    return (
        f"the package index {redact(given)} refused access for source {name} ({err.status}): "
        f"set its credentials with `poetry config http-basic.{name} <username> <password>`"
    )


def _escape(text: str) -> str:
    return Formatter.escape(text)


class _IOHandler(logging.Handler):
    """pyjib's log records as Poetry-style lines on the command's IO: progress on stdout,
    warnings and errors on stderr."""

    def __init__(self, io: IO) -> None:
        super().__init__()
        self._io = io

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            text = _escape(message.strip())
            if record.levelno >= logging.WARNING:
                self._io.write_error_line(f"<warning>{text}</warning>")
            elif record.levelno >= logging.INFO:
                # Nested lines (a plan's platforms) keep their indent under the bullet.
                indent = " " * (len(message) - len(message.lstrip()))
                self._io.write_line(f"  {indent}- {text}")
            else:
                self._io.write_line(f"<debug>{text}</debug>")
        except Exception:
            self.handleError(record)


def _levels(io: IO) -> tuple[int, int]:
    """(``jib`` logger level, ``httpx`` logger level) for cleo's verbosity."""
    if io.output.is_quiet():
        return logging.ERROR, logging.ERROR
    if io.is_debug():  # -vvv: every request too
        return logging.DEBUG, logging.DEBUG
    if io.is_very_verbose():  # -vv
        return logging.DEBUG, logging.INFO
    if io.is_verbose():  # -v
        return logging.DEBUG, logging.WARNING
    return logging.INFO, logging.WARNING


@contextmanager
def _jib_logging(io: IO) -> Iterator[None]:
    """Route the ``jib`` logger (and httpx's) to ``io`` at its verbosity, for one command."""
    handler = _IOHandler(io)
    loggers = [logging.getLogger("jib"), logging.getLogger("httpx")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    for logger, level in zip(loggers, _levels(io), strict=True):
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def _progress(build: Any, io: IO) -> dict[str, Any]:
    """``events=`` for the core's build: on a terminal, each upload as one line that Poetry-style
    updates in place (as ``poetry install`` shows downloads); elsewhere the core's plain log
    lines. Empty where the core has no progress events."""
    if "events" not in inspect.signature(build).parameters:
        return {}
    try:
        from jib.progress import PlainEvents
    except ImportError:
        return {}
    if io.output.is_quiet():
        from jib.pipeline.events import BuildEvents

        return {"events": BuildEvents()}
    if not io.output.is_decorated():
        return {"events": PlainEvents()}

    class SectionEvents(PlainEvents):  # type: ignore[misc, valid-type]
        """One cleo section per blob: ``  - Pushing layer (1.2 MB): 40%`` -> ``: uploaded``."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._blobs: dict[Any, tuple[Any, str, int, int]] = {}

        def blob_started(self, digest: Any, size: int, what: str) -> None:
            super().blob_started(digest, size, what)
            with self._lock:
                section = io.section()
                self._blobs[digest] = (section, what, size, -1)
                section.write_line(f"  - Pushing <c1>{_escape(what)}</c1>: <comment>0%</>")

        def blob_progress(self, digest: Any, sent: int) -> None:
            with self._lock:
                if digest not in self._blobs:
                    return
                section, what, size, shown = self._blobs[digest]
                percent = min(100, sent * 100 // size) if size else 100
                if percent // 5 != shown // 5:
                    self._blobs[digest] = (section, what, size, percent)
                    section.overwrite(
                        f"  - Pushing <c1>{_escape(what)}</c1>: <comment>{percent}%</>"
                    )

        def blob_done(self, digest: Any, how: str) -> None:
            with self._lock:
                if digest not in self._blobs:
                    return
                section, what, _, _ = self._blobs.pop(digest)
                section.overwrite(f"  - Pushed <c1>{_escape(what)}</c1>: <success>{how}</>")

    return {"events": SectionEvents()}
