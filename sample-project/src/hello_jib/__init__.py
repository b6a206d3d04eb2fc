"""A tiny app: prints a greeting, escaped by a native-wheel dependency, and where it runs."""

from __future__ import annotations

import os
import platform
import sys

from markupsafe import escape


def main() -> None:
    greeting = os.environ.get("GREETING", "Hello")
    print(f"{escape(greeting + ' <pyjib>')} from hello-jib on Python {platform.python_version()}")
    print(f"interpreter: {sys.executable}")


if __name__ == "__main__":
    main()
