"""Reading ``[tool.jib]``: pyproject, then environment variables, then command-line overrides.

Precedence, per value: CLI (:class:`Overrides`) > ``JIB_*`` environment variables > pyproject >
defaults. An override *replaces* a list (``JIB_TO_TAGS`` replaces ``[tool.jib.to] tags``). Empty
environment variables count as unset, because CI systems expand unavailable secrets and unset
variables to "". Relative paths in pyproject and the environment start at the project directory;
relative paths given on the command line start at the current directory, as a shell user expects.

Nothing here does I/O except reading the environment and checking that extra directories exist
(and :func:`read_pyproject`, which reads the file when a front end wants it to).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from jib.image.descriptor import Platform
from jib.image.reference import Reference
from jib.local import OCI_SCHEME, TAR_SCHEME, is_local
from jib.registry.credentials import Credential

from .project import default_python_minor, read_project
from .sections import container, extra_directories, output_paths, python_settings
from .settings import (
    FromSettings,
    JibSettings,
    ProjectInfo,
    PythonSettings,
    ToSettings,
)
from .values import (
    ConfigError,
    check_table,
    did_you_mean,
    expect_bool,
    expect_str,
    expect_str_list,
    fail,
    parse_bool_word,
    parse_platform,
    parse_reference,
    parse_tag,
    split_list,
    type_name,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

TOP_KEYS = (
    "allow-insecure-registries",
    "from",
    "to",
    "container",
    "extra-directories",
    "python",
    "output-paths",
)
FROM_KEYS = ("image", "platforms", "cred-helper", "auth")
TO_KEYS = ("image", "tags", "cred-helper", "auth")
AUTH_KEYS = ("username", "password")
ENV_VARS = (
    "JIB_FROM_IMAGE",
    "JIB_TO_IMAGE",
    "JIB_TO_TAGS",
    "JIB_PLATFORMS",
    "JIB_FROM_USERNAME",
    "JIB_FROM_PASSWORD",
    "JIB_TO_USERNAME",
    "JIB_TO_PASSWORD",
    "JIB_ALLOW_INSECURE_REGISTRIES",
    "JIB_CACHE_DIR",
    "JIB_CACHE_MAX_SIZE",
)


@dataclass(frozen=True)
class Overrides:
    """What the front ends' command lines say; None / empty means "not given"."""

    to_image: str | None = None  # --image/-i
    tags: tuple[str, ...] = ()  # --tag/-t, repeatable; replaces the configured tags
    from_image: str | None = None  # --from-image
    platforms: tuple[str, ...] = ()  # --platform, repeatable
    allow_insecure_registries: bool | None = None  # --allow-insecure-registries
    tar_output: Path | None = None  # --output
    #: Not an option: the version the build backend computed, for ``dynamic = ["version"]``.
    version: str | None = None


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    """``project_dir/pyproject.toml`` parsed, or a one-line ConfigError."""
    path = Path(project_dir) / "pyproject.toml"
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; is {project_dir} a Python project?") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None


def load_settings(
    pyproject: Mapping[str, Any],
    project_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
    host_python: tuple[int, int] = cast("tuple[int, int]", tuple(sys.version_info[:2])),
) -> JibSettings:
    """Validated, defaulted settings for the project at ``project_dir``; ConfigError if wrong."""
    env = os.environ if environ is None else environ
    cli = overrides or Overrides()
    project_dir = Path(os.path.abspath(project_dir))
    _warn_unknown_env(env)
    tool = pyproject.get("tool", {})
    if not isinstance(tool, Mapping):
        raise ConfigError(f"[tool] must be a table, not {type_name(tool)}")
    jib = check_table(tool.get("jib", {}), "[tool.jib]", TOP_KEYS)
    for key in ("from", "to", "container", "python", "output-paths"):
        if key in jib and not isinstance(jib[key], Mapping):
            raise ConfigError(f"[tool.jib] {key} must be a table, not {type_name(jib[key])}")

    project = read_project(pyproject, version=cli.version)
    python = python_settings(jib.get("python", {}), project, project_dir)
    return JibSettings(
        project_dir=project_dir,
        project=project,
        from_=_from(jib.get("from", {}), env, cli, project, python, project_dir, host_python),
        to=_to(jib.get("to", {}), env, cli),
        container=container(jib.get("container", {}), env),
        extra_directories=extra_directories(jib.get("extra-directories"), project_dir),
        python=python,
        output_paths=output_paths(
            jib.get("output-paths", {}), cli.tar_output, project, project_dir
        ),
        allow_insecure_registries=_insecure(jib, env, cli),
        cache_dir=_cache_dir(env),
    )


