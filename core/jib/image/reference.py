"""Image references: ``[registry[:port]/]repository[:tag][@digest]``.

Parsing follows distribution's reference grammar (``distribution/reference``) and its Docker Hub
normalization: no registry means ``docker.io``, a one-component Docker Hub name gets ``library/``,
``index.docker.io`` is ``docker.io``, and a reference with neither tag nor digest means ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from jib.errors import InvalidReferenceError
from jib.image.digest import Digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_RE = re.compile(_DOMAIN)
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
# ASCII only, like distribution's grammar; patterns are used with fullmatch, since "$" would
# also accept a trailing newline.
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference. ``str()`` gives the normalized form."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``text`` strictly; raise InvalidReferenceError with the reason on failure."""
        original = text
        if not text or text != text.strip():
            raise _invalid(original, "it is empty or has surrounding whitespace")
        digest: Digest | None = None
        if "@" in text:
            text, _, digest_text = text.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except ValueError as err:
                raise _invalid(original, f"the digest is malformed ({err})") from None
            except Exception as err:  # ImageFormatError from Digest.parse
                raise _invalid(original, str(err)) from None
        tag: str | None = None
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            text, tag = text[:colon], text[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise _invalid(
                    original,
                    f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128 "
                    "characters, not starting with '.' or '-')",
                )
        registry, _, path = text.partition("/")
        if not path or not _looks_like_registry(registry):
            registry, path = DOCKER_HUB, text
        if not _DOMAIN_RE.fullmatch(registry):
            raise _invalid(original, f"registry {registry!r} is not a valid host[:port]")
        if registry == "index.docker.io":
            registry = DOCKER_HUB
        if not path:
            raise _invalid(original, "the repository name is missing")
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not _PATH_RE.fullmatch(path):
            hint = " (repository names must be lowercase)" if path.lower() != path else ""
            raise _invalid(
                original,
                f"repository {path!r} is not valid{hint}: use lowercase letters, digits and "
                "separators ('.', '_', '__', '-') between '/'-separated components",
            )
        if len(registry) + 1 + len(path) > _MAX_NAME:
            raise _invalid(original, f"the name is longer than {_MAX_NAME} characters")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry=registry, repository=path, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/`` in the registry API: the digest if any, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """The host that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def familiar(self) -> str:
        """The short form people type: ``python:3.12``, not ``docker.io/library/python:3.12``."""
        name = self.repository
        if self.registry == DOCKER_HUB:
            name = name.removeprefix("library/")
        else:
            name = f"{self.registry}/{name}"
        return name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.fullmatch(tag):
            raise _invalid(f"{self.name}:{tag}", f"tag {tag!r} is not valid")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        return replace(self, digest=digest)

    def _suffix(self) -> str:
        suffix = f":{self.tag}" if self.tag else ""
        if self.digest is not None:
            suffix += f"@{self.digest}"
        return suffix

    def __str__(self) -> str:
        return self.name + self._suffix()


def _looks_like_registry(component: str) -> bool:
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or (component.startswith("["))
    )


def _invalid(text: str, reason: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid image reference {text!r}: {reason}")
