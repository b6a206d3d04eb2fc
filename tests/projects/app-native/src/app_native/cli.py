"""Prints results computed by a native and a pure dependency, and a package data file."""

import sys
from importlib import resources

import markupsafe
import six
from markupsafe import _speedups  # the compiled extension: fails if the .so does not load


def main() -> None:
    print(f"escaped: {markupsafe.escape('<b>')}")
    print(f"six: {six.__name__} {six.PY3}")
    print(f"native: {_speedups.__file__.rsplit('/', 1)[-1]}")
    greeting = resources.files("app_native").joinpath("data/greeting.txt").read_text()
    print(f"data: {greeting.strip()}")
    print(f"prefix: {sys.prefix}")


if __name__ == "__main__":
    main()
