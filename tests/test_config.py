"""``[tool.jib]`` settings: every key, defaults, precedence, and every error's one-line shape.

Fast and offline: pyprojects are TOML text or dicts, the environment is a dict, and the project
directory is ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from jib.config import (
    EPOCH,
    ConfigError,
    FrozenMap,
    JibSettings,
    Overrides,
    default_cache_dir,
    load_settings,
    read_pyproject,
)
from jib.image.descriptor import Platform
from jib.image.reference import Reference

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UTC = dt.timezone.utc
HOST = (3, 11)

# The CONTRACT's full example, with a [project] table around it.
FULL = """
[project]
name = "Team_App"
version = "1.2.3"
description = "An app"
requires-python = ">=3.10"
license = "Apache-2.0"
authors = [{ name = "Ada", email = "ada@example.com" }, { name = "Bob" }]
urls = { Homepage = "https://example.com" }
scripts = { app = "team_app.cli:main" }

[tool.jib]
allow-insecure-registries = false

[tool.jib.from]
image = "python:3.12-slim"
platforms = ["linux/amd64"]
cred-helper = "ecr-login"
auth = { username = "u", password = "p" }

[tool.jib.to]
image = "registry.example.com/team/app"
tags = ["1.2.3", "latest"]
cred-helper = "gcloud"
auth = { username = "tu", password = "tp" }

[tool.jib.container]
entrypoint = ["app"]
args = []
environment = { LOG_LEVEL = "info" }
ports = ["8000", "9000-9002/udp"]
labels = { "team" = "core" }
user = "1000:1000"
working-directory = "/app"
volumes = ["/data"]
app-root = "/app"
format = "oci"
creation-time = "EPOCH"
files-modification-time = "EPOCH_PLUS_SECOND"

[[tool.jib.extra-directories]]
from = "deploy/static"
into = "/app/static"
includes = ["**/*"]
excludes = []
permissions = { "/app/static/bin/*" = "755" }

[tool.jib.python]
version = "3.12"
executable = "/usr/local/bin/python3"
lock = "auto"
index-url = "https://pypi.org/simple"
extra-index-urls = []
compile-bytecode = true

[tool.jib.output-paths]
digest = "dist/jib-image.digest"
image-id = "dist/jib-image.id"
image-json = "dist/jib-image.json"
tar = "dist/team-app-1.2.3-image.tar"
"""


def pyproject(jib: dict[str, Any] | None = None, **project: Any) -> dict[str, Any]:
    meta = {"name": "demo_app", "version": "0.1.0", "requires-python": ">=3.10", **project}
    return {"project": meta, "tool": {"jib": jib or {}}}


def load(
    tmp_path: Path,
    data: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: Overrides | None = None,
    host: tuple[int, int] = HOST,
) -> JibSettings:
    return load_settings(
        pyproject() if data is None else data,
        tmp_path,
        environ={"HOME": str(tmp_path / "home")} if env is None else env,
        overrides=overrides,
        host_python=host,
    )


def error(tmp_path: Path, data: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """The ConfigError's message, checked to be one line."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, data, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def jib_error(tmp_path: Path, jib: dict[str, Any], **kwargs: Any) -> str:
    return error(tmp_path, pyproject(jib), **kwargs)


# --- every key, from the contract's example ------------------------------------------------------


def test_full_contract_example(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "static").mkdir(parents=True)
    s = load(tmp_path, tomllib.loads(FULL))

    p = s.project
    assert (p.name, p.normalized_name, p.version) == ("Team_App", "team-app", "1.2.3")
    assert p.description == "An app" and p.license_expression == "Apache-2.0"
    assert str(p.requires_python) == ">=3.10"
    assert dict(p.scripts) == {"app": "team_app.cli:main"}
    assert dict(p.urls) == {"Homepage": "https://example.com"}
    assert p.authors == ("Ada <ada@example.com>", "Bob")

    assert s.allow_insecure_registries is False
    assert s.from_.image == "python:3.12-slim" and not s.from_.is_local
    assert s.from_.reference == Reference.parse("python:3.12-slim")
    assert s.from_.platforms == (Platform("linux", "amd64"),)
    assert s.from_.cred_helper == "ecr-login"
    assert s.from_.auth is not None
    assert (s.from_.auth.username, s.from_.auth.password) == ("u", "p")
    assert s.from_.auth.source == "[tool.jib.from.auth]"

    assert s.to.image == Reference.parse("registry.example.com/team/app:latest")
    assert s.to.tags == ("1.2.3", "latest") and s.to.cred_helper == "gcloud"
    assert s.to.auth is not None and s.to.auth.source == "[tool.jib.to.auth]"
    assert [str(r) for r in s.to_references(for_push=True)] == [
        "registry.example.com/team/app:latest",
        "registry.example.com/team/app:1.2.3",
    ]

    c = s.container
    assert c.entrypoint == ("app",) and c.args == ()
    assert dict(c.environment) == {"LOG_LEVEL": "info"}
    assert c.ports == ("8000/tcp", "9000/udp", "9001/udp", "9002/udp")
    assert dict(c.labels) == {"team": "core"}
    assert c.user == "1000:1000" and c.working_directory == "/app" and c.volumes == ("/data",)
    assert c.app_root == "/app" and c.format == "oci"
    assert c.creation_time == EPOCH and c.files_modification_time == 1

    (extra,) = s.extra_directories
    assert extra.from_ == (tmp_path / "deploy" / "static").resolve()
    assert extra.into == "/app/static" and extra.includes == ("**/*",) and extra.excludes == ()
    assert dict(extra.permissions) == {"/app/static/bin/*": 0o755}

    py = s.python
    assert py.version == "3.12" and py.executable == "/usr/local/bin/python3"
    assert py.lock == "auto" and py.index_url == "https://pypi.org/simple"
    assert py.extra_index_urls == () and py.compile_bytecode is True

    out = s.output_paths
    assert out.digest == tmp_path / "dist" / "jib-image.digest"
    assert out.image_id == tmp_path / "dist" / "jib-image.id"
    assert out.image_json == tmp_path / "dist" / "jib-image.json"
    assert out.tar == tmp_path / "dist" / "team-app-1.2.3-image.tar"
    assert s.project_dir == tmp_path


