"""Registry credentials: where they come from, in the contract's order, and keeping them secret.

Order (CONTRACT.md "Credentials, in this order", modelled on Jib's ``DefaultCredentialRetrievers``
and ggcr's ``DefaultKeychain``): explicit ``auth`` / ``JIB_{TO,FROM}_{USERNAME,PASSWORD}`` →
the configured ``cred-helper`` → Docker's ``config.json`` (``credHelpers``, ``credsStore``,
``auths``) → Podman's ``auth.json`` → anonymous. The first source with something wins.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from jib.errors import JibError
from jib.image.reference import DOCKER_HUB

log = logging.getLogger(__name__)

HELPER_TIMEOUT = 30.0  # seconds; a helper waiting for an interactive login must not hang a build
DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # Docker's credentials key for Hub (3.7, 3.9)
_HUB_ALIASES = frozenset(
    {DOCKER_HUB, "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_TOKEN_USERNAME = "<token>"  # a helper's way of saying "Secret is an identity token"
_HELPER_PREFIX = "docker-credential-"
_NOT_FOUND = "credentials not found"  # docker-credential-helpers' not-found message, lower-cased


@dataclass(frozen=True, repr=False)
class Credential:
    """What to authenticate with, and (for messages) where it came from. Never prints secrets."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None  # OAuth2 refresh token (oci.md 3.3)
    registry_token: str | None = None  # sent as-is as ``Bearer`` (oci.md 3.6)
    source: str = "anonymous"

    @property
    def is_anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values this credential holds, for :func:`redact`."""
        values = (self.password, self.identity_token, self.registry_token)
        return tuple(v for v in values if v)

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, source={self.source!r})"

    def __str__(self) -> str:
        if self.is_anonymous:
            return "anonymous"
        who = self.username or ("identity token" if self.identity_token else "token")
        return f"{who} (from {self.source})"


ANONYMOUS = Credential()


class Keychain(Protocol):
    def resolve(self, registry: str) -> Credential:
        """Credentials for ``registry`` (``Reference.registry``: ``docker.io``, ``host:port``)."""
        ...


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    # Longest first, so a secret that contains another is not left half-visible.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def default_keychain(
    *,
    explicit: Credential | None = None,
    env_prefix: str | None = None,
    cred_helper: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Keychain:
    """The contract's keychain for one side of the build (``env_prefix`` ``JIB_TO``/``JIB_FROM``).

    Nothing is read or run until :meth:`DefaultKeychain.resolve` is first called for a registry.
    """
    return DefaultKeychain(
        explicit=explicit,
        env_prefix=env_prefix,
        cred_helper=cred_helper,
        environ=environ,
        home=home,
    )


class DefaultKeychain:
    """Resolves lazily and caches the result per registry (helpers are slow and may prompt)."""

    def __init__(
        self,
        *,
        explicit: Credential | None = None,
        env_prefix: str | None = None,
        cred_helper: str | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> None:
        self._explicit = explicit
        self._env_prefix = env_prefix
        # Where the user configured this side, for messages: "[tool.jib.to]" for JIB_TO.
        side = {"JIB_TO": "to", "JIB_FROM": "from"}.get(env_prefix or "")
        self._section = f"[tool.jib.{side}]" if side else "pyproject.toml"
        self._auth_source = f"[tool.jib.{side}.auth]" if side else "explicit auth"
        self._cred_helper = cred_helper
        self._environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        default_home = self._environ.get("HOME")
        self._home = (
            home if home is not None else Path(default_home) if default_home else Path.home()
        )
        self._cache: dict[str, Credential] = {}
        self._lock = threading.Lock()  # pulls run concurrently; run each helper once per registry

    def resolve(self, registry: str) -> Credential:
        key = _normalize_host(registry)
        with self._lock:
            if key not in self._cache:
                credential = self._lookup(key)
                if credential.is_anonymous:
                    log.debug("No credentials found for %s; trying anonymous access", key)
                else:
                    log.info("Using credentials from %s for %s", credential.source, key)
                self._cache[key] = credential
            return self._cache[key]

    def _lookup(self, registry: str) -> Credential:
        for source in (
            self._from_explicit,
            self._from_cred_helper,
            self._from_docker_config,
            self._from_podman,
        ):
            found = source(registry)
            if found is not None and not found.is_anonymous:
                return found
        return ANONYMOUS

    def _from_explicit(self, registry: str) -> Credential | None:
        if self._env_prefix:
            user_var, pass_var = f"{self._env_prefix}_USERNAME", f"{self._env_prefix}_PASSWORD"
            # CI systems expand an unavailable secret to "", so empty counts as unset.
            username, password = self._environ.get(user_var), self._environ.get(pass_var)
            if username and password:
                return Credential(
                    username=username, password=password, source=f"{user_var}/{pass_var}"
                )
            if username or password:
                have, missing = (user_var, pass_var) if username else (pass_var, user_var)
                raise JibError(
                    f"{have} is set but {missing} is not (or is empty): set both, or unset {have} "
                    "to use the other credential sources"
                )
        explicit = self._explicit
        if explicit is None or explicit.is_anonymous:
            return None
        if explicit.source == ANONYMOUS.source:  # the caller did not say; name the setting
            explicit = replace(explicit, source=self._auth_source)
        return explicit

    def _from_cred_helper(self, registry: str) -> Credential | None:
        if not self._cred_helper:
            return None
        helper = self._cred_helper
        is_path = "/" in helper or os.sep in helper
        if is_path:
            name, found = helper, os.path.isfile(helper) and os.access(helper, os.X_OK)
            path: str | None = helper if found else None
        else:
            name = helper if helper.startswith(_HELPER_PREFIX) else _HELPER_PREFIX + helper
            path = shutil.which(name, path=self._environ.get("PATH", os.defpath))
        if path is None:
            where = "is not an executable file" if is_path else "is not on PATH"
            raise JibError(
                f"credential helper {name} {where}: install it, or fix or remove `cred-helper` "
                f"in {self._section}"
            )
        try:
            return self._run_helper(path, name, registry)
        except _HelperError as err:
            raise JibError(
                f"{err}; fix the helper's login, or change `cred-helper` in {self._section}"
            ) from None

    def _run_helper(
        self, path: str, name: str, registry: str, source: str | None = None
    ) -> Credential | None:
        """``<helper> get`` with the server URL on stdin; None when it has nothing for us."""
        server_url = DOCKER_HUB_KEY if registry == DOCKER_HUB else registry
        try:
            proc = subprocess.run(
                [path, "get"],
                input=server_url,
                capture_output=True,
                text=True,
                timeout=HELPER_TIMEOUT,
                env=dict(self._environ),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _HelperError(
                f"credential helper {name} timed out after {HELPER_TIMEOUT:g} s for {registry}"
            ) from None
        except OSError as err:
            raise _HelperError(
                f"credential helper {name} could not be run for {registry} ({err.strerror or err})"
            ) from None
        reply = _json_object(proc.stdout)
        # The helper may have printed a secret even while failing; never echo one back.
        known = [*self._known_secrets(), _string_ci(reply, "Secret")]
        if proc.returncode != 0:
            if _NOT_FOUND in (proc.stdout + proc.stderr).lower():
                log.debug("%s has no credentials for %s", name, registry)
                return None
            first = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), "")
            detail = f": {redact(first, *known)[:300]}" if first else ""
            raise _HelperError(
                f"credential helper {name} failed for {registry} (exit {proc.returncode}{detail})"
            )
        if not reply and proc.stdout.strip():
            raise _HelperError(
                f"credential helper {name} returned output that is not JSON for {registry}"
            )
        username, secret = _string_ci(reply, "Username"), _string_ci(reply, "Secret")
        if not secret:
            return None  # empty reply: the helper does not handle this server
        if username == _TOKEN_USERNAME:
            return Credential(identity_token=secret, source=source or name)
        return Credential(username=username, password=secret, source=source or name)

    def _known_secrets(self) -> list[str]:
        secrets = [s for c in self._cache.values() for s in c.secrets]
        if self._explicit is not None:
            secrets.extend(self._explicit.secrets)
        if self._env_prefix:
            secrets.append(self._environ.get(f"{self._env_prefix}_PASSWORD", ""))
        return secrets

    def _from_docker_config(self, registry: str) -> Credential | None:
        directory = self._environ.get("DOCKER_CONFIG")
        path = (
            Path(directory) / "config.json" if directory else self._home / ".docker" / "config.json"
        )
        return self._from_auth_file(path, registry, allow_store=True)

    def _from_podman(self, registry: str) -> Credential | None:
        paths: list[Path] = []
        if auth_file := self._environ.get("REGISTRY_AUTH_FILE"):
            paths.append(Path(auth_file))
        if runtime := self._environ.get("XDG_RUNTIME_DIR"):
            paths.append(Path(runtime) / "containers" / "auth.json")
        paths.append(self._home / ".config" / "containers" / "auth.json")
        for path in paths:
            found = self._from_auth_file(path, registry, allow_store=False)
            if found is not None and not found.is_anonymous:
                return found
        return None

    def _from_auth_file(self, path: Path, registry: str, *, allow_store: bool) -> Credential | None:
        """Docker's config.json and Podman's auth.json share a shape; only Docker has credsStore."""
        config = _read_config(path)
        if config is None:
            return None
        # credHelpers[key] first, then credsStore (GetCredentialsStore). Unlike Docker, a helper
        # with nothing for us falls through to `auths`, as Jib does.
        named: list[tuple[str, str]] = []
        helpers = _lookup_ci(config, "credHelpers")
        if isinstance(helpers, dict):
            keys = [k for k in _matching_keys(helpers, registry) if isinstance(helpers[k], str)]
            named += [(helpers[k], "credHelpers") for k in keys[:1] if helpers[k]]
        store = _lookup_ci(config, "credsStore") if allow_store else None
        if isinstance(store, str) and store:
            named.append((store, "credsStore"))
        for helper, via in named:
            found = self._config_helper(helper, via, path, registry)
            if found is not None:
                return found
        auths = _lookup_ci(config, "auths")
        if isinstance(auths, dict):
            for key in _matching_keys(auths, registry):
                found = _from_auth_entry(auths[key], key, path)
                if found is not None and not found.is_anonymous:
                    return found
        return None

    def _config_helper(self, helper: str, via: str, path: Path, registry: str) -> Credential | None:
        # Unlike an explicit `cred-helper`, a helper named in someone's Docker config (say a
        # credsStore "desktop" copied into a CI image) must not fail the build: warn and go on.
        name = _HELPER_PREFIX + helper
        executable = shutil.which(name, path=self._environ.get("PATH", os.defpath))
        if executable is None:
            log.warning(
                "%s (%s in %s) is not on PATH; skipping it for %s", name, via, path, registry
            )
            return None
        try:
            return self._run_helper(executable, name, registry, source=f"{name} ({via} in {path})")
        except _HelperError as err:
            log.warning("%s; skipping it (%s in %s)", err, via, path)
            return None


class _HelperError(Exception):
    """A helper that ran and failed; the message is already redacted."""


def _normalize_host(registry: str) -> str:
    host = registry.strip().lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _key_host(key: str) -> tuple[str, int]:
    """A config key's registry and how specific it is (0 host, 1 URL form, 2 namespaced key).

    Docker converts URL-form keys (``https://host:port/v1/``) to hostnames; Podman also allows
    ``host/namespace`` keys, which Jib accepts for the whole host as a last resort.
    """
    text = key.strip().lower()
    rank = 0
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text, rank = text[len(scheme) :], 1
    host, slash, rest = text.partition("/")
    if rank == 0 and slash and rest:
        rank = 2
    return _normalize_host(host), rank


def _matching_keys(entries: Mapping[str, Any], registry: str) -> list[str]:
    """Keys of ``entries`` that name ``registry``, best first: Docker's own key, then by rank."""
    canonical = DOCKER_HUB_KEY if registry == DOCKER_HUB else registry
    ranked = []
    for index, key in enumerate(entries):
        host, rank = _key_host(key)
        if host == registry:
            ranked.append((-1 if key == canonical else rank, index, key))
    return [key for _, _, key in sorted(ranked)]


def _from_auth_entry(entry: object, key: str, path: Path) -> Credential | None:
    if not isinstance(entry, dict):
        return None
    username, password = _string_ci(entry, "username"), _string_ci(entry, "password")
    encoded = _string_ci(entry, "auth")
    if encoded:
        try:
            padded = encoded.strip() + "=" * (-len(encoded.strip()) % 4)
            decoded = base64.b64decode(padded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            log.warning(
                "The auth entry for %s in %s is not base64 of user:password; skipping it", key, path
            )
            return None
        # Split at the first ':' (passwords may contain ':'); Docker trims NULs (decodeAuth).
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            log.warning("The auth entry for %s in %s is not user:password; skipping it", key, path)
            return None
        password = password.strip("\x00")
    return Credential(
        username=username or None,
        password=password or None,
        identity_token=_string_ci(entry, "identitytoken") or None,
        registry_token=_string_ci(entry, "registrytoken") or None,
        source=str(path),
    )


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        log.warning(
            "Cannot read %s (%s); ignoring it",
            path,
            getattr(err, "strerror", None) or type(err).__name__,
        )
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        # err.msg and the position only: the text itself may hold secrets.
        log.warning("%s is not valid JSON (%s at line %d); ignoring it", path, err.msg, err.lineno)
        return None
    if not isinstance(config, dict):
        log.warning("%s is not a JSON object; ignoring it", path)
        return None
    return config


def _lookup_ci(mapping: Mapping[str, Any], name: str) -> Any:
    """A field by name, case-insensitively, as Go's encoding/json (and so Docker) reads them."""
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    return next(
        (v for k, v in mapping.items() if isinstance(k, str) and k.lower() == lowered), None
    )


def _string_ci(mapping: Mapping[str, Any], name: str) -> str:
    value = _lookup_ci(mapping, name)
    return value if isinstance(value, str) else ""


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
