"""Checking and parsing single ``[tool.jib]`` values: types, keys, ports, times, permissions, ...

Every failure is a :class:`ConfigError` whose one line starts with *where* the value came from:
a TOML location such as ``[tool.jib.container] ports``, an environment variable such as
``JIB_TO_TAGS``, or a command-line option such as ``--tag``. Values are never echoed for keys that
may hold secrets (the callers only pass those through the type checks, which name types only).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.image.reference import Reference

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


class ConfigError(JibError):
    """A setting that is unknown, of the wrong type or has a bad value. One line, names the key."""


def fail(where: str, problem: str) -> NoReturn:
    raise ConfigError(f"{where}: {problem}")


# --- types -------------------------------------------------------------------------------------


def type_name(value: object) -> str:
    """What TOML calls ``value``'s type, with an article: ``an integer``, ``a table``."""
    # bool before int: True is an int in Python, but a boolean in TOML.
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dt.datetime):
        return "a date-time"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, dt.time):
        return "a time"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    return type(value).__name__


def toml_key(key: str) -> str:
    """``key`` as TOML would spell it: bare when it can be, quoted otherwise."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def sub_label(label: str, key: str) -> str:
    """The label of a nested table: ``[tool.jib.to]`` + ``auth`` -> ``[tool.jib.to.auth]``."""
    if label.startswith("[") and not label.startswith("[[") and label.endswith("]"):
        return f"{label[:-1]}.{toml_key(key)}]"
    return f"{label} {toml_key(key)}"


def _kebab(key: str) -> str:
    """``appRoot``/``app_root``/``APP-ROOT`` -> ``app-root``: how people misspell our keys."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", key).replace("_", "-").lower()


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The known choice ``word`` most likely meant, if any is close enough.

    Compared in one spelling (lowercase, ``-`` for ``_``, camelCase split), so ``appRoot`` and
    ``app_root`` find ``app-root`` and ``JIB_TO_TAG`` finds ``JIB_TO_TAGS``.
    """
    by_form = {_kebab(choice): choice for choice in choices}
    form = _kebab(word)
    if form in by_form:
        return by_form[form]
    close = difflib.get_close_matches(form, list(by_form), n=1, cutoff=0.6)
    return by_form[close[0]] if close else None


def check_table(value: object, label: str, known: Iterable[str]) -> Mapping[str, Any]:
    """``value`` as a table whose keys are all in ``known`` (``label``: ``[tool.jib.to]``)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{label} must be a table, not {type_name(value)}")
    known = list(known)
    for key in value:
        if key in known:
            continue
        guess = did_you_mean(str(key), known)
        hint = f"did you mean {guess!r}?" if guess else f"known keys: {', '.join(known)}"
        raise ConfigError(f"{label} unknown key {str(key)!r}; {hint}")
    return value


def expect_str(value: object, where: str, *, allow_int: bool = False) -> str:
    """A non-empty string (or, with ``allow_int``, an integer written without quotes)."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        wanted = "a string or an integer" if allow_int else "a string"
        raise ConfigError(f"{where} must be {wanted}, not {type_name(value)}")
    if not value.strip():
        fail(where, "must not be empty")
    return value


def expect_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        hint = " (write true or false, without quotes)" if isinstance(value, str) else ""
        raise ConfigError(f"{where} must be a boolean, not {type_name(value)}{hint}")
    return value


def expect_list(value: object, where: str, item: str = "strings") -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be a list of {item}, not {type_name(value)}")
    return list(value)


def expect_str_list(value: object, where: str, *, allow_int: bool = False) -> tuple[str, ...]:
    """A list of non-empty strings; the message names the first item that is not one."""
    wanted = "strings or integers" if allow_int else "strings"
    items = expect_list(value, where, wanted)
    out: list[str] = []
    for index, item in enumerate(items, 1):
        ok = isinstance(item, str) or (
            allow_int and isinstance(item, int) and not isinstance(item, bool)
        )
        if not ok:
            raise ConfigError(
                f"{where} must be a list of {wanted}; item {index} is {type_name(item)}"
            )
        if isinstance(item, str) and not item.strip():
            fail(where, f"item {index} is empty")
        out.append(str(item))
    return tuple(out)


def expect_str_map(value: object, label: str, *, allow_int: bool = False) -> dict[str, str]:
    """A table of string values; ``label`` is the table's own label (``[tool.jib.container.x]``)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{label} must be a table, not {type_name(value)}")
    out: dict[str, str] = {}
    for key, item in value.items():
        where = f"{label} {toml_key(str(key))}"
        if not str(key):
            fail(label, "keys must not be empty")
        if allow_int and isinstance(item, int) and not isinstance(item, bool):
            out[str(key)] = str(item)
        elif isinstance(item, str):
            out[str(key)] = item
        else:
            wanted = "a string or an integer" if allow_int else "a string"
            raise ConfigError(f"{where} must be {wanted}, not {type_name(item)}")
    return out


