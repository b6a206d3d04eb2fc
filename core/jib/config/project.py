"""Project metadata from ``[project]`` (PEP 621), or Poetry's legacy ``[tool.poetry]`` table.

The build backend owns ``[project]``'s validation; this only reads the fields pyjib uses and turns
wrong types into one-line errors instead of tracebacks. Poetry projects that still keep their
metadata in ``[tool.poetry]`` (supported by Poetry 2) are read from there when ``[project]`` has no
name, so ``poetry jib`` works on them too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .settings import FrozenMap, ProjectInfo
from .values import ConfigError, expect_list, expect_str, expect_str_map, fail, type_name

#: The Python minors a default base image may be chosen from when the host's is not allowed.
KNOWN_MINORS: tuple[tuple[int, int], ...] = tuple((3, minor) for minor in range(8, 15))

_NAME_RE = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)  # PEP 508


def read_project(pyproject: Mapping[str, Any], *, version: str | None = None) -> ProjectInfo:
    """The project's metadata; ``version`` (from the build backend) wins over the file's."""
    project = pyproject.get("project", {})
    if not isinstance(project, Mapping):
        raise ConfigError(f"[project] must be a table, not {type_name(project)}")
    tool = pyproject.get("tool", {})
    poetry = tool.get("poetry") if isinstance(tool, Mapping) else None
    if "name" not in project and isinstance(poetry, Mapping) and "name" in poetry:
        return _from_poetry(poetry, version)
    if "name" not in project:
        raise ConfigError(
            "[project] name is missing; pyjib needs a PEP 621 [project] table with name and "
            "version (or Poetry's [tool.poetry])"
        )
    name = _name(project["name"], "[project] name")
    authors = tuple(
        _author(item, f"[project] authors item {index}")
        for index, item in enumerate(
            expect_list(project.get("authors", []), "[project] authors", "tables"), 1
        )
    )
    expression, text = _license(project.get("license"))
    return ProjectInfo(
        name=name,
        normalized_name=canonicalize_name(name),
        version=_version(version, "the build backend's version")
        if version
        else _version(project.get("version")),
        description=_optional_str(project.get("description"), "[project] description"),
        license_expression=expression,
        license_text=text,
        urls=FrozenMap(expect_str_map(project.get("urls", {}), "[project.urls]")),
        requires_python=_specifier(project.get("requires-python")),
        scripts=FrozenMap(expect_str_map(project.get("scripts", {}), "[project.scripts]")),
        authors=tuple(a for a in authors if a),
    )


def allows_minor(spec: SpecifierSet, minor: tuple[int, int]) -> bool:
    """Whether some release of Python ``X.Y`` satisfies ``spec`` (``>=3.11.4`` allows 3.11)."""
    # Checking micro releases rather than "X.Y" alone, which is X.Y.0 to packaging.
    return any(spec.contains(f"{minor[0]}.{minor[1]}.{micro}") for micro in range(0, 40))


def default_python_minor(spec: SpecifierSet, host: tuple[int, int]) -> tuple[int, int]:
    """The host's minor if ``spec`` allows it, else the newest minor it allows (3.8..3.14)."""
    if allows_minor(spec, host):
        return host
    candidates = [m for m in (*KNOWN_MINORS, host) if allows_minor(spec, m)]
    if not candidates:
        lo, hi = KNOWN_MINORS[0], KNOWN_MINORS[-1]
        raise ConfigError(
            f"[project] requires-python {str(spec)!r} allows none of Python "
            f"{lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}; set [tool.jib.from] image (or JIB_FROM_IMAGE)"
        )
    return max(candidates)


# --- PEP 621 fields -----------------------------------------------------------------------------


def _name(value: object, where: str) -> str:
    name = expect_str(value, where)
    if not _NAME_RE.fullmatch(name):
        fail(where, f"{name!r} is not a valid project name (PEP 508)")
    return name


def _version(value: object, where: str = "[project] version") -> str | None:
    if value is None:
        return None  # dynamic; front ends pass the backend's version in
    text = expect_str(value, where)
    try:
        return str(Version(text))
    except InvalidVersion:
        fail(where, f"{text!r} is not a valid PEP 440 version")


def _optional_str(value: object, where: str) -> str | None:
    return None if value is None else expect_str(value, where)


def _specifier(value: object, where: str = "[project] requires-python") -> SpecifierSet:
    if value is None:
        return SpecifierSet()
    text = expect_str(value, where)
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        fail(where, f'{text!r} is not a valid version specifier, e.g. ">=3.10"')