def test_settings_are_frozen_and_hashable(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "static").mkdir(parents=True)
    s = load(tmp_path, tomllib.loads(FULL))
    with pytest.raises(AttributeError):
        s.allow_insecure_registries = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.container.environment["X"] = "1"  # type: ignore[index]
    assert hash(s) == hash(load(tmp_path, tomllib.loads(FULL)))
    assert "'p'" not in repr(s) and "'tp'" not in repr(s)  # Credential hides passwords


# --- defaults ------------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.from_.image == "python:3.11-slim"
    assert s.from_.platforms == (Platform.host(),) and s.from_.platforms[0].os == "linux"
    assert s.from_.cred_helper is None and s.from_.auth is None
    assert s.to == type(s.to)()  # no image, no tags, no auth
    c = s.container
    assert (c.entrypoint, c.args, c.user) == (None, None, None)
    assert c.ports == () and c.volumes == () and dict(c.environment) == {} and dict(c.labels) == {}
    assert c.app_root == "/app" and c.working_directory == "/app" and c.format == "oci"
    assert c.creation_time == EPOCH and c.files_modification_time == 1
    assert s.extra_directories == ()
    assert s.python == type(s.python)()
    assert s.python.lock == "auto" and s.python.compile_bytecode is True
    assert s.output_paths.tar == tmp_path / "dist" / "demo-app-0.1.0-image.tar"
    assert s.output_paths.digest == tmp_path / "dist" / "jib-image.digest"
    assert s.allow_insecure_registries is False
    assert s.cache_dir == tmp_path / "home" / ".cache" / "pyjib"


def test_no_tool_table_at_all(tmp_path: Path) -> None:
    s = load(tmp_path, {"project": {"name": "x", "version": "1"}})
    assert s.from_.image == "python:3.11-slim"


def test_working_directory_defaults_to_app_root(tmp_path: Path) -> None:
    s = load(tmp_path, pyproject({"container": {"app-root": "/srv/app/"}}))
    assert s.container.app_root == "/srv/app" and s.container.working_directory == "/srv/app"


@pytest.mark.parametrize(
    ("requires", "host", "image"),
    [
        (">=3.10", (3, 11), "python:3.11-slim"),  # the host's, when allowed
        (None, (3, 13), "python:3.13-slim"),
        (">=3.12", (3, 11), "python:3.14-slim"),  # else the newest allowed, up to 3.14
        ("<3.10", (3, 11), "python:3.9-slim"),
        (">=3.9,<3.11", (3, 12), "python:3.10-slim"),
        ("~=3.11.4", (3, 12), "python:3.11-slim"),  # 3.11.4+ allows 3.11
        (">=3.15", (3, 15), "python:3.15-slim"),  # a newer host than pyjib knows
    ],
)
def test_default_base_image_follows_requires_python(
    tmp_path: Path, requires: str | None, host: tuple[int, int], image: str
) -> None:
    data = pyproject()
    if requires is None:
        del data["project"]["requires-python"]
    else:
        data["project"]["requires-python"] = requires
    assert load(tmp_path, data, host=host).from_.image == image


def test_default_base_image_when_requires_python_allows_nothing_known(tmp_path: Path) -> None:
    data = pyproject(**{"requires-python": "<3.8"})
    message = error(tmp_path, data)
    assert message == (
        "[project] requires-python '<3.8' allows none of Python 3.8-3.14; "
        "set [tool.jib.from] image (or JIB_FROM_IMAGE)"
    )


def test_default_base_image_follows_python_version(tmp_path: Path) -> None:
    assert load(tmp_path, pyproject({"python": {"version": "3.13"}})).from_.image == (
        "python:3.13-slim"
    )


def test_to_reference_default_for_local_outputs_only(tmp_path: Path) -> None:
    s = load(tmp_path, pyproject(version="2.0+local.7"))
    assert s.to.image is None
    assert str(s.to_reference(for_push=False)) == "docker.io/library/demo-app:2.0_local.7"
    with pytest.raises(ConfigError) as info:
        s.to_reference(for_push=True)
    assert str(info.value) == "set [tool.jib.to] image (or JIB_TO_IMAGE) to push"


