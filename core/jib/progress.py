"""What a user sees while a build runs.

On a terminal: a live bar per layer (building, then its upload in bytes) and an overall bar,
drawn by rich below the log lines. Anywhere else (CI, a pipe, ``TERM=dumb``): plain timestamped
log lines, one per layer and blob, that read well in a CI log. ``-q`` shows neither.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import defaultdict
from types import TracebackType
from typing import TextIO

from jib.image.digest import Digest
from jib.pipeline.assemble import LayerOutcome
from jib.pipeline.events import BuildEvents

log = logging.getLogger("jib.build")


def is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


def size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class PlainEvents(BuildEvents):
    """Log lines: one per layer as it is done (blobs are logged by the registry client)."""

    def layer_done(self, outcome: LayerOutcome) -> None:
        how = "cached" if outcome.cached else f"built in {outcome.seconds:.2f}s"
        log.info(
            "layer %s (%s): %s, %s", outcome.name, outcome.platform, size(outcome.layer.size), how
        )

    def blob_started(self, digest: Digest, size: int, what: str) -> None:
        log.debug("pushing %s %s (%d bytes)", what, digest, size)

    def phase(self, name: str) -> None:
        log.debug("phase: %s", name)


class RichProgress(PlainEvents):
    """Live bars on a terminal; also a logging handler that prints log lines above them.

    Use as a context manager around the build: the bars disappear when it ends, leaving the log
    lines and the closing summary.
    """

    def __init__(self, stream: TextIO = sys.stderr, *, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        self.console = Console(file=stream, force_terminal=force_terminal, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=10,
        )
        self._lock = threading.Lock()
        self._overall = self.progress.add_task("[bold]image", total=None)
        self._layer_tasks: dict[tuple[str, str], object] = {}
        self._by_digest: defaultdict[str, list[object]] = defaultdict(list)
        # Per task: (completed, total) bytes, summed into the overall bar.
        self._bytes: dict[object, tuple[int, int]] = {}
        self._names: dict[object, str] = {}

    # -- logging -------------------------------------------------------------------------------

    def log_handler(self) -> logging.Handler:
        from rich.logging import RichHandler

        handler = RichHandler(
            console=self.console,
            show_path=False,
            show_level=False,
            markup=False,
            log_time_format="%H:%M:%S",
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    # -- events --------------------------------------------------------------------------------

    def layers_planned(self, names: list[tuple[str, str]]) -> None:
        with self._lock:
            several = len({platform for platform, _ in names}) > 1
            for platform, name in names:
                label = f"{name} [dim]{platform}[/]" if several else name
                task = self.progress.add_task(f"  {label} building", total=None)
                self._layer_tasks[(platform, name)] = task
                self._names[task] = label

    def layer_done(self, outcome: LayerOutcome) -> None:
        super().layer_done(outcome)
        layer = outcome.layer
        how = "cached" if outcome.cached else "built"
        with self._lock:
            task = self._layer_tasks.get((outcome.platform, outcome.name))
            if task is None:
                return
            self._by_digest[str(layer.digest)].append(task)
            self.progress.update(
                task,  # type: ignore[arg-type]
                description=f"  {self._names[task]} {how}",
                total=layer.size,
                completed=layer.size,
            )

    def blob_started(self, digest: Digest, size: int, what: str) -> None:
        super().blob_started(digest, size, what)
        with self._lock:
            tasks = self._by_digest.get(str(digest))
            if not tasks:
                tasks = [self.progress.add_task(f"  {what}", total=size)]
                self._names[tasks[0]] = what
                self._by_digest[str(digest)] = tasks
            for task in tasks:
                self.progress.update(task, total=size, completed=0)  # type: ignore[arg-type]
            self._bytes[tasks[0]] = (0, size)
            self._update_overall()

    def blob_progress(self, digest: Digest, sent: int) -> None:
        with self._lock:
            tasks = self._by_digest.get(str(digest), [])
            for task in tasks:
                self.progress.update(task, completed=sent)  # type: ignore[arg-type]
            if tasks and tasks[0] in self._bytes:
                self._bytes[tasks[0]] = (sent, self._bytes[tasks[0]][1])
                self._update_overall()

    def blob_done(self, digest: Digest, how: str) -> None:
        with self._lock:
            tasks = self._by_digest.get(str(digest), [])
            total = self._bytes.get(tasks[0], (0, 0))[1] if tasks else 0
            for task in tasks:
                self.progress.update(
                    task,  # type: ignore[arg-type]
                    description=f"  {self._names[task]} {how}",
                    completed=total,
                )
            if tasks and tasks[0] in self._bytes:
                total = self._bytes[tasks[0]][1]
                if how == "uploaded":
                    self._bytes[tasks[0]] = (total, total)
                else:
                    # Not sent: the overall bar counts only bytes that really go over the wire.
                    del self._bytes[tasks[0]]
                self._update_overall()

    def phase(self, name: str) -> None:
        super().phase(name)
        with self._lock:
            self.progress.update(self._overall, description=f"[bold]image[/] {name}")  # type: ignore[arg-type]

    def _update_overall(self) -> None:
        done = sum(c for c, _ in self._bytes.values())
        total = sum(t for _, t in self._bytes.values())
        self.progress.update(self._overall, completed=done, total=total)  # type: ignore[arg-type]


def events_for(stream: TextIO, *, quiet: bool) -> BuildEvents:
    """The listener to use for output going to ``stream``."""
    if quiet:
        return BuildEvents()
    return RichProgress(stream) if is_terminal(stream) else PlainEvents()