def default_cache_dir(
    environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> Path:
    """The platform's user cache directory + ``pyjib`` (platformdirs' rules, without the dep)."""
    env = os.environ if environ is None else environ
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if platform == "darwin":
        return home / "Library" / "Caches" / "pyjib"
    if platform == "win32":
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "pyjib"
    xdg = env.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return base / "pyjib"


# --- sections ------------------------------------------------------------------------------------


def _from(
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    cli: Overrides,
    project: ProjectInfo,
    python: PythonSettings,
    project_dir: Path,
    host_python: tuple[int, int],
) -> FromSettings:
    label = "[tool.jib.from]"
    table = check_table(raw, label, FROM_KEYS)
    auth = _auth(table.get("auth"), f"{label[:-1]}.auth]", env, "JIB_FROM")
    cred_helper = _optional(table, "cred-helper", label)
    image, where = _value(
        cli.from_image, _env(env, "JIB_FROM_IMAGE"), table.get("image"), label + " image"
    )
    if image is None:
        if python.version:  # the interpreter the user asked for is the base to start from
            image = f"python:{python.version}-slim"
        else:
            major, minor = default_python_minor(project.requires_python, host_python)
            image = f"python:{major}.{minor}-slim"
    else:
        image = _base_image(
            expect_str(image, where), where, project_dir, cli_relative=where == "--from-image"
        )
    platforms_raw, where = _value(
        cli.platforms or None,
        _env(env, "JIB_PLATFORMS"),
        table.get("platforms"),
        label + " platforms",
    )
    if platforms_raw is None:
        platforms: tuple[Platform, ...] = (Platform.host(),)  # linux/<host arch>, Go names
    else:
        texts = _strings(platforms_raw, where)
        if not texts:
            fail(where, "names no platform; give at least one, e.g. linux/amd64")
        platforms = tuple(dict.fromkeys(parse_platform(t, where) for t in texts))
    return FromSettings(image=image, platforms=platforms, cred_helper=cred_helper, auth=auth)


def _to(raw: Mapping[str, Any], env: Mapping[str, str], cli: Overrides) -> ToSettings:
    label = "[tool.jib.to]"
    table = check_table(raw, label, TO_KEYS)
    auth = _auth(table.get("auth"), f"{label[:-1]}.auth]", env, "JIB_TO")
    cred_helper = _optional(table, "cred-helper", label)
    text, where = _value(
        cli.to_image, _env(env, "JIB_TO_IMAGE"), table.get("image"), label + " image"
    )
    image: Reference | None = None
    if text is not None:
        image = parse_reference(expect_str(text, where).strip(), where)
        if image.digest is not None:
            fail(where, f"{text!r} names a digest; a target image takes a tag (or none: latest)")
    tags_raw, where = _value(
        cli.tags or None, _env(env, "JIB_TO_TAGS"), table.get("tags"), label + " tags"
    )
    tags: tuple[str, ...] = ()
    if tags_raw is not None:
        tags = tuple(dict.fromkeys(parse_tag(t, where) for t in _strings(tags_raw, where)))
    return ToSettings(image=image, tags=tags, cred_helper=cred_helper, auth=auth)


def _insecure(jib: Mapping[str, Any], env: Mapping[str, str], cli: Overrides) -> bool:
    raw, where = _value(
        cli.allow_insecure_registries,
        _env(env, "JIB_ALLOW_INSECURE_REGISTRIES"),
        jib.get("allow-insecure-registries", False),
        "[tool.jib] allow-insecure-registries",
    )
    if where.startswith("JIB_"):
        return parse_bool_word(raw, where)
    return expect_bool(raw, where)


def _env(env: Mapping[str, str], name: str, *, strip: bool = True) -> str | None:
    value = env.get(name, "")
    return (value.strip() if strip else value) or None


def _value(cli: object, env_value: str | None, toml: object, toml_where: str) -> tuple[Any, str]:
    """The winning raw value and where it came from (the label its errors will carry)."""
    if cli is not None:
        return cli, _CLI_NAMES.get(toml_where, toml_where)
    if env_value is not None:
        return env_value, _ENV_NAMES[toml_where]
    return toml, toml_where


_CLI_NAMES = {
    "[tool.jib.from] image": "--from-image",
    "[tool.jib.from] platforms": "--platform",
    "[tool.jib.to] image": "--image",
    "[tool.jib.to] tags": "--tag",
    "[tool.jib] allow-insecure-registries": "--allow-insecure-registries",
}
_ENV_NAMES = {
    "[tool.jib.from] image": "JIB_FROM_IMAGE",
    "[tool.jib.from] platforms": "JIB_PLATFORMS",
    "[tool.jib.to] image": "JIB_TO_IMAGE",
    "[tool.jib.to] tags": "JIB_TO_TAGS",
    "[tool.jib] allow-insecure-registries": "JIB_ALLOW_INSECURE_REGISTRIES",
}


def _strings(raw: object, where: str) -> tuple[str, ...]:
    """A list value from wherever it came: a TOML list, a comma-separated variable, CLI tuple."""
    if isinstance(raw, str) and where.startswith("JIB_"):
        return split_list(raw)
    return expect_str_list(raw, where)


def _optional(table: Mapping[str, Any], key: str, label: str) -> str | None:
    return expect_str(table[key], f"{label} {key}") if key in table else None


def _auth(raw: object, label: str, env: Mapping[str, str], prefix: str) -> Credential | None:
    """The explicit credential: ``<prefix>_USERNAME``/``_PASSWORD`` if set, else the auth table.

    Type errors name types, never values: this table holds a password.
    """
    explicit = None
    if raw is not None:
        table = check_table(raw, label, AUTH_KEYS)
        missing = [key for key in AUTH_KEYS if key not in table]
        if missing:
            fail(label, f"{missing[0]} is missing; give both username and password")
        explicit = Credential(
            username=expect_str(table["username"], f"{label} username"),
            password=expect_str(table["password"], f"{label} password"),
            source=label,
        )
    user_var, pass_var = f"{prefix}_USERNAME", f"{prefix}_PASSWORD"
    # Not stripped: a secret is used exactly as given, as the keychain does.
    username, password = _env(env, user_var, strip=False), _env(env, pass_var, strip=False)
    if username and password:
        return Credential(username=username, password=password, source=f"{user_var}/{pass_var}")
    if username or password:
        have, missing_var = (user_var, pass_var) if username else (pass_var, user_var)
        raise ConfigError(
            f"{have} is set but {missing_var} is not (or is empty): set both, or unset {have}"
        )
    return explicit


def _base_image(text: str, where: str, project_dir: Path, *, cli_relative: bool) -> str:
    text = text.strip()
    if not is_local(text):
        parse_reference(text, where)
        return text
    scheme = TAR_SCHEME if text.startswith(TAR_SCHEME) else OCI_SCHEME
    rest = text[len(scheme) :]
    if not rest:
        fail(where, f"{text!r} names no path; use tar://PATH or oci://DIR")
    path = Path(rest).expanduser()
    base = Path.cwd() if cli_relative else project_dir
    return scheme + os.path.normpath(base / path)


def _cache_dir(env: Mapping[str, str]) -> Path:
    value = _env(env, "JIB_CACHE_DIR")
    if value is None:
        return default_cache_dir(env)
    return Path(os.path.abspath(Path(value).expanduser()))


def _warn_unknown_env(env: Mapping[str, str]) -> None:
    """A misspelt ``JIB_*`` variable would be silently ignored; say so (a warning, not an error:
    other tools may use the prefix)."""
    for name in _jib_names(env):
        if name not in ENV_VARS:
            guess = did_you_mean(name, ENV_VARS)
            hint = f"; did you mean {guess}?" if guess else ""
            log.warning("environment variable %s is not a pyjib setting%s", name, hint)


def _jib_names(env: Iterable[str]) -> list[str]:
    return sorted(name for name in env if name.startswith("JIB_"))