def test_dynamic_version_comes_from_the_backend(tmp_path: Path) -> None:
    data = pyproject(dynamic=["version"])
    del data["project"]["version"]
    unknown = load(tmp_path, data)
    assert unknown.project.version is None
    assert unknown.to_reference(for_push=False).tag == "latest"
    assert unknown.output_paths.tar == tmp_path / "dist" / "demo-app-image.tar"
    known = load(tmp_path, data, overrides=Overrides(version="1.0.0-alpha"))
    assert known.project.version == "1.0.0a0"  # PEP 440 normalized, as in wheel names
    assert known.output_paths.tar == tmp_path / "dist" / "demo-app-1.0.0a0-image.tar"


def test_poetry_legacy_metadata(tmp_path: Path) -> None:
    data = {
        "tool": {
            "poetry": {
                "name": "poetry.app",
                "version": "0.3.0",
                "description": "d",
                "license": "MIT",
                "authors": ["Ada <ada@example.com>"],
                "homepage": "https://example.com",
                "scripts": {"run": "poetry_app:main", "x": {"callable": "poetry_app:x"}},
                "dependencies": {"python": "^3.12"},
            }
        }
    }
    s = load(tmp_path, data)
    p = s.project
    assert (p.normalized_name, p.version, p.license_expression) == ("poetry-app", "0.3.0", "MIT")
    assert dict(p.scripts) == {"run": "poetry_app:main", "x": "poetry_app:x"}
    assert dict(p.urls) == {"Homepage": "https://example.com"}
    assert str(p.requires_python) == "<4,>=3.12"
    assert s.from_.image == "python:3.14-slim"  # host 3.11 is not allowed by ^3.12


@pytest.mark.parametrize(
    ("constraint", "allows", "refuses"),
    [
        ("~3.11", "3.11.5", "3.12.0"),
        (">=3.10,<3.13", "3.12.1", "3.13.0"),
        (">=3.10 <3.13", "3.10.0", "3.9.9"),
        ("3.12.*", "3.12.3", "3.11.0"),
        ("*", "3.8.0", None),
    ],
)
def test_poetry_python_constraints(
    tmp_path: Path, constraint: str, allows: str, refuses: str | None
) -> None:
    data = {
        "tool": {"poetry": {"name": "a", "version": "1", "dependencies": {"python": constraint}}}
    }
    spec = load(tmp_path, data).project.requires_python
    assert spec.contains(allows)
    assert refuses is None or not spec.contains(refuses)


# --- precedence: CLI > environment > pyproject ----------------------------------------------------

CONFIGURED = {
    "allow-insecure-registries": False,
    "from": {"image": "python:3.12-slim", "platforms": ["linux/amd64"]},
    "to": {"image": "registry.example.com/app", "tags": ["a"]},
}


def test_environment_wins_over_pyproject(tmp_path: Path) -> None:
    env = {
        "JIB_FROM_IMAGE": "python:3.13-slim",
        "JIB_TO_IMAGE": "ghcr.io/org/app:v1",
        "JIB_TO_TAGS": " b, c,,c ,",
        "JIB_PLATFORMS": "linux/arm64, linux/amd64",
        "JIB_ALLOW_INSECURE_REGISTRIES": "yes",
        "JIB_CACHE_DIR": str(tmp_path / "cache"),
    }
    s = load(tmp_path, pyproject(CONFIGURED), env=env)
    assert s.from_.image == "python:3.13-slim"
    assert str(s.to.image) == "ghcr.io/org/app:v1"
    assert s.to.tags == ("b", "c")  # replaced, not appended; blanks and repeats dropped
    assert s.from_.platforms == (Platform("linux", "arm64"), Platform("linux", "amd64"))
    assert s.allow_insecure_registries is True
    assert s.cache_dir == tmp_path / "cache"


def test_cli_wins_over_environment(tmp_path: Path) -> None:
    env = {
        "JIB_FROM_IMAGE": "python:3.13-slim",
        "JIB_TO_IMAGE": "ghcr.io/org/app:v1",
        "JIB_TO_TAGS": "b",
        "JIB_PLATFORMS": "linux/arm64",
        "JIB_ALLOW_INSECURE_REGISTRIES": "true",
    }
    cli = Overrides(
        to_image="localhost:5000/app",
        tags=("x", "y"),
        from_image="python:3.10-slim",
        platforms=("linux/amd64", "linux/arm64/v8"),
        allow_insecure_registries=False,
        tar_output=tmp_path / "out.tar",
    )
    s = load(tmp_path, pyproject(CONFIGURED), env=env, overrides=cli)
    assert s.from_.image == "python:3.10-slim"
    assert str(s.to.image) == "localhost:5000/app:latest"
    assert s.to.tags == ("x", "y")
    assert [str(p) for p in s.from_.platforms] == ["linux/amd64", "linux/arm64/v8"]
    assert s.allow_insecure_registries is False
    assert s.output_paths.tar == tmp_path / "out.tar"


def test_empty_cli_and_environment_values_count_as_unset(tmp_path: Path) -> None:
    env = {"JIB_FROM_IMAGE": "", "JIB_TO_TAGS": "", "JIB_ALLOW_INSECURE_REGISTRIES": " "}
    s = load(tmp_path, pyproject(CONFIGURED), env=env, overrides=Overrides(tags=()))
    assert s.from_.image == "python:3.12-slim" and s.to.tags == ("a",)
    assert s.allow_insecure_registries is False


