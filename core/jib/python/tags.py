"""The wheel tags the target interpreter accepts, most preferred first.

Built from the TargetPython alone: ``packaging.tags.sys_tags()`` and ``platform_tags()`` probe
the host's glibc and CPU, which is exactly what a cross-platform build must not do.
"""

from __future__ import annotations

from functools import lru_cache

from packaging.tags import Tag, compatible_tags, cpython_tags

from jib.python.target import TargetPython

#: Legacy manylinux names, emitted right after the PEP 600 name for the same glibc (as packaging's
#: own ``_manylinux.platform_tags`` does), so either spelling of a wheel's tag matches.
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
#: Oldest glibc a manylinux wheel can claim per architecture: x86 wheels go back to
#: manylinux1 (2.5); everything else started with manylinux2014 (2.17).
_OLDEST_GLIBC = {"x86_64": 5, "i686": 5}
_LEGACY_ARCHES = {
    "manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
    "manylinux2010": {"x86_64", "i686"},
    "manylinux1": {"x86_64", "i686"},
}


def platform_tags(target: TargetPython) -> list[str]:
    """``manylinux_2_36_aarch64, ..., manylinux_2_17_aarch64, manylinux2014_aarch64`` or the
    ``musllinux_1_N`` list: what the image's libc can load, newest first.

    ``linux_<arch>`` is left out on purpose: such wheels (PyPI refuses them) are usually built
    on and for the host, and accepting them would let a host-built x86_64 wheel into an image.
    """
    arch = target.machine
    kind, (major, minor) = target.libc
    if kind == "musl":
        return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
    out: list[str] = []
    for glibc_minor in range(minor, _OLDEST_GLIBC.get(arch, 17) - 1, -1):
        out.append(f"manylinux_2_{glibc_minor}_{arch}")
        legacy = _LEGACY.get((2, glibc_minor))
        if legacy and arch in _LEGACY_ARCHES[legacy]:
            out.append(f"{legacy}_{arch}")
    return out


@lru_cache(maxsize=32)
def target_tags(target: TargetPython) -> tuple[Tag, ...]:
    """Every tag the target accepts, in preference order (cp3X-cp3X, abi3, none, pure)."""
    python_version = (target.version[0], target.version[1])
    platforms = platform_tags(target)
    tags = [
        *cpython_tags(python_version, abis=[target.abi], platforms=platforms),
        *compatible_tags(python_version, interpreter=target.python_tag, platforms=platforms),
    ]
    return tuple(dict.fromkeys(tags))  # the two generators overlap on a few; keep the first


def tag_ranks(target: TargetPython) -> dict[Tag, int]:
    """Tag -> preference (lower is better), to rank a wheel by its best tag."""
    return {tag: rank for rank, tag in enumerate(target_tags(target))}
