"""``pyjib``: build, push or load any PEP 621 project's image; inspect any image.

pyjib build  [PROJECT_DIR]   the image tarball (dist/<name>-<version>-image.tar)
pyjib push   [PROJECT_DIR]   push to [tool.jib.to] image and its tags
pyjib docker [PROJECT_DIR]   load into the local engine (docker, else podman)
pyjib inspect REF|TAR        platforms, layers and config of an image
pyjib cache dir|size|prune   where the cache is, how big, and shrinking it
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import jib
from jib.config import Overrides
from jib.errors import JibError

_COMMAND_TARGETS = {"build": ("tar",), "push": ("push",), "docker": ("docker",)}

_ENVIRONMENT = """\
environment:
  JIB_CACHE_DIR        the cache (default: the user cache dir + pyjib, e.g. ~/.cache/pyjib)
  JIB_CACHE_MAX_SIZE   the cache's size cap, e.g. 2GB, 500MB, 1.5GiB (default 5GB); when a
                       build ends over it, least-recently-used entries are deleted
  JIB_TO_IMAGE, JIB_FROM_IMAGE, JIB_TO_TAGS, JIB_PLATFORMS, JIB_ALLOW_INSECURE_REGISTRIES,
  JIB_{FROM,TO}_{USERNAME,PASSWORD}   override [tool.jib] (see the docs)

output: live progress bars on a terminal; plain timestamped lines in CI or a pipe (or with
TERM=dumb); -q prints only the result, -v adds detail, -vv every HTTP request.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyjib",
        description="Container images from Python projects, without a Docker daemon.",
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pyjib {jib.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
        ("build", "build the image tarball"),
        ("push", "build and push the image to its registry"),
        ("docker", "build and load the image into the local engine"),
    ):
        command = commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=_ENVIRONMENT,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_argument("project_dir", nargs="?", default=".", type=Path)
        command.add_argument("-i", "--image", help="target image (overrides [tool.jib.to])")
        command.add_argument("-t", "--tag", action="append", default=[], help="extra tag")
        command.add_argument("--from-image", help="base image (overrides [tool.jib.from])")
        command.add_argument("--platform", action="append", default=[], help="os/arch[/variant]")
        command.add_argument("--allow-insecure-registries", action="store_true", default=None)
        command.add_argument("--output", type=Path, help="tarball path")
        _verbosity(command)
    inspect = commands.add_parser("inspect", help="show an image's platforms, layers, config")
    inspect.add_argument("image", help="an image reference, a tarball, tar://PATH or oci://DIR")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument("--allow-insecure-registries", action="store_true")
    _verbosity(inspect)
    _cache_parser(commands)
    return parser


def _cache_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cache = commands.add_parser(
        "cache",
        help="show or prune the build cache",
        description="The build cache of layers, base blobs and wheels (JIB_CACHE_DIR).",
        epilog="JIB_CACHE_MAX_SIZE (default 5GB) is the cap every build keeps the cache under; "
        "`prune` applies it (or --max-size) now.",
    )
    actions = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    actions.add_parser("dir", help="print the cache directory")
    actions.add_parser("size", help="print the cache's size and its cap")
    prune = actions.add_parser(
        "prune",
        help="delete least-recently-used entries down to the cap",
        description="Delete least-recently-used entries until the cache is at most its cap "
        "(JIB_CACHE_MAX_SIZE, default 5GB, or --max-size). Waits for running builds to end; "
        "never deletes an entry a build is using.",
    )
    prune.add_argument("--max-size", help="the size to prune down to, e.g. 2GB, 500MB, 0")
    prune.add_argument("--all", action="store_true", help="empty the cache")
    for action in actions.choices.values():
        _verbosity(action)


def _verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more")


def _configure_logging(args: argparse.Namespace, handler: logging.Handler | None = None) -> None:
    level = logging.WARNING if args.quiet else logging.INFO
    if args.verbose:
        level = logging.DEBUG
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        # Timestamps where nobody watches (CI, a pipe); a terminal shows the message alone.
        fmt = "%(message)s" if sys.stderr.isatty() else "%(asctime)s %(message)s"
        handler.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
    root = logging.getLogger("jib")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request at INFO; only -vv wants that.
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose > 1 else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args)
    try:
        if args.command == "inspect":
            return _inspect(args)
        if args.command == "cache":
            return _cache(args)
        return _build(args)
    except JibError as err:
        print(f"pyjib: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pyjib: interrupted", file=sys.stderr)
        return 130


def _build(args: argparse.Namespace) -> int:
    from jib.api import build

    overrides = Overrides(
        to_image=args.image,
        tags=tuple(args.tag),
        from_image=args.from_image,
        platforms=tuple(args.platform),
        allow_insecure_registries=args.allow_insecure_registries,
        tar_output=args.output.resolve() if args.output else None,
    )
    quiet = args.quiet

    def report(line: str) -> None:
        # -q keeps only what a script consumes: the pushed digest reference, or the tar path.
        if not quiet or line.startswith(("Wrote ", "Loaded ")) or "@sha256:" in line:
            print(line)

    from jib.progress import RichProgress, events_for

    events = events_for(sys.stderr, quiet=quiet)
    live: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if isinstance(events, RichProgress):
        # Log lines go through rich too, so they print above the live bars, not through them.
        _configure_logging(args, events.log_handler())
        live = events
    lines: list[str] = []
    with live:
        # The summary waits until the bars are gone, so it is not drawn among them.
        build(
            args.project_dir,
            _COMMAND_TARGETS[args.command],
            overrides=overrides,
            report=lines.append,
            events=events,
        )
    for line in lines:
        report(line)
    return 0


def _cache(args: argparse.Namespace) -> int:
    from jib.cache import Cache, max_size_from, parse_size, prune
    from jib.cache.prune import total_size
    from jib.config.load import default_cache_dir
    from jib.sizes import human

    value = os.environ.get("JIB_CACHE_DIR", "").strip()
    root = Path(value).expanduser().absolute() if value else default_cache_dir()
    if args.cache_command == "dir":
        print(root)
        return 0
    cap = max_size_from()
    if args.cache_command == "size":
        size = total_size(root) if root.is_dir() else 0
        print(f"{human(size)} in {root} (cap {human(cap)})")
        return 0
    if args.max_size is not None:
        try:
            cap = parse_size(args.max_size)
        except ValueError as err:
            raise JibError(f"--max-size: {err}") from None
    cache = Cache(root)
    result = prune(cache, cap, everything=args.all, wait=False)
    if result.skipped:
        print("pyjib: waiting for running builds to finish...", file=sys.stderr)
        result = prune(cache, cap, everything=args.all, wait=True)
    print(
        f"Removed {result.removed} entries ({human(result.freed)}) and "
        f"{result.temp_removed} leftover temporary files; {human(result.size_after)} in {root}"
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from jib.inspect import inspect, render

    info = inspect(args.image, insecure=args.allow_insecure_registries or _env_insecure())
    print(json.dumps(info, indent=2) if args.json else render(info))
    return 0


def _env_insecure() -> bool:
    return os.environ.get("JIB_ALLOW_INSECURE_REGISTRIES", "").lower() in ("1", "true", "yes")


if __name__ == "__main__":
    sys.exit(main())