def test_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    project = tmp_path / "proj"
    jib = {"from": {"image": "tar://base/image.tar"}, "output-paths": {"digest": "out/d"}}
    s = load(project, pyproject(jib))
    assert s.from_.image == f"tar://{project}/base/image.tar" and s.from_.is_local
    assert s.from_.reference is None
    assert s.output_paths.digest == project / "out" / "d"
    # On the command line, relative paths start at the current directory.
    cli = Overrides(from_image="oci://layout", tar_output=Path("x.tar"))
    s = load(project, pyproject(jib), overrides=cli)
    assert s.from_.image == f"oci://{cwd}/layout" and s.output_paths.tar == cwd / "x.tar"
    s = load(project, pyproject(), env={"JIB_CACHE_DIR": "c", "HOME": str(tmp_path)})
    assert s.cache_dir == cwd / "c"


def test_credentials_from_environment_win_over_auth_tables(tmp_path: Path) -> None:
    jib = {"to": {"auth": {"username": "u", "password": "p"}}}
    env = {"JIB_TO_USERNAME": "ci", "JIB_TO_PASSWORD": " secret ", "JIB_FROM_USERNAME": ""}
    s = load(tmp_path, pyproject(jib), env=env)
    assert s.to.auth is not None
    assert (s.to.auth.username, s.to.auth.password) == ("ci", " secret ")
    assert s.to.auth.source == "JIB_TO_USERNAME/JIB_TO_PASSWORD"
    assert s.from_.auth is None


def test_half_set_credentials_in_environment(tmp_path: Path) -> None:
    message = error(tmp_path, env={"JIB_FROM_PASSWORD": "hunter2"})
    assert message.startswith("JIB_FROM_PASSWORD is set but JIB_FROM_USERNAME is not")
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("false", False),
     ("0", False), ("no", False)],
)  # fmt: skip
def test_allow_insecure_registries_words(tmp_path: Path, word: str, value: bool) -> None:
    env = {"JIB_ALLOW_INSECURE_REGISTRIES": word}
    assert load(tmp_path, env=env).allow_insecure_registries is value


def test_allow_insecure_registries_bad_word(tmp_path: Path) -> None:
    message = error(tmp_path, env={"JIB_ALLOW_INSECURE_REGISTRIES": "maybe"})
    assert message == (
        "JIB_ALLOW_INSECURE_REGISTRIES: 'maybe' is not a boolean; use true/false, 1/0 or yes/no"
    )


def test_unknown_jib_variable_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="jib.config"):
        load(tmp_path, env={"JIB_TO_TAG": "v1"})
    assert "JIB_TO_TAG is not a pyjib setting; did you mean JIB_TO_TAGS?" in caplog.text


# --- times ---------------------------------------------------------------------------------------


def test_source_date_epoch_wins_over_epoch(tmp_path: Path) -> None:
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    expected = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert load(tmp_path, env=env).container.creation_time == expected  # default EPOCH
    explicit = pyproject({"container": {"creation-time": "EPOCH"}})
    assert load(tmp_path, explicit, env=env).container.creation_time == expected
    iso = pyproject({"container": {"creation-time": "2020-01-01T00:00:00Z"}})
    assert load(tmp_path, iso, env=env).container.creation_time == dt.datetime(
        2020, 1, 1, tzinfo=UTC
    )
    # It leaves file times alone: EPOCH_PLUS_SECOND is already at or before it ("clamped").
    assert load(tmp_path, env=env).container.files_modification_time == 1
    assert load(tmp_path, env={"SOURCE_DATE_EPOCH": ""}).container.creation_time == EPOCH


def test_bad_source_date_epoch(tmp_path: Path) -> None:
    message = error(tmp_path, env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert message == "SOURCE_DATE_EPOCH: 'yesterday' is not a whole number of seconds since 1970"


def test_use_current_timestamp(tmp_path: Path) -> None:
    before = dt.datetime.now(UTC)
    data = pyproject({"container": {"creation-time": "USE_CURRENT_TIMESTAMP"}})
    created = load(tmp_path, data, env={"SOURCE_DATE_EPOCH": "0"}).container.creation_time
    assert before <= created <= dt.datetime.now(UTC) and created.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", dt.datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00-0530", dt.datetime(2024, 5, 1, 17, 30, tzinfo=UTC)),
        ("2024-05-01T12:00+02", dt.datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01 12:00:00.5z", dt.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        (
            dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            dt.datetime(2024, 5, 1, 11, tzinfo=UTC),
        ),
    ],
)
def test_iso_times_with_offsets(tmp_path: Path, text: Any, expected: dt.datetime) -> None:
    jib = {"container": {"creation-time": text, "files-modification-time": text}}
    c = load(tmp_path, pyproject(jib)).container
    assert c.creation_time == expected
    assert c.files_modification_time == int(expected.timestamp())


