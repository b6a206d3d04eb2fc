"""Canonical JSON: the one byte form pyjib writes for manifests, indexes and configs.

Keys sorted, no insignificant whitespace, UTF-8 without escaping: the same value always gives the
same bytes, so the same inputs always give the same digest.
"""

from __future__ import annotations

import json
from typing import Any

from jib.errors import ImageFormatError


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loads_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON document that must be an object; anything else is a format error."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ImageFormatError(f"{what} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ImageFormatError(f"{what} is not a JSON object")
    return data
