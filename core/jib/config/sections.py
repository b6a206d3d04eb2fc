"""The ``[tool.jib]`` tables that only pyproject sets: container, extra directories, python,
output paths. (Tables with environment and command-line overrides are in :mod:`.load`.)"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

from .project import allows_minor
from .settings import (
    DEFAULT_APP_ROOT,
    ContainerSettings,
    ExtraDirectory,
    FrozenMap,
    OutputPaths,
    ProjectInfo,
    PythonSettings,
)
from .values import (
    ConfigError,
    check_table,
    expect_bool,
    expect_str,
    expect_str_list,
    expect_str_map,
    fail,
    keyword,
    parse_creation_time,
    parse_files_modification_time,
    parse_image_path,
    parse_mode,
    parse_ports,
    parse_python_version,
    parse_url,
    parse_user,
    toml_key,
    type_name,
)

CONTAINER_KEYS = (
    "entrypoint",
    "args",
    "environment",
    "ports",
    "labels",
    "user",
    "working-directory",
    "volumes",
    "app-root",
    "format",
    "creation-time",
    "files-modification-time",
)
EXTRA_DIRECTORY_KEYS = ("from", "into", "includes", "excludes", "permissions")
PYTHON_KEYS = ("version", "executable", "lock", "index-url", "extra-index-urls", "compile-bytecode")
OUTPUT_KEYS = ("digest", "image-id", "image-json", "tar")


def container(raw: Mapping[str, Any], env: Mapping[str, str]) -> ContainerSettings:
    label = "[tool.jib.container]"
    table = check_table(raw, label, CONTAINER_KEYS)

    def where(key: str) -> str:
        return f"{label} {key}"

    def lst(key: str) -> tuple[str, ...] | None:
        return expect_str_list(table[key], where(key)) if key in table else None

    environment = expect_str_map(
        table.get("environment", {}), f"{label[:-1]}.environment]", allow_int=True
    )
    for name in environment:
        if "=" in name:
            fail(f"{label[:-1]}.environment] {toml_key(name)}", "variable names cannot contain '='")
    app_root = DEFAULT_APP_ROOT
    if "app-root" in table:
        app_root = parse_image_path(
            expect_str(table["app-root"], where("app-root")), where("app-root")
        )
    workdir = app_root
    if "working-directory" in table:
        key = where("working-directory")
        workdir = parse_image_path(expect_str(table["working-directory"], key), key)
    ports = ()
    if "ports" in table:
        ports = parse_ports(
            expect_str_list(table["ports"], where("ports"), allow_int=True), where("ports")
        )
    user = None
    if "user" in table:
        user = parse_user(expect_str(table["user"], where("user"), allow_int=True), where("user"))
    volumes = tuple(
        dict.fromkeys(parse_image_path(v, where("volumes")) for v in lst("volumes") or ())
    )
    fmt = "oci"
    if "format" in table:
        fmt = keyword(
            expect_str(table["format"], where("format")),
            where("format"),
            ("oci", "docker"),
            '"oci" or "docker"',
        )
    # Empty counts as unset, as for every variable pyjib reads.
    source_date_epoch = env.get("SOURCE_DATE_EPOCH", "").strip() or None
    return ContainerSettings(
        entrypoint=lst("entrypoint"),
        args=lst("args"),
        environment=FrozenMap(environment),
        ports=ports,
        labels=FrozenMap(
            expect_str_map(table.get("labels", {}), f"{label[:-1]}.labels]", allow_int=True)
        ),
        user=user,
        working_directory=workdir,
        volumes=volumes,
        app_root=app_root,
        format=cast("Literal['oci', 'docker']", fmt),
        creation_time=parse_creation_time(
            table.get("creation-time", "EPOCH"), where("creation-time"), source_date_epoch
        ),
        files_modification_time=parse_files_modification_time(
            table.get("files-modification-time", "EPOCH_PLUS_SECOND"),
            where("files-modification-time"),
        ),
    )


def extra_directories(raw: object, project_dir: Path) -> tuple[ExtraDirectory, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        what = type_name(raw) if not isinstance(raw, list) else "a list with other things in it"
        raise ConfigError(
            "[tool.jib] extra-directories must be an array of tables "
            f"([[tool.jib.extra-directories]]), not {what}"
        )
    out = []
    for index, item in enumerate(raw, 1):
        label = f"[[tool.jib.extra-directories]] #{index}"
        table = check_table(item, label, EXTRA_DIRECTORY_KEYS)
        if "from" not in table:
            fail(label, "'from' is missing; name a directory relative to the project root")
        where = f"{label} from"
        text = expect_str(table["from"], where)
        path = (project_dir / Path(text).expanduser()).resolve()
        if not path.exists():
            fail(where, f"directory {text!r} does not exist ({path})")
        if not path.is_dir():
            fail(where, f"{text!r} is not a directory ({path})")
        into = "/"
        if "into" in table:
            into = parse_image_path(expect_str(table["into"], f"{label} into"), f"{label} into")
        permissions: dict[str, int] = {}
        perm_label = f"{label} permissions"
        perms = table.get("permissions", {})
        if not isinstance(perms, Mapping):
            raise ConfigError(f"{perm_label} must be a table, not {type_name(perms)}")
        for glob, mode in perms.items():
            key = f"{perm_label} {toml_key(glob)}"
            if not glob.startswith("/"):
                fail(key, f'{glob!r} is not an absolute path glob in the image, e.g. "/app/bin/*"')
            permissions[glob] = parse_mode(mode, key)
        out.append(
            ExtraDirectory(
                from_=path,
                into=into,
                includes=expect_str_list(table.get("includes", []), f"{label} includes"),
                excludes=expect_str_list(table.get("excludes", []), f"{label} excludes"),
                permissions=FrozenMap(permissions),
            )
        )
    return tuple(out)


def python_settings(
    raw: Mapping[str, Any], project: ProjectInfo, project_dir: Path
) -> PythonSettings:
    label = "[tool.jib.python]"
    table = check_table(raw, label, PYTHON_KEYS)
    version = None
    if "version" in table:
        where = f"{label} version"
        version = parse_python_version(table["version"], where)
        major, minor = (int(p) for p in version.split(".")[:2])
        if not allows_minor(project.requires_python, (major, minor)):
            fail(
                where,
                f"Python {version} is not allowed by [project] requires-python "
                f"{str(project.requires_python)!r}",
            )
    executable = None
    if "executable" in table:
        where = f"{label} executable"
        executable = parse_image_path(expect_str(table["executable"], where), where)
    lock: Literal["auto"] | Path = "auto"
    if "lock" in table:
        text = expect_str(table["lock"], f"{label} lock")
        lock = "auto" if text == "auto" else host_path(text, project_dir)
    index_url = None
    if "index-url" in table:
        where = f"{label} index-url"
        index_url = parse_url(expect_str(table["index-url"], where), where)
    where = f"{label} extra-index-urls"
    extra = tuple(
        parse_url(u, where) for u in expect_str_list(table.get("extra-index-urls", []), where)
    )
    compile_bytecode = expect_bool(table.get("compile-bytecode", True), f"{label} compile-bytecode")
    return PythonSettings(version, executable, lock, index_url, extra, compile_bytecode)


def output_paths(
    raw: Mapping[str, Any], tar_output: Path | None, project: ProjectInfo, project_dir: Path
) -> OutputPaths:
    label = "[tool.jib.output-paths]"
    table = check_table(raw, label, OUTPUT_KEYS)
    defaults = {
        "digest": "dist/jib-image.digest",
        "image-id": "dist/jib-image.id",
        "image-json": "dist/jib-image.json",
        "tar": f"dist/{project.file_stem}-image.tar",
    }
    paths = {
        key: host_path(expect_str(table.get(key, default), f"{label} {key}"), project_dir)
        for key, default in defaults.items()
    }
    if tar_output is not None:  # --output: relative to the current directory
        paths["tar"] = Path(os.path.abspath(Path(tar_output).expanduser()))
    return OutputPaths(paths["digest"], paths["image-id"], paths["image-json"], paths["tar"])


# --- helpers -------------------------------------------------------------------------------------


def host_path(text: str, project_dir: Path) -> Path:
    return Path(os.path.normpath(project_dir / Path(text).expanduser()))