def test_toml_date_time_literals(tmp_path: Path) -> None:
    data = tomllib.loads(
        '[project]\nname = "a"\nversion = "1"\n'
        "[tool.jib.container]\ncreation-time = 2024-01-01T00:00:00+01:00\n"
    )
    assert load(tmp_path, data).container.creation_time == dt.datetime(2023, 12, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "creation-time",
            "2024-05-01T12:00:00",
            "[tool.jib.container] creation-time: '2024-05-01T12:00:00' has no UTC offset; "
            "add Z or +HH:MM",
        ),
        (
            "creation-time",
            "EPOCHE",
            "[tool.jib.container] creation-time: 'EPOCHE' is not \"EPOCH\", "
            '"USE_CURRENT_TIMESTAMP" or an ISO-8601 time with a UTC offset, e.g. '
            '"2024-05-01T12:00:00Z" or "...+02:00"; did you mean \'EPOCH\'?',
        ),
        (
            "files-modification-time",
            "EPOCH_PLUS_SECONDS",
            "[tool.jib.container] files-modification-time: 'EPOCH_PLUS_SECONDS' is not "
            '"EPOCH_PLUS_SECOND" or an ISO-8601 time with a UTC offset, e.g. '
            '"2024-05-01T12:00:00Z" or "...+02:00"; did you mean \'EPOCH_PLUS_SECOND\'?',
        ),
        (
            "creation-time",
            "2024-13-01T00:00:00Z",
            "[tool.jib.container] creation-time: '2024-13-01T00:00:00Z' is not a valid time "
            "(month must be in 1..12)",
        ),
        (
            "files-modification-time",
            "1969-12-31T23:59:59Z",
            "[tool.jib.container] files-modification-time: 1969-12-31T23:59:59+00:00 is before "
            "1970-01-01T00:00:00Z",
        ),
        (
            "creation-time",
            dt.date(2024, 1, 1),
            '[tool.jib.container] creation-time must be "EPOCH", "USE_CURRENT_TIMESTAMP" or '
            'an ISO-8601 time with a UTC offset, e.g. "2024-05-01T12:00:00Z" or "...+02:00", '
            "not a date",
        ),
        (
            "creation-time",
            dt.datetime(2024, 1, 1),
            "[tool.jib.container] creation-time: 2024-01-01T00:00:00 has no UTC offset; "
            "add Z or +HH:MM",
        ),
    ],
)
def test_time_errors(tmp_path: Path, key: str, value: Any, message: str) -> None:
    assert jib_error(tmp_path, {"container": {key: value}}) == message


# --- ports, permissions, paths --------------------------------------------------------------------


def test_ports_normalized(tmp_path: Path) -> None:
    ports = ["8000", 8001, "53/UDP", "9000-9002/udp", "8000/tcp", "7-7"]
    s = load(tmp_path, pyproject({"container": {"ports": ports}}))
    assert s.container.ports == (
        "8000/tcp", "8001/tcp", "53/udp", "9000/udp", "9001/udp", "9002/udp", "7/tcp",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        ("80a", '\'80a\' is not a port; use "8000", "8000/udp" or "9000-9002/tcp"'),
        ("80/sctp", "'80/sctp' has protocol 'sctp'; use tcp or udp"),
        ("0", "'0': port 0 is not between 1 and 65535"),
        ("70000", "'70000': port 70000 is not between 1 and 65535"),
        ("9002-9000", "'9002-9000' is not a port range: 9002 is greater than 9000"),
    ],
)
def test_port_errors(tmp_path: Path, port: str, problem: str) -> None:
    message = jib_error(tmp_path, {"container": {"ports": [port]}})
    assert message == f"[tool.jib.container] ports: {problem}"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("755", 0o755), ("644", 0o644), ("0755", 0o755), ("0o600", 0o600), ("0O777", 0o777)],
)
def test_permission_modes(tmp_path: Path, mode: str, expected: int) -> None:
    (tmp_path / "d").mkdir()
    jib = {"extra-directories": [{"from": "d", "permissions": {"/x/*": mode}}]}
    assert load(tmp_path, pyproject(jib)).extra_directories[0].permissions["/x/*"] == expected


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("7555", ': \'7555\' is not an octal mode; use three octal digits like "644" or "755"'),
        ("789", ': \'789\' is not an octal mode; use three octal digits like "644" or "755"'),
        (755, ' must be a string, not an integer (write the mode as a string, e.g. "755")'),
    ],
)
def test_permission_errors(tmp_path: Path, mode: Any, problem: str) -> None:
    (tmp_path / "d").mkdir()
    jib = {"extra-directories": [{"from": "d", "permissions": {"/app/bin/*": mode}}]}
    message = jib_error(tmp_path, jib)
    assert message == f'[[tool.jib.extra-directories]] #1 permissions "/app/bin/*"{problem}'


def test_permission_glob_must_be_absolute(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    jib = {"extra-directories": [{"from": "d", "permissions": {"bin/*": "755"}}]}
    assert jib_error(tmp_path, jib) == (
        "[[tool.jib.extra-directories]] #1 permissions \"bin/*\": 'bin/*' is not an absolute "
        'path glob in the image, e.g. "/app/bin/*"'
    )


def test_extra_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "c").mkdir(parents=True)
    jib = {"extra-directories": [{"from": "a"}, {"from": str(tmp_path / "b" / "c"), "into": "/x/"}]}
    first, second = load(tmp_path, pyproject(jib)).extra_directories
    assert first.from_ == (tmp_path / "a").resolve() and first.into == "/"
    assert first.includes == () and dict(first.permissions) == {}
    assert second.from_ == (tmp_path / "b" / "c").resolve() and second.into == "/x"