# --- words, lists from the environment ----------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def parse_bool_word(text: str, where: str) -> bool:
    """``true/false/1/0/yes/no`` in any case, as environment variables spell booleans."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    fail(where, f"{text!r} is not a boolean; use true/false, 1/0 or yes/no")


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c,"`` -> ``("a", "b", "c")``: comma-separated, blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def keyword(text: str, where: str, choices: Iterable[str], usage: str) -> str:
    """``text`` as one of ``choices`` (case-insensitive), else a did-you-mean error."""
    choices = list(choices)
    for choice in choices:
        if text.strip().lower() == choice.lower():
            return choice
    guess = did_you_mean(text, choices)
    fail(where, f"{text!r} is not {usage}" + (f"; did you mean {guess!r}?" if guess else ""))


# --- images, tags, platforms -------------------------------------------------------------------

_TAG_HELP = "letters, digits, '_', '.', '-'; at most 128 characters, not starting with '.' or '-'"
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # = jib.image.reference's grammar


def parse_tag(text: str, where: str) -> str:
    if not _TAG_RE.fullmatch(text):
        fail(where, f"{text!r} is not a valid tag ({_TAG_HELP})")
    return text


def parse_reference(text: str, where: str) -> Reference:
    try:
        return Reference.parse(text)
    except JibError as err:  # InvalidReferenceError says "invalid image reference 'x': why"
        fail(where, str(err))


def parse_platform(text: str, where: str) -> Platform:
    try:
        platform = Platform.parse(text)
    except JibError as err:
        fail(where, str(err))
    if platform.os != "linux":
        # Everything pyjib puts in an image (venv layout, shebangs, wheel tags) is Linux's.
        fail(where, f"{text!r} is not a Linux platform; pyjib builds linux/<arch> images")
    return platform


# --- ports -------------------------------------------------------------------------------------

_PORT_RE = re.compile(r"(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?")
_PORT_HELP = 'use "8000", "8000/udp" or "9000-9002/tcp"'


def parse_ports(items: Iterable[str], where: str) -> tuple[str, ...]:
    """Jib's ``Ports.parse``: ``"8000"`` -> ``8000/tcp``; ranges expanded; duplicates dropped."""
    out: dict[str, None] = {}  # ordered set: keep the order written, once each
    for text in items:
        match = _PORT_RE.fullmatch(text.strip())
        if not match:
            fail(where, f"{text!r} is not a port; {_PORT_HELP}")
        first, last = int(match[1]), int(match[2] or match[1])
        protocol = (match[3] or "tcp").lower()
        if protocol not in ("tcp", "udp"):  # the two the OCI image spec's ExposedPorts names
            fail(where, f"{text!r} has protocol {match[3]!r}; use tcp or udp")
        for port in (first, last):
            if not 1 <= port <= 65535:
                fail(where, f"{text!r}: port {port} is not between 1 and 65535")
        if first > last:
            fail(where, f"{text!r} is not a port range: {first} is greater than {last}")
        for port in range(first, last + 1):
            out[f"{port}/{protocol}"] = None
    return tuple(out)


# --- paths in the image ------------------------------------------------------------------------


def parse_image_path(text: str, where: str) -> str:
    """An absolute POSIX path in the image, normalized (``/app/`` -> ``/app``)."""
    if not text.startswith("/"):
        fail(where, f"{text!r} is not an absolute path in the image (it must start with '/')")
    if "\x00" in text:
        fail(where, f"{text!r} contains a NUL character")
    normalized = posixpath.normpath(text)
    # normpath keeps a leading "//" (POSIX leaves its meaning open); images have no use for it.
    return "/" + normalized.lstrip("/")


def parse_user(text: str, where: str) -> str:
    """``user``, ``uid``, ``user:group`` or ``uid:gid``, as the image config's ``User`` takes."""
    if not re.fullmatch(r"[^:\s]+(?::[^:\s]+)?", text):
        fail(where, f"{text!r} is not a user; use NAME, UID, NAME:GROUP or UID:GID")
    return text


# --- times -------------------------------------------------------------------------------------

_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?"
)
_ISO_HELP = 'an ISO-8601 time with a UTC offset, e.g. "2024-05-01T12:00:00Z" or "...+02:00"'


