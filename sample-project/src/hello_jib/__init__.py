"""A tiny app: prints a greeting, the interpreter it runs on, and where it runs from."""

from __future__ import annotations

import os
import platform
import sys


def main() -> None:
    greeting = os.environ.get("GREETING", "Hello")
    print(f"{greeting} from hello-jib on Python {platform.python_version()} ({sys.executable})")


if __name__ == "__main__":
    main()