def test_extra_directory_must_exist(tmp_path: Path) -> None:
    message = jib_error(tmp_path, {"extra-directories": [{"from": "deploy/static"}]})
    assert message == (
        "[[tool.jib.extra-directories]] #1 from: directory 'deploy/static' does not exist "
        f"({tmp_path / 'deploy' / 'static'})"
    )
    (tmp_path / "file").write_text("x")
    message = jib_error(tmp_path, {"extra-directories": [{"from": "file"}]})
    assert message.startswith("[[tool.jib.extra-directories]] #1 from: 'file' is not a directory")


@pytest.mark.parametrize(
    ("value", "what"),
    [({"from": "a"}, "a table"), ("a", "a string"), ([{"from": "a"}, "b"], "a list with other")],
)
def test_extra_directories_must_be_an_array_of_tables(
    tmp_path: Path, value: Any, what: str
) -> None:
    message = jib_error(tmp_path, {"extra-directories": value})
    assert message.startswith(
        "[tool.jib] extra-directories must be an array of tables "
        f"([[tool.jib.extra-directories]]), not {what}"
    )


def test_extra_directory_needs_from(tmp_path: Path) -> None:
    message = jib_error(tmp_path, {"extra-directories": [{"into": "/x"}]})
    assert message == (
        "[[tool.jib.extra-directories]] #1: 'from' is missing; name a directory relative to "
        "the project root"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "app-root",
            "app",
            "[tool.jib.container] app-root: 'app' is not an absolute path in the image "
            "(it must start with '/')",
        ),
        (
            "working-directory",
            "./w",
            "[tool.jib.container] working-directory: './w' is not an absolute path in the image "
            "(it must start with '/')",
        ),
        (
            "volumes",
            ["/ok", "data"],
            "[tool.jib.container] volumes: 'data' is not an absolute path in the image "
            "(it must start with '/')",
        ),
        (
            "user",
            "a b",
            "[tool.jib.container] user: 'a b' is not a user; use NAME, UID, NAME:GROUP or UID:GID",
        ),
        (
            "format",
            "dockr",
            '[tool.jib.container] format: \'dockr\' is not "oci" or "docker"; '
            "did you mean 'docker'?",
        ),
        (
            "environment",
            {"A=B": "x"},
            "[tool.jib.container.environment] \"A=B\": variable names cannot contain '='",
        ),
        (
            "environment",
            {"DEBUG": True},
            "[tool.jib.container.environment] DEBUG must be a string or an integer, not a boolean",
        ),
    ],
)
def test_container_value_errors(tmp_path: Path, key: str, value: Any, message: str) -> None:
    assert jib_error(tmp_path, {"container": {key: value}}) == message


def test_container_small_conveniences(tmp_path: Path) -> None:
    jib = {
        "container": {
            "user": 1000,
            "environment": {"PORT": 8000},
            "format": "Docker",
            "volumes": ["/data/", "/data"],
            "entrypoint": [],
        }
    }
    c = load(tmp_path, pyproject(jib)).container
    assert c.user == "1000" and dict(c.environment) == {"PORT": "8000"}
    assert c.format == "docker" and c.volumes == ("/data",) and c.entrypoint == ()


# --- unknown keys, types, images, tags, platforms -------------------------------------------------


@pytest.mark.parametrize(
    ("jib", "message"),
    [
        (
            {"container": {"entrypont": ["x"]}},
            "[tool.jib.container] unknown key 'entrypont'; did you mean 'entrypoint'?",
        ),
        (
            {"container": {"appRoot": "/x"}},
            "[tool.jib.container] unknown key 'appRoot'; did you mean 'app-root'?",
        ),
        (
            {"extra-directory": []},
            "[tool.jib] unknown key 'extra-directory'; did you mean 'extra-directories'?",
        ),
        (
            {"output_paths": {}},
            "[tool.jib] unknown key 'output_paths'; did you mean 'output-paths'?",
        ),
        ({"form": {}}, "[tool.jib] unknown key 'form'; did you mean 'from'?"),
        ({"to": {"tag": ["x"]}}, "[tool.jib.to] unknown key 'tag'; did you mean 'tags'?"),
        (
            {"to": {"auth": {"user": "u", "password": "p"}}},
            "[tool.jib.to.auth] unknown key 'user'; did you mean 'username'?",
        ),
        (
            {"python": {"compile": True}},
            "[tool.jib.python] unknown key 'compile'; did you mean 'compile-bytecode'?",
        ),
        (
            {"output-paths": {"imageid": "x"}},
            "[tool.jib.output-paths] unknown key 'imageid'; did you mean 'image-id'?",
        ),
        (
            {"extra-directories": [{"form": "x"}]},
            "[[tool.jib.extra-directories]] #1 unknown key 'form'; did you mean 'from'?",
        ),
        (
            {"zzz": 1},
            "[tool.jib] unknown key 'zzz'; known keys: allow-insecure-registries, from, to, "
            "container, extra-directories, python, output-paths",
        ),
    ],
)
def test_unknown_keys(tmp_path: Path, jib: dict[str, Any], message: str) -> None:
    assert jib_error(tmp_path, jib) == message


