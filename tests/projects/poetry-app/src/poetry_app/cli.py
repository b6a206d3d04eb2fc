import importlib.resources
import os

import localdep
import markupsafe


def main() -> None:
    print("escaped:", markupsafe.escape("<b>"))
    print("native:", os.path.basename(markupsafe._speedups.__file__))
    print("local:", localdep.greet())
    shipped = importlib.resources.files("poetry_app").joinpath("not_shipped.txt").is_file()
    print("excluded file shipped:", shipped)
