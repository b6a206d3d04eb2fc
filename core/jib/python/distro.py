"""The Linux distribution under a base image, and so its libc, from what the image STATES.

Nothing here reads a layer: a registry push must not download the base to learn which wheels fit
it. Images name their root filesystem in a few conventional places, checked in this order:

- the history entry that created the root filesystem: debuerreotype's
  ``# debian.sh --arch 'amd64' out/ 'bookworm' '@1733097600'`` (every Debian-based official image
  and everything built FROM one), mmdebstrap's or debootstrap's command line, and Alpine's
  ``ADD alpine-minirootfs-3.20.3-x86_64.tar.gz / # buildkit``;
- labels or manifest annotations: ``org.opencontainers.image.base.name`` (``debian:bookworm-slim``,
  ``python:3.12-alpine3.20``) and Ubuntu's ``org.opencontainers.image.ref.name`` + ``.version``.

Only releases whose libc is fixed for their whole life are mapped (a stable distribution never
changes its glibc's minor version); anything else is unknown and the caller reads the layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jib.image.image import Image

#: ``(ID, VERSION_ID)`` as in os-release -> the glibc that release ships (notes §6).
GLIBC_OF_RELEASE: dict[tuple[str, str], tuple[int, int]] = {
    ("debian", "10"): (2, 28),
    ("debian", "11"): (2, 31),
    ("debian", "12"): (2, 36),
    ("debian", "13"): (2, 41),
    ("ubuntu", "20.04"): (2, 31),
    ("ubuntu", "22.04"): (2, 35),
    ("ubuntu", "24.04"): (2, 39),
    ("rhel", "8"): (2, 28),
    ("rhel", "9"): (2, 34),
    ("amzn", "2023"): (2, 34),
}
#: Every Alpine since 3.13 ships musl 1.2; older ones 1.1.
_MUSL_1_2_SINCE = (3, 13)

_CODENAMES = {
    "buster": ("debian", "10"),
    "bullseye": ("debian", "11"),
    "bookworm": ("debian", "12"),
    "trixie": ("debian", "13"),
    "focal": ("ubuntu", "20.04"),
    "jammy": ("ubuntu", "22.04"),
    "noble": ("ubuntu", "24.04"),
}
_BOOTSTRAPPERS = re.compile(r"(?:^|[\s/#])(?:debian\.sh|mmdebstrap|debootstrap)\s")
_ALPINE_ROOTFS = re.compile(r"\balpine-minirootfs-(\d+)\.(\d+)\.\d+")
_BASE_NAME = "org.opencontainers.image.base.name"


@dataclass(frozen=True)
class Distribution:
    """``Distribution("debian", "12", "history: # debian.sh ... 'bookworm' ...")``."""

    id: str
    version_id: str
    #: Where the image says so, for logs.
    evidence: str

    @property
    def libc(self) -> tuple[str, tuple[int, int]] | None:
        """``("glibc", (2, 36))`` or ``("musl", (1, 2))``; None for a release not known here."""
        if self.id == "alpine":
            release = tuple(int(p) for p in self.version_id.split(".")[:2] if p.isdigit())
            return "musl", (1, 2) if not release or release >= _MUSL_1_2_SINCE else (1, 1)
        glibc = GLIBC_OF_RELEASE.get((self.id, self.version_id))
        return ("glibc", glibc) if glibc else None


def distribution_of(image: Image) -> Distribution | None:
    """The distribution ``image`` says it is built on, or None when it does not say."""
    return _from_history(image) or _from_labels(image)


def _from_history(image: Image) -> Distribution | None:
    # Only the entry that made the bottom layer: it is the root filesystem (derived images keep
    # their base's history first); a later RUN that bootstraps some chroot says nothing.
    first = next((h for h in image.config.history if not h.get("empty_layer")), None)
    if first is not None:
        created_by = str(first.get("created_by") or "")
        if m := _ALPINE_ROOTFS.search(created_by):
            return Distribution("alpine", f"{m.group(1)}.{m.group(2)}", f"history: {created_by}")
        if _BOOTSTRAPPERS.search(created_by):
            for word in re.split(r"[\s'\"]+", created_by):
                if word in _CODENAMES:
                    return Distribution(*_CODENAMES[word], f"history: {created_by}")
    return None


def _from_labels(image: Image) -> Distribution | None:
    stated = {**image.manifest.annotations, **image.config.labels}
    if (base := stated.get(_BASE_NAME)) and (found := _from_reference(base)):
        return Distribution(*found, f"{_BASE_NAME}={base}")
    ref_name = stated.get("org.opencontainers.image.ref.name", "")
    version = stated.get("org.opencontainers.image.version", "")
    if ref_name == "ubuntu" and ("ubuntu", version) in GLIBC_OF_RELEASE:
        return Distribution("ubuntu", version, f"labels: ubuntu {version}")
    return None


def _from_reference(reference: str) -> tuple[str, str] | None:
    """``debian:bookworm-slim`` -> ``("debian", "12")``; ``python:3.12-alpine3.20`` -> alpine."""
    name, _, tag = reference.partition("@")[0].rpartition(":")
    if "/" in tag or not name:
        return None  # no tag (the colon was a registry port)
    repository = name.rpartition("/")[2]
    words = tag.split("-")
    if repository in ("debian", "ubuntu", "python"):
        for word in words:
            if word in _CODENAMES:
                return _CODENAMES[word]
    if repository == "debian" and (m := re.fullmatch(r"(\d+)(?:\.\d+)?", words[0])):
        return "debian", m.group(1)
    if repository == "ubuntu" and ("ubuntu", words[0]) in GLIBC_OF_RELEASE:
        return "ubuntu", words[0]
    if repository == "alpine" and (m := re.fullmatch(r"(\d+\.\d+)(?:\.\d+)?", words[0])):
        return "alpine", m.group(1)
    if repository == "python":
        for word in words:
            if m := re.fullmatch(r"alpine(\d+\.\d+)?", word):
                return "alpine", m.group(1) or ""
    return None