@pytest.mark.parametrize(
    ("jib", "message"),
    [
        ({"to": {"tags": 5}}, "[tool.jib.to] tags must be a list of strings, not an integer"),
        (
            {"to": {"tags": ["a", 5]}},
            "[tool.jib.to] tags must be a list of strings; item 2 is an integer",
        ),
        ({"to": "x"}, "[tool.jib] to must be a table, not a string"),
        ({"from": {"image": 3}}, "[tool.jib.from] image must be a string, not an integer"),
        (
            {"allow-insecure-registries": "true"},
            "[tool.jib] allow-insecure-registries must be a boolean, not a string "
            "(write true or false, without quotes)",
        ),
        (
            {"container": {"entrypoint": "app"}},
            "[tool.jib.container] entrypoint must be a list of strings, not a string",
        ),
        (
            {"container": {"labels": ["a"]}},
            "[tool.jib.container.labels] must be a table, not a list",
        ),
        (
            {"python": {"compile-bytecode": 1}},
            "[tool.jib.python] compile-bytecode must be a boolean, not an integer",
        ),
        (
            {"python": {"version": 3.10}},
            '[tool.jib.python] version: write the version as a string, e.g. "3.12" '
            "(as a number, 3.10 means 3.1)",
        ),
        (
            {"python": {"version": "3"}},
            "[tool.jib.python] version: '3' is not a Python version; use MAJOR.MINOR, "
            'e.g. "3.12" or "3.12.4"',
        ),
        (
            {"python": {"version": "3.9"}},
            "[tool.jib.python] version: Python 3.9 is not allowed by [project] requires-python "
            "'>=3.10'",
        ),
        (
            {"python": {"executable": "python3"}},
            "[tool.jib.python] executable: 'python3' is not an absolute path in the image "
            "(it must start with '/')",
        ),
        (
            {"python": {"index-url": "pypi.org/simple"}},
            "[tool.jib.python] index-url: 'pypi.org/simple' is not an http(s):// or file:// URL",
        ),
        (
            {"to": {"auth": {"username": "u"}}},
            "[tool.jib.to.auth]: password is missing; give both username and password",
        ),
        (
            {"to": {"auth": {"username": "u", "password": 12345}}},
            "[tool.jib.to.auth] password must be a string, not an integer",
        ),
        ({"from": {"cred-helper": ""}}, "[tool.jib.from] cred-helper: must not be empty"),
        (
            {"output-paths": {"tar": False}},
            "[tool.jib.output-paths] tar must be a string, not a boolean",
        ),
    ],
)
def test_type_errors(tmp_path: Path, jib: dict[str, Any], message: str) -> None:
    assert jib_error(tmp_path, jib) == message


def test_python_version_may_state_the_micro_version(tmp_path: Path) -> None:
    full = load(tmp_path, pyproject({"python": {"version": "3.11.2"}}))
    assert full.python.version == "3.11.2"
    assert "not a Python version" in error(tmp_path, pyproject({"python": {"version": "3.11.2.1"}}))
    assert "not allowed by [project] requires-python" in error(
        tmp_path, pyproject({"python": {"version": "3.9.18"}})
    )


@pytest.mark.parametrize(
    ("jib", "env", "cli", "message"),
    [
        (
            {"from": {"image": "Python:3.12"}},
            {},
            Overrides(),
            "[tool.jib.from] image: invalid image reference 'Python:3.12': repository "
            "'library/Python' is not valid (repository names must be lowercase)",
        ),
        (
            {},
            {"JIB_TO_IMAGE": "bad image"},
            Overrides(),
            "JIB_TO_IMAGE: invalid image reference 'bad image'",
        ),
        (
            {},
            {},
            Overrides(to_image="app@sha256:" + "a" * 64),
            "--image: 'app@sha256:" + "a" * 64 + "' names a digest",
        ),
        ({}, {"JIB_FROM_IMAGE": "tar://"}, Overrides(), "JIB_FROM_IMAGE: 'tar://' names no path"),
        (
            {"to": {"tags": ["ok", "-bad"]}},
            {},
            Overrides(),
            "[tool.jib.to] tags: '-bad' is not a valid tag (letters, digits, '_', '.', '-'; "
            "at most 128 characters, not starting with '.' or '-')",
        ),
        (
            {},
            {"JIB_TO_TAGS": "v1,bad tag!"},
            Overrides(),
            "JIB_TO_TAGS: 'bad tag!' is not a valid tag (",
        ),
        ({}, {}, Overrides(tags=("a" * 129,)), "--tag: '" + "a" * 129 + "' is not a valid tag"),
        (
            {"from": {"platforms": ["linux"]}},
            {},
            Overrides(),
            "[tool.jib.from] platforms: invalid platform 'linux': use os/architecture[/variant], "
            "e.g. linux/amd64",
        ),
        (
            {"from": {"platforms": []}},
            {},
            Overrides(),
            "[tool.jib.from] platforms: names no platform; give at least one, e.g. linux/amd64",
        ),
        (
            {},
            {"JIB_PLATFORMS": "linux/amd64,darwin/arm64"},
            Overrides(),
            "JIB_PLATFORMS: 'darwin/arm64' is not a Linux platform; pyjib builds linux/<arch> "
            "images",
        ),
        ({}, {}, Overrides(platforms=("x",)), "--platform: invalid platform 'x'"),
    ],
)
def test_image_tag_platform_errors(
    tmp_path: Path, jib: dict[str, Any], env: dict[str, str], cli: Overrides, message: str
) -> None:
    assert jib_error(tmp_path, jib, env=env, overrides=cli).startswith(message)


