import os
import sys
from importlib.resources import files

from markupsafe import escape

from hatch_app.__about__ import __version__

MESSAGE = "hatch-app says hi"


def main() -> None:
    data = files("hatch_app").joinpath("greeting.txt").read_text().strip()
    greeting = os.environ.get("APP_GREETING", "?")
    python = sys.version.split()[0]
    print(f"{greeting}: {MESSAGE} {__version__} ({escape('<' + data + '>')}) on {python}")
