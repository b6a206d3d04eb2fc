"""TOML loading with one-line errors (``tomllib`` on 3.11+, ``tomli`` before)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jib.errors import JibError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def load_toml(path: Path, name: str | None = None) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise JibError(f"cannot read {name or path}: {err}") from None