def test_target_image_forms(tmp_path: Path) -> None:
    s = load(tmp_path, pyproject({"to": {"image": "localhost:5000/a/b:v2", "tags": ["v2", "x"]}}))
    assert [str(r) for r in s.to_references(for_push=True)] == [
        "localhost:5000/a/b:v2",
        "localhost:5000/a/b:x",
    ]
    assert s.to.tags == ("v2", "x")


# --- [project] ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("project", "message"),
    [
        ({"name": 1}, "[project] name must be a string, not an integer"),
        ({"name": "-x"}, "[project] name: '-x' is not a valid project name (PEP 508)"),
        ({"version": "one"}, "[project] version: 'one' is not a valid PEP 440 version"),
        (
            {"requires-python": ">=3.x"},
            "[project] requires-python: '>=3.x' is not a valid version specifier, e.g. \">=3.10\"",
        ),
        ({"scripts": {"a": 1}}, "[project.scripts] a must be a string, not an integer"),
        ({"license": 3}, "[project] license must be a string or a table, not an integer"),
    ],
)
def test_project_errors(tmp_path: Path, project: dict[str, Any], message: str) -> None:
    assert error(tmp_path, pyproject(**project)) == message


def test_project_without_name(tmp_path: Path) -> None:
    assert error(tmp_path, {"project": {"version": "1"}}).startswith("[project] name is missing")


def test_legacy_license_text(tmp_path: Path) -> None:
    p = load(tmp_path, pyproject(license={"text": "Proprietary"})).project
    assert p.license_expression is None and p.license_text == "Proprietary"


# --- no traceback, whatever the types -------------------------------------------------------------

WRONG_VALUES: list[Any] = [
    1,
    1.5,
    True,
    "",
    "x",
    [],
    [1],
    ["x"],
    {},
    {"a": 1},
    dt.datetime(2024, 1, 1),
]
TABLE_KEYS = {
    "from": ("image", "platforms", "cred-helper", "auth"),
    "to": ("image", "tags", "cred-helper", "auth"),
    "container": (
        "entrypoint", "args", "environment", "ports", "labels", "user", "working-directory",
        "volumes", "app-root", "format", "creation-time", "files-modification-time",
    ),
    "python": (
        "version", "executable", "lock", "index-url", "extra-index-urls", "compile-bytecode",
    ),
    "output-paths": ("digest", "image-id", "image-json", "tar"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("table", "key"), [(table, key) for table, keys in TABLE_KEYS.items() for key in keys]
)
def test_any_value_loads_or_fails_with_one_line(tmp_path: Path, table: str, key: str) -> None:
    (tmp_path / "x").mkdir()
    for value in WRONG_VALUES:
        try:
            load(tmp_path, pyproject({table: {key: value}}))
        except ConfigError as err:
            message = str(err)
            assert "\n" not in message and message.startswith(f"[tool.jib.{table}"), message
            assert key in message or table in message, message


@pytest.mark.parametrize("key", ["from", "into", "includes", "excludes", "permissions"])
def test_any_extra_directory_value_loads_or_fails_with_one_line(tmp_path: Path, key: str) -> None:
    (tmp_path / "x").mkdir()
    for value in WRONG_VALUES:
        entry = {"from": "x", key: value}
        try:
            load(tmp_path, pyproject({"extra-directories": [entry]}))
        except ConfigError as err:
            assert str(err).startswith("[[tool.jib.extra-directories]] #1"), str(err)


# --- cache dir, reading pyproject -----------------------------------------------------------------


def test_cache_dir_resolution(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert default_cache_dir({"HOME": home}, "linux") == tmp_path / ".cache" / "pyjib"
    xdg = str(tmp_path / "xdg")
    assert default_cache_dir({"HOME": home, "XDG_CACHE_HOME": xdg}, "linux") == Path(xdg, "pyjib")
    # A relative XDG_CACHE_HOME is invalid per the spec, and ignored.
    relative = {"HOME": home, "XDG_CACHE_HOME": "rel"}
    assert default_cache_dir(relative, "linux") == tmp_path / ".cache" / "pyjib"
    assert default_cache_dir({"HOME": home}, "darwin") == tmp_path / "Library/Caches/pyjib"
    local = str(tmp_path / "Local")
    assert default_cache_dir({"LOCALAPPDATA": local}, "win32") == Path(local, "pyjib")
    assert default_cache_dir({"HOME": home}, "win32") == tmp_path / "AppData/Local/pyjib"
    env = {"HOME": home, "JIB_CACHE_DIR": "~/jc"}
    assert load(tmp_path, env=env).cache_dir == Path("~/jc").expanduser()
    env = {"HOME": home, "JIB_CACHE_DIR": str(tmp_path / "jc")}
    assert load(tmp_path, env=env).cache_dir == tmp_path / "jc"


def test_read_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(FULL)
    assert read_pyproject(tmp_path)["project"]["name"] == "Team_App"
    (tmp_path / "pyproject.toml").write_text("[project\nname = 1\n")
    with pytest.raises(ConfigError) as info:
        read_pyproject(tmp_path)
    assert "\n" not in str(info.value) and "is not valid TOML" in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        read_pyproject(tmp_path / "missing")


def test_frozen_map() -> None:
    m = FrozenMap({"b": 1, "a": 2})
    assert list(m) == ["b", "a"] and m == {"a": 2, "b": 1}
    assert hash(m) == hash(FrozenMap({"a": 2, "b": 1}))