def parse_iso_time(value: object, where: str, usage: str) -> dt.datetime:
    """An ISO-8601 date-time with an offset (``Z``, ``+02:00``, ``+0200``, ``+02``), as UTC.

    Written here rather than with ``datetime.fromisoformat`` because Python 3.10's accepts neither
    ``Z`` nor ``+0200``. A time without an offset is refused: it would depend on the build host's
    time zone, and the point of fixing times is the same image everywhere.
    """
    if isinstance(value, dt.datetime):  # a TOML date-time literal, already parsed
        if value.tzinfo is None:
            fail(where, f"{value.isoformat()} has no UTC offset; add Z or +HH:MM")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be {usage}, not {type_name(value)}")
    match = _ISO_RE.fullmatch(value.strip())
    if not match:
        fail(where, f"{value!r} is not {usage}")
    year, month, day, hour, minute = (int(match[i]) for i in range(1, 6))
    second = int(match[6] or 0)
    micro = int((match[7] or "0")[:6].ljust(6, "0"))
    if match[8]:
        zone = UTC
    elif match[9]:
        hours, minutes = int(match[10]), int(match[11] or 0)
        offset = dt.timedelta(hours=hours, minutes=minutes)
        if hours > 23 or minutes > 59:
            fail(where, f"{value!r} has an out-of-range UTC offset")
        zone = dt.timezone(-offset if match[9] == "-" else offset)
    else:
        fail(where, f"{value!r} has no UTC offset; add Z or +HH:MM")
    try:
        moment = dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError as err:
        fail(where, f"{value!r} is not a valid time ({err})")
    return moment.astimezone(UTC)


def parse_creation_time(
    value: object, where: str, source_date_epoch: str | None, now: dt.datetime | None = None
) -> dt.datetime:
    """``EPOCH`` (or ``SOURCE_DATE_EPOCH`` when set), ``USE_CURRENT_TIMESTAMP`` or ISO-8601."""
    usage = f'"EPOCH", "USE_CURRENT_TIMESTAMP" or {_ISO_HELP}'
    if isinstance(value, str) and not _looks_like_time(value):
        word = keyword(value, where, ("EPOCH", "USE_CURRENT_TIMESTAMP"), usage)
        if word == "USE_CURRENT_TIMESTAMP":
            return (now or dt.datetime.now(UTC)).astimezone(UTC)
        if source_date_epoch:
            return EPOCH + dt.timedelta(seconds=parse_source_date_epoch(source_date_epoch))
        return EPOCH
    return parse_iso_time(value, where, usage)


def parse_files_modification_time(value: object, where: str) -> int:
    """``EPOCH_PLUS_SECOND`` (1, Jib's default: some tools read an mtime of 0 as "unset") or ISO."""
    usage = f'"EPOCH_PLUS_SECOND" or {_ISO_HELP}'
    if isinstance(value, str) and not _looks_like_time(value):
        keyword(value, where, ("EPOCH_PLUS_SECOND",), usage)
        return 1
    moment = parse_iso_time(value, where, usage)
    if moment < EPOCH:
        fail(where, f"{moment.isoformat()} is before 1970-01-01T00:00:00Z")
    return int((moment - EPOCH).total_seconds())  # whole seconds, like a tar header's mtime


def parse_source_date_epoch(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text):
        fail("SOURCE_DATE_EPOCH", f"{text!r} is not a whole number of seconds since 1970")
    return int(text)


def _looks_like_time(text: str) -> bool:
    return bool(re.match(r"\s*\d", text))


# --- permissions, python, urls -----------------------------------------------------------------


def parse_mode(value: object, where: str) -> int:
    """An octal permission string: ``"755"``, ``"0755"`` or ``"0o755"`` (the 9 permission bits).

    Integers are refused: TOML's ``755`` is decimal and ``0o755`` arrives as 493, so only a string
    says unambiguously what was meant.
    """
    if not isinstance(value, str):
        hint = ' (write the mode as a string, e.g. "755")' if isinstance(value, int) else ""
        raise ConfigError(f"{where} must be a string, not {type_name(value)}{hint}")
    match = re.fullmatch(r"(?:0o|0(?=[0-7]{3}$))?([0-7]{3})", value.strip(), re.IGNORECASE)
    if not match:
        fail(where, f'{value!r} is not an octal mode; use three octal digits like "644" or "755"')
    return int(match[1], 8)


def parse_python_version(value: object, where: str) -> str:
    """``"3.12"`` or ``"3.12.4"``, as a string (a TOML float would turn ``3.10`` into ``3.1``).

    The micro version is optional; stating it (with ``executable``) lets pyjib skip reading the
    base image's layers when the base names its distribution (see ``jib.python.target``).
    """
    if isinstance(value, float):
        # Not echoing the float: TOML's 3.10 arrives as 3.1, which is not what was written.
        fail(where, 'write the version as a string, e.g. "3.12" (as a number, 3.10 means 3.1)')
    text = expect_str(value, where)
    if not re.fullmatch(r"3\.\d{1,2}(?:\.\d{1,3})?", text.strip()):
        fail(where, f'{text!r} is not a Python version; use MAJOR.MINOR, e.g. "3.12" or "3.12.4"')
    return text.strip()


def parse_url(text: str, where: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.path):
        fail(where, f"{text!r} is not an http(s):// or file:// URL")
    return text