def _license(value: object) -> tuple[str | None, str | None]:
    """``(expression, text)`` from ``license = "MIT"`` or the legacy ``{ text = ... }``."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, Mapping):
        text = value.get("text")
        return None, (expect_str(text, "[project.license] text") if text is not None else None)
    raise ConfigError(f"[project] license must be a string or a table, not {type_name(value)}")


def _author(value: object, where: str) -> str:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, not {type_name(value)}")
    name = _optional_str(value.get("name"), f"{where} name")
    email = _optional_str(value.get("email"), f"{where} email")
    if name and email:
        return f"{name} <{email}>"
    return name or email or ""


# --- Poetry's legacy [tool.poetry] ---------------------------------------------------------------


def _from_poetry(poetry: Mapping[str, Any], version: str | None) -> ProjectInfo:
    label = "[tool.poetry]"
    name = _name(poetry["name"], f"{label} name")
    urls: dict[str, str] = {}
    for key in ("homepage", "repository", "documentation"):
        if poetry.get(key) is not None:
            urls[key.capitalize()] = expect_str(poetry[key], f"{label} {key}")
    urls.update(expect_str_map(poetry.get("urls", {}), "[tool.poetry.urls]"))
    scripts: dict[str, str] = {}
    raw_scripts = poetry.get("scripts", {})
    if not isinstance(raw_scripts, Mapping):
        raise ConfigError(f"[tool.poetry.scripts] must be a table, not {type_name(raw_scripts)}")
    for key, spec in raw_scripts.items():
        if isinstance(spec, str):
            scripts[key] = spec
        elif isinstance(spec, Mapping) and isinstance(spec.get("callable"), str):
            scripts[key] = spec["callable"]  # { callable = "pkg:main", extras = [...] }
        # { reference = "...", type = "file" } installs a file, not a console script: skipped.
    dependencies = poetry.get("dependencies", {})
    python = dependencies.get("python") if isinstance(dependencies, Mapping) else None
    license_ = poetry.get("license")
    return ProjectInfo(
        name=name,
        normalized_name=canonicalize_name(name),
        version=_version(version or poetry.get("version"), f"{label} version"),
        description=_optional_str(poetry.get("description"), f"{label} description"),
        license_expression=None if license_ is None else expect_str(license_, f"{label} license"),
        urls=FrozenMap(urls),
        requires_python=SpecifierSet()
        if python is None
        else _poetry_python(expect_str(python, "[tool.poetry.dependencies] python")),
        scripts=FrozenMap(scripts),
        authors=tuple(
            expect_str(a, f"{label} authors")
            for a in expect_list(poetry.get("authors", []), f"{label} authors")
        ),
    )


_POETRY_TOKEN = re.compile(r"(\^|~=|~|>=|<=|!=|==|>|<|=)?\s*(\*|\d+(?:\.(?:\d+|\*))*)")


def _poetry_python(text: str) -> SpecifierSet:
    """Poetry's ``python = "^3.10"`` as a PEP 440 specifier set.

    A ``||`` union cannot be one SpecifierSet; it becomes "any Python", which only matters for
    picking the default base image (the host's Python, which Poetry itself accepted).
    """
    if "||" in text or "|" in text:
        return SpecifierSet()
    specs: list[str] = []
    rest = text.replace(",", " ").strip()
    while rest:
        match = _POETRY_TOKEN.match(rest)
        if not match:
            fail(
                "[tool.poetry.dependencies] python",
                f"{text!r} is not a constraint pyjib understands; add requires-python to [project]",
            )
        specs.extend(_poetry_constraint(match[1] or "", match[2]))
        rest = rest[match.end() :].strip()
    try:
        return SpecifierSet(",".join(specs))
    except InvalidSpecifier:
        fail(
            "[tool.poetry.dependencies] python",
            f"{text!r} is not a constraint pyjib understands; add requires-python to [project]",
        )


def _poetry_constraint(op: str, version: str) -> list[str]:
    if version == "*":
        return []
    parts = [int(p) for p in version.split(".") if p != "*"]
    if op == "^":  # up to the next change of the first non-zero component
        index = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
        upper = [*parts[:index], parts[index] + 1]
        return [f">={version}", f"<{'.'.join(map(str, upper))}"]
    if op == "~":  # ~3.10 / ~3.10.2: same minor; ~3: same major
        upper = [parts[0] + 1] if len(parts) == 1 else [parts[0], parts[1] + 1]
        return [f">={version}", f"<{'.'.join(map(str, upper))}"]
    if op in ("", "=", "=="):
        return [f"=={version}"]
    return [f"{op}{version}"]
