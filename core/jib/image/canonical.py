"""Canonical JSON: the one byte form pyjib writes for manifests, indexes and configs.

Keys sorted, no insignificant whitespace, UTF-8 without escaping: the same value always gives the
same bytes, so the same inputs always give the same digest.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
