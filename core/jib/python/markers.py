"""PEP 508 markers evaluated for the target image, never for the host.

``packaging.markers.Marker.evaluate`` fills any missing key from the *host* interpreter, and
poetry-core's ``validate`` treats missing keys as satisfied (packaging notes §2.4), so every
evaluation here passes a complete environment built from the ``TargetPython``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

from jib.errors import JibError
from jib.python.target import TargetPython

log = logging.getLogger(__name__)

#: Describe the kernel the container will run on, which no image can tell: left empty, as
#: Poetry and uv do for a cross-platform environment. A lock that depends on them gets a warning.
_UNKNOWABLE = ("platform_release", "platform_version")


def marker_environment(target: TargetPython) -> dict[str, str]:
    """All eleven PEP 508 environment keys for the target interpreter."""
    return {
        "implementation_name": "cpython",
        "implementation_version": target.full_version,
        "os_name": "posix",
        "platform_machine": target.machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": target.full_version,
        "python_version": target.minor,
        "sys_platform": "linux",
    }


def parse_marker(text: str, where: str) -> Marker:
    try:
        return Marker(text)
    except InvalidMarker as err:
        raise JibError(f"{where} has an invalid marker {text!r}: {err}") from None


def _warn_unknowable(marker: Marker, where: str) -> None:
    text = str(marker)
    if any(key in text for key in _UNKNOWABLE):
        log.warning(
            "%s uses %s, which describes the host kernel and is unknown for an image; "
            "evaluated as empty",
            where,
            " / ".join(k for k in _UNKNOWABLE if k in text),
        )


def evaluate(
    marker: str | Marker | None,
    target: TargetPython,
    *,
    extras: Collection[str] = (),
    where: str = "a dependency",
) -> bool:
    """A requirement/metadata marker (``extra == "x"``): true if it holds for any asked extra."""
    if marker is None or (isinstance(marker, str) and not marker.strip()):
        return True
    parsed = marker if isinstance(marker, Marker) else parse_marker(marker, where)
    _warn_unknowable(parsed, where)
    env = marker_environment(target)
    # ``extra`` is a single string in this context: with several extras asked, the marker holds
    # if it holds for one of them (as pip evaluates a requirement once per requested extra).
    for extra in sorted({canonicalize_name(e) for e in extras}) or [""]:
        if parsed.evaluate({**env, "extra": extra}, context="metadata"):
            return True
    return False


def evaluate_lock(
    marker: str | Marker | None,
    target: TargetPython,
    *,
    extras: Collection[str] = (),
    groups: Collection[str] = (),
    where: str = "pylock.toml",
) -> bool:
    """A PEP 751 lock marker, where ``extras`` and ``dependency_groups`` are sets."""
    if marker is None or (isinstance(marker, str) and not marker.strip()):
        return True
    parsed = marker if isinstance(marker, Marker) else parse_marker(marker, where)
    _warn_unknowable(parsed, where)
    env: dict[str, str | frozenset[str]] = dict(marker_environment(target))
    env["extras"] = frozenset(canonicalize_name(e) for e in extras)
    env["dependency_groups"] = frozenset(canonicalize_name(g) for g in groups)
    return parsed.evaluate(env, context="lock_file")
