"""Byte counts as people read them (decimal units, as registries and `docker images` show)."""

from __future__ import annotations


def human(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
