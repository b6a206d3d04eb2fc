"""``pyjib``: build, push or load any PEP 621 project's image; inspect any image.

pyjib build  [PROJECT_DIR]   the image tarball (dist/<name>-<version>-image.tar)
pyjib push   [PROJECT_DIR]   push to [tool.jib.to] image and its tags
pyjib docker [PROJECT_DIR]   load into the local engine (docker, else podman)
pyjib inspect REF|TAR        platforms, layers and config of an image
"""

from __future__ import annotations

import argparse
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyjib",
        description="Container images from Python projects, without a Docker daemon.",
    )
    parser.add_argument("--version", action="version", version=f"pyjib {jib.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
        ("build", "build the image tarball"),
        ("push", "build and push the image to its registry"),
        ("docker", "build and load the image into the local engine"),
    ):
        command = commands.add_parser(name, help=help_text)
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
    return parser


def _verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more")


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.INFO
    if args.verbose:
        level = logging.DEBUG
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

    build(args.project_dir, _COMMAND_TARGETS[args.command], overrides=overrides, report=report)
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
