"""The image's default entrypoint when ``[tool.jib.container] entrypoint`` is not set.

Only unambiguous cases are inferred, as ko does for a Go main package: the project's one
console script, else its one top-level package that can run as ``python -m``. Anything else
is an error that lists what was found, since a guess would build an image that runs the wrong
thing only when deployed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from jib.errors import JibError
from jib.python.venv import DEFAULT_APP_ROOT


def _venv_bin(app_root: str) -> str:
    return f"{app_root.rstrip('/')}/.venv/bin"


def infer_entrypoint(
    scripts: Mapping[str, str],
    packages: Sequence[str],
    has_main: Callable[[str], bool],
    app_root: str = DEFAULT_APP_ROOT,
) -> list[str]:
    """The entrypoint for a project with these ``[project.scripts]`` (name -> ``module:attr``)
    and top-level import ``packages``; ``has_main(pkg)`` tells whether ``pkg/__main__.py`` exists.

    - exactly one console script -> ``[<app-root>/.venv/bin/<script>]``;
    - no console script and exactly one top-level package with a ``__main__.py`` ->
      ``[<app-root>/.venv/bin/python, "-m", <package>]``;
    - otherwise a JibError asking for ``[tool.jib.container] entrypoint`` and naming the
      candidates.
    """
    bin_dir = _venv_bin(app_root)
    names = sorted(scripts)
    if len(names) == 1:
        return [f"{bin_dir}/{names[0]}"]
    runnable = sorted(pkg for pkg in set(packages) if has_main(pkg))
    if not names and len(runnable) == 1:
        return [f"{bin_dir}/python", "-m", runnable[0]]
    candidates = [
        *(f'["{bin_dir}/{name}"]' for name in names),
        *(f'["{bin_dir}/python", "-m", "{pkg}"]' for pkg in runnable),
    ]
    if candidates:
        raise JibError(
            "cannot choose the container entrypoint: the project has "
            f"{_count(len(names), 'console script')} and "
            f"{_count(len(runnable), 'package')} with a __main__.py; set "
            f"[tool.jib.container] entrypoint to one of: {', '.join(candidates)}"
        )
    found = f" (packages: {', '.join(sorted(set(packages)))})" if packages else ""
    raise JibError(
        "cannot infer the container entrypoint: the project has no [project.scripts] entry and "
        f"no top-level package with a __main__.py{found}; add a console script, or set "
        f'[tool.jib.container] entrypoint, e.g. entrypoint = ["{bin_dir}/python", "-m", "app"]'
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
