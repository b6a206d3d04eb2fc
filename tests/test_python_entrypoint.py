"""The default entrypoint when ``[tool.jib.container] entrypoint`` is not set
(jib.python.entrypoint), and the project facts it is inferred from (jib.python.project)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_python_install import make_wheel

from jib.errors import JibError
from jib.python.entrypoint import infer_entrypoint
from jib.python.project import read_wheel


def no_main(_: str) -> bool:
    return False


def test_the_only_console_script_is_the_entrypoint() -> None:
    assert infer_entrypoint({"serve": "app.cli:main"}, ["app"], no_main) == ["/app/.venv/bin/serve"]


def test_a_console_script_wins_over_a_main_package() -> None:
    # One script is unambiguous even if the package can also run with -m.
    assert infer_entrypoint({"serve": "app.cli:main"}, ["app"], lambda _: True, "/srv") == [
        "/srv/.venv/bin/serve"
    ]


def test_sole_package_with_main_runs_with_python_m() -> None:
    assert infer_entrypoint({}, ["app", "helpers"], lambda pkg: pkg == "app", "/opt/svc/") == [
        "/opt/svc/.venv/bin/python",
        "-m",
        "app",
    ]


def test_several_scripts_is_an_error_listing_them() -> None:
    with pytest.raises(JibError) as err:
        infer_entrypoint({"b-tool": "x:y", "a-tool": "x:z"}, ["x"], lambda _: True)
    message = str(err.value)
    assert "\n" not in message
    assert "[tool.jib.container] entrypoint" in message
    assert '["/app/.venv/bin/a-tool"], ["/app/.venv/bin/b-tool"]' in message
    assert '["/app/.venv/bin/python", "-m", "x"]' in message


def test_several_main_packages_is_an_error_listing_them() -> None:
    with pytest.raises(JibError, match=r"entrypoint to one of: .*\"-m\", \"a\".*\"-m\", \"b\""):
        infer_entrypoint({}, ["b", "a", "c"], lambda pkg: pkg in {"a", "b"})


def test_nothing_runnable_is_an_error_naming_the_packages() -> None:
    with pytest.raises(JibError) as err:
        infer_entrypoint({}, ["lib_only"], no_main)
    message = str(err.value)
    assert "no [project.scripts] entry" in message
    assert "lib_only" in message
    assert "[tool.jib.container] entrypoint" in message


def test_project_facts_come_from_the_built_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "my-app",
        "3.1.4",
        {
            "my_app/__init__.py": b"",
            "my_app/__main__.py": b"print('main')\n",
            "my_app_helpers/__init__.py": b"",
            "single_module.py": b"",
            "my_app-3.1.4.data/purelib/extra_pkg/__main__.py": b"",
            "my_app-3.1.4.data/data/share/not_a_pkg/x.txt": b"",
        },
        entry_points="[console_scripts]\nmy-app = my_app.cli:main\n[gui_scripts]\ngui = my_app:g\n",
        requires=("markupsafe>=2.1", 'six; python_version >= "3"'),
    )
    project = read_wheel(wheel)
    assert (project.name, project.version) == ("my-app", "3.1.4")
    assert project.requires_dist == ("markupsafe>=2.1", 'six; python_version >= "3"')
    assert project.scripts == {"my-app": "my_app.cli:main"}  # console scripts only
    assert project.packages == ("extra_pkg", "my_app", "my_app_helpers")
    assert project.has_main("my_app") and project.has_main("extra_pkg")
    assert not project.has_main("my_app_helpers")
    assert project.is_pure
    assert infer_entrypoint(project.scripts, project.packages, project.has_main) == [
        "/app/.venv/bin/my-app"
    ]
