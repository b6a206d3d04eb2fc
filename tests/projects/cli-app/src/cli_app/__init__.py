"""Prints a greeting escaped by markupsafe (a native wheel)."""

from markupsafe import escape

GREETING = "hello"


def main() -> None:
    print(escape(f"<{GREETING}> from cli-app"))
