"""``WWW-Authenticate`` challenges (RFC 7235) and token scopes (distribution's ``scope.md``).

Registries answer an unauthenticated request with 401 and one or more challenges, e.g.
``Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"``. The
parser is deliberately forgiving: a header it cannot make sense of is skipped, never raised,
because a registry's odd header must not turn into a traceback (the HTTP client then falls back
to what it can do, as Jib does when the header is missing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from jib.image.reference import Reference

__all__ = ["Challenge", "Scope", "merge_scopes", "parse_challenges", "pick"]

# RFC 7230 tchar; token68 is RFC 7235's opaque credential form (``Negotiate abc==``).
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
# Unquoted values should be tokens, but servers send ``realm=https://...`` unquoted; take
# everything up to the next comma or space rather than drop such a realm.
_BARE_VALUE_RE = re.compile(r'[^\s,"]+')
_WS = " \t"


@dataclass(frozen=True)
class Challenge:
    """One challenge: a lower-case scheme and its parameters (names lower-cased)."""

    scheme: str
    # hash=False: a mapping is not hashable; equal challenges still hash equal (scheme decides).
    params: Mapping[str, str] = field(default_factory=dict, hash=False)
    token68: str | None = None

    def __post_init__(self) -> None:
        # Normalize here too, so hand-built challenges compare equal to parsed ones.
        object.__setattr__(self, "scheme", self.scheme.lower())
        lowered = {name.lower(): value for name, value in self.params.items()}
        object.__setattr__(self, "params", MappingProxyType(lowered))

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ``scope`` parameter split on spaces (one challenge may name several scopes)."""
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str | None:
        """E.g. ``invalid_token`` or ``insufficient_scope`` (RFC 6750)."""
        return self.params.get("error")


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in every ``WWW-Authenticate`` value, in order; garbage is skipped."""
    challenges: list[Challenge] = []
    for header in headers:
        if isinstance(header, str):
            challenges.extend(_parse_header(header))
    return challenges


def pick(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: Bearer, else Basic, else None (nothing we can speak).

    ggcr's ``pickFromMultipleChallenges`` exists because registries behind SSO proxies send
    ``Negotiate`` first; answering that one would fail where Basic or Bearer would work.
    """
    found = list(challenges)
    for scheme in ("bearer", "basic"):
        for challenge in found:
            if challenge.scheme == scheme:
                return challenge
    return None


def _parse_header(text: str) -> list[Challenge]:
    # The grammar is ambiguous on its face: "," separates both parameters and challenges. A token
    # followed by "=" is a parameter of the current challenge; any other token starts a new one.
    result: list[tuple[str, dict[str, str], str | None]] = []
    pos, end = 0, len(text)
    while pos < end:
        pos = _skip(text, pos, _WS + ",")
        if pos >= end:
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            pos = _skip_garbage(text, pos)
            continue
        token, pos = match.group(), match.end()
        after = _skip(text, pos, _WS)
        if after < end and text[after] == "=":
            value, pos = _parse_value(text, _skip(text, after + 1, _WS))
            if result and value is not None:
                result[-1][1].setdefault(token.lower(), value)  # RFC: names occur once; keep first
            continue
        params: dict[str, str] = {}
        token68: str | None = None
        if after > pos:  # whitespace after the scheme: maybe an opaque token68 credential
            t68 = _TOKEN68_RE.match(text, after)
            if t68 is not None:
                token68, after = t68.group(), t68.end()
        result.append((token.lower(), params, token68))
        pos = after
    return [Challenge(scheme, params, token68) for scheme, params, token68 in result]


def _parse_value(text: str, pos: int) -> tuple[str | None, int]:
    """A quoted-string or bare value at ``pos``; None (and a resynchronized position) if neither."""
    if pos < len(text) and text[pos] == '"':
        return _parse_quoted(text, pos)
    match = _BARE_VALUE_RE.match(text, pos)
    if match is None:
        return None, _skip_garbage(text, pos)
    return match.group(), match.end()


def _parse_quoted(text: str, pos: int) -> tuple[str | None, int]:
    chars: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            chars.append(text[pos + 1])  # quoted-pair: the escaped character, literally
            pos += 2
        elif char == '"':
            return "".join(chars), pos + 1
        else:
            chars.append(char)
            pos += 1
    return None, pos  # unterminated: drop the value rather than guess where it ends


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _skip_garbage(text: str, pos: int) -> int:
    """Step over something unparseable, treating a stray quoted string as one unit."""
    if text[pos] == '"':
        return _parse_quoted(text, pos)[1]
    return pos + 1


@dataclass(frozen=True)
class Scope:
    """A token scope ``type:name:action[,action]*`` (``repository:alice/app:pull,push``)."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse one scope; ValueError if it is not ``type:name:actions``.

        The actions are split off from the right because a name may start with ``host:port``
        (scope.md's own example is ``repository:localhost:5000/foo/bar:push,pull``).
        """
        head, sep, actions = text.strip().rpartition(":")
        rtype, sep2, name = head.partition(":")
        parts = tuple(a for a in actions.split(",") if a)
        if not (sep and sep2 and rtype and name and parts):
            raise ValueError(f"not a scope (want type:name:action[,action]): {text!r}")
        return cls(rtype, name, parts)

    @classmethod
    def pull(cls, repository: str | Reference) -> Scope:
        """``repository:<name>:pull``; pass the repository path (or a Reference), not a host."""
        return cls("repository", _repository_name(repository), ("pull",))

    @classmethod
    def push(cls, repository: str | Reference) -> Scope:
        """``repository:<name>:push,pull``: push first, as ggcr does, because some registries
        only look at the first action."""
        return cls("repository", _repository_name(repository), ("push", "pull"))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def merge_scopes(scopes: Iterable[Scope]) -> tuple[Scope, ...]:
    """One scope per resource with the union of its actions, in first-seen order."""
    merged: dict[tuple[str, str], list[str]] = {}
    for scope in scopes:
        actions = merged.setdefault((scope.type, scope.name), [])
        actions.extend(a for a in scope.actions if a not in actions)
    return tuple(Scope(rtype, name, tuple(actions)) for (rtype, name), actions in merged.items())


def _repository_name(repository: str | Reference) -> str:
    # A Reference carries the registry separately; the scope must name the repository only
    # (``repository:app:pull``, never ``repository:127.0.0.1:5000/app:pull``).
    name = getattr(repository, "repository", repository)
    if not isinstance(name, str) or not name:
        raise ValueError(f"not a repository name: {repository!r}")
    return name
