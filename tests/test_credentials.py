"""Credential sources, in the contract's order, with real files and a real helper executable.

Nothing here mocks the keychain: every test writes a Docker config / Podman auth.json into a
temporary HOME and puts a real ``docker-credential-*`` program on a temporary PATH.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jib.errors import JibError
from jib.registry import credentials
from jib.registry.credentials import (
    ANONYMOUS,
    Credential,
    Keychain,
    default_keychain,
    redact,
)

# Distinctive, so that finding one anywhere it must not be is unambiguous.
SECRET = "pw-SECRET-7f3a9c:with:colons"
TOKEN = "idtok-SECRET-51d0e2"
HUB_KEY = "https://index.docker.io/v1/"

# The helper is a real program: it logs each call, then answers from a JSON "keychain" file
# keyed by its own name and the server URL it read from stdin.
HELPER = f"""#!{sys.executable}
import json, os, sys, time
name = os.path.basename(sys.argv[0])
url = sys.stdin.read()
with open(os.environ["FAKE_HELPER_LOG"], "a") as log:
    log.write(json.dumps([name, sys.argv[1:], url]) + "\\n")
with open(os.environ["FAKE_HELPER_DB"]) as db:
    entry = json.load(db).get(name, {{}}).get(url.strip())
if sys.argv[1:] != ["get"]:
    sys.exit(2)
if entry is None:
    print("credentials not found in native keychain")
    sys.exit(1)
if "sleep" in entry:
    time.sleep(entry["sleep"])
if "fail" in entry:
    sys.stdout.write(json.dumps({{"Secret": entry.get("Secret", "")}}))
    sys.stderr.write("\\n" + entry["fail"] + "\\nsecond line\\n")
    sys.exit(entry.get("code", 3))
if "raw" in entry:
    sys.stdout.write(entry["raw"])
    sys.exit(0)
reply = {{"ServerURL": url, "Username": entry["Username"], "Secret": entry["Secret"]}}
json.dump(reply, sys.stdout)
"""


class Env:
    """A sandbox: HOME, DOCKER_CONFIG, XDG_RUNTIME_DIR, PATH and helper state under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.home.mkdir()
        self.bin.mkdir()
        self.db: dict[str, dict[str, Any]] = {}
        self.log = root / "helper.log"
        self.environ: dict[str, str] = {
            "HOME": str(self.home),
            "PATH": str(self.bin),
            "FAKE_HELPER_DB": str(root / "helpers.json"),
            "FAKE_HELPER_LOG": str(self.log),
        }
        self._save_db()

    def _save_db(self) -> None:
        Path(self.environ["FAKE_HELPER_DB"]).write_text(json.dumps(self.db))

    def helper(self, name: str, entries: dict[str, dict[str, Any]] | None = None) -> Path:
        """Install ``docker-credential-<name>`` answering ``entries`` (server URL → reply)."""
        path = self.bin / f"docker-credential-{name}"
        path.write_text(HELPER)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.db[path.name] = entries or {}
        self._save_db()
        return path

    def calls(self) -> list[list[Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def docker_config(self, config: dict[str, Any] | str, *, env_dir: bool = False) -> Path:
        directory = self.root / "docker-config" if env_dir else self.home / ".docker"
        if env_dir:
            self.environ["DOCKER_CONFIG"] = str(directory)
        return _write(directory / "config.json", config)

    def podman(self, config: dict[str, Any] | str, where: str = "home") -> Path:
        if where == "file":
            path = self.root / "custom-auth.json"
            self.environ["REGISTRY_AUTH_FILE"] = str(path)
        elif where == "runtime":
            self.environ["XDG_RUNTIME_DIR"] = str(self.root / "run")
            path = self.root / "run" / "containers" / "auth.json"
        else:
            path = self.home / ".config" / "containers" / "auth.json"
        return _write(path, config)

    def keychain(self, **kwargs: Any) -> Keychain:
        return default_keychain(environ=self.environ, **kwargs)


def _write(path: Path, config: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test, whatever it checks, also proves no secret reached a log record."""
    caplog.set_level(logging.DEBUG, logger="jib")
    yield
    # caplog.records would only hold the teardown phase here; check what the test logged.
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert all("SECRET" not in r.getMessage() for r in records), [r.getMessage() for r in records]


def _assert_one_clean_line(err: pytest.ExceptionInfo[JibError]) -> str:
    text = str(err.value)
    assert "\n" not in text
    assert "SECRET" not in text and "SECRET" not in repr(err.value)
    return text


# --- Credential and redact --------------------------------------------------------------------


def test_credential_repr_and_str_never_show_secrets() -> None:
    cred = Credential("alice", SECRET, TOKEN, "regtok-SECRET-1", source="/x/config.json")
    for text in (repr(cred), str(cred), f"{cred}", f"{cred!r}", repr([cred]), repr({"c": cred})):
        assert "SECRET" not in text
        assert "alice" in text and "/x/config.json" in text
    assert cred.secrets == (SECRET, TOKEN, "regtok-SECRET-1")
    assert not cred.is_anonymous


def test_anonymous() -> None:
    assert ANONYMOUS.is_anonymous and Credential() == ANONYMOUS
    assert ANONYMOUS.source == "anonymous" and str(ANONYMOUS) == "anonymous"
    assert not Credential(identity_token=TOKEN).is_anonymous
    assert not Credential(registry_token=TOKEN).is_anonymous


def test_redact() -> None:
    text = f"login failed for alice with {SECRET} (token {TOKEN}{TOKEN})"
    assert redact(text, SECRET, None, "", TOKEN) == "login failed for alice with *** (token ******)"
    # A secret containing another must not leave a fragment behind.
    assert redact("abcdef", "cd", "abcdef") == "***"
    assert redact("nothing here") == "nothing here"


# --- explicit auth and environment variables --------------------------------------------------


def test_env_pair_wins_over_everything_else(env: Env) -> None:
    env.environ |= {"JIB_TO_USERNAME": "env-user", "JIB_TO_PASSWORD": SECRET}
    env.helper("fake", {"ghcr.io": {"Username": "helper-user", "Secret": "x"}})
    env.docker_config({"auths": {"ghcr.io": {"auth": _auth("docker-user", "y")}}})
    keychain = env.keychain(
        explicit=Credential("toml-user", "z"), env_prefix="JIB_TO", cred_helper="fake"
    )
    cred = keychain.resolve("ghcr.io")
    assert (cred.username, cred.password) == ("env-user", SECRET)
    assert cred.source == "JIB_TO_USERNAME/JIB_TO_PASSWORD"
    assert env.calls() == []  # the helper was never consulted


def test_env_prefix_selects_the_side(env: Env) -> None:
    env.environ |= {"JIB_FROM_USERNAME": "from-user", "JIB_FROM_PASSWORD": SECRET}
    assert env.keychain(env_prefix="JIB_TO").resolve("ghcr.io") == ANONYMOUS
    assert env.keychain(env_prefix="JIB_FROM").resolve("ghcr.io").username == "from-user"
    assert env.keychain().resolve("ghcr.io") == ANONYMOUS  # no prefix: env vars not consulted


def test_explicit_auth_wins_over_helper_and_config(env: Env) -> None:
    env.helper("fake", {"ghcr.io": {"Username": "helper-user", "Secret": "x"}})
    env.docker_config({"auths": {"ghcr.io": {"auth": _auth("docker-user", "y")}}})
    keychain = env.keychain(
        explicit=Credential("toml-user", SECRET), env_prefix="JIB_TO", cred_helper="fake"
    )
    cred = keychain.resolve("ghcr.io")
    assert (cred.username, cred.password) == ("toml-user", SECRET)
    assert cred.source == "[tool.jib.to.auth]"
    named = env.keychain(explicit=Credential("u", SECRET, source="--password")).resolve("x.io")
    assert named.source == "--password"


@pytest.mark.parametrize(
    ("present", "missing"),
    [("JIB_TO_USERNAME", "JIB_TO_PASSWORD"), ("JIB_TO_PASSWORD", "JIB_TO_USERNAME")],
)
def test_env_var_without_its_partner_is_a_one_line_error(
    env: Env, present: str, missing: str
) -> None:
    env.environ[present] = SECRET
    env.environ[missing] = ""  # CI expands an unavailable secret to ""
    keychain = env.keychain(explicit=Credential("toml-user", "p"), env_prefix="JIB_TO")
    with pytest.raises(JibError) as err:
        keychain.resolve("ghcr.io")
    text = _assert_one_clean_line(err)
    assert f"{present} is set but {missing} is not" in text


def test_empty_env_pair_falls_through(env: Env) -> None:
    env.environ |= {"JIB_TO_USERNAME": "", "JIB_TO_PASSWORD": ""}
    env.docker_config({"auths": {"ghcr.io": {"auth": _auth("docker-user", SECRET)}}})
    assert env.keychain(env_prefix="JIB_TO").resolve("ghcr.io").username == "docker-user"


# --- the configured cred-helper ---------------------------------------------------------------


def test_cred_helper_wins_over_docker_config_and_gets_the_server_url(env: Env) -> None:
    env.helper("fake", {"127.0.0.1:5000": {"Username": "helper-user", "Secret": SECRET}})
    env.docker_config({"auths": {"127.0.0.1:5000": {"auth": _auth("docker-user", "y")}}})
    cred = env.keychain(cred_helper="fake").resolve("127.0.0.1:5000")
    assert (cred.username, cred.password, cred.source) == (
        "helper-user",
        SECRET,
        "docker-credential-fake",
    )
    assert env.calls() == [["docker-credential-fake", ["get"], "127.0.0.1:5000"]]


def test_cred_helper_token_username_means_identity_token(env: Env) -> None:
    env.helper("fake", {HUB_KEY: {"Username": "<token>", "Secret": TOKEN}})
    cred = env.keychain(cred_helper="fake").resolve("docker.io")
    assert cred.identity_token == TOKEN
    assert cred.username is None and cred.password is None
    # Docker Hub's credentials key, not the registry name, goes to the helper.
    assert env.calls()[0][2] == HUB_KEY


def test_cred_helper_not_found_falls_through_to_docker_config(env: Env) -> None:
    env.helper("fake", {})
    env.docker_config({"auths": {"ghcr.io": {"auth": _auth("docker-user", SECRET)}}})
    cred = env.keychain(cred_helper="fake").resolve("ghcr.io")
    assert cred.username == "docker-user"
    assert len(env.calls()) == 1


def test_cred_helper_by_absolute_path_and_full_name(env: Env) -> None:
    path = env.helper("fake", {"ghcr.io": {"Username": "u", "Secret": SECRET}})
    env.environ["PATH"] = str(env.root / "elsewhere")
    assert env.keychain(cred_helper=str(path)).resolve("ghcr.io").username == "u"
    env.environ["PATH"] = str(env.bin)
    assert env.keychain(cred_helper="docker-credential-fake").resolve("ghcr.io").username == "u"


def test_missing_cred_helper_is_a_one_line_error(env: Env) -> None:
    keychain = env.keychain(cred_helper="nope", env_prefix="JIB_FROM")  # lazy: no error yet
    with pytest.raises(JibError) as err:
        keychain.resolve("ghcr.io")
    text = _assert_one_clean_line(err)
    assert "docker-credential-nope is not on PATH" in text
    assert "install it" in text and "`cred-helper` in [tool.jib.from]" in text


def test_non_executable_cred_helper_path_is_a_one_line_error(env: Env) -> None:
    path = env.root / "docker-credential-plain"
    path.write_text("#!/bin/sh\n")
    with pytest.raises(JibError) as err:
        env.keychain(cred_helper=str(path), env_prefix="JIB_TO").resolve("ghcr.io")
    text = _assert_one_clean_line(err)
    assert f"{path} is not an executable file" in text and "[tool.jib.to]" in text


def test_failing_cred_helper_reports_exit_code_and_redacted_stderr(env: Env) -> None:
    env.environ |= {"JIB_TO_PASSWORD": "", "JIB_TO_USERNAME": ""}
    reply = {"fail": f"error: token {SECRET} expired", "code": 7, "Secret": SECRET}
    env.helper("fake", {"ghcr.io": reply})
    with pytest.raises(JibError) as err:
        env.keychain(cred_helper="fake", env_prefix="JIB_TO").resolve("ghcr.io")
    text = _assert_one_clean_line(err)
    assert "docker-credential-fake failed for ghcr.io (exit 7: error: token *** expired)" in text
    assert "second line" not in text


def test_failing_cred_helper_redacts_secrets_resolved_earlier(env: Env) -> None:
    env.helper(
        "fake",
        {
            "a.io": {"Username": "a", "Secret": SECRET},
            "b.io": {"fail": f"not logged in; the a.io password was {SECRET}"},
        },
    )
    keychain = env.keychain(cred_helper="fake")
    assert keychain.resolve("a.io").password == SECRET
    with pytest.raises(JibError) as err:
        keychain.resolve("b.io")
    assert "the a.io password was ***" in _assert_one_clean_line(err)


@pytest.mark.parametrize("raw", ["not json", '["a list"]'])
def test_cred_helper_with_garbage_output_is_an_error(env: Env, raw: str) -> None:
    env.helper("fake", {"ghcr.io": {"raw": raw}})
    with pytest.raises(JibError) as err:
        env.keychain(cred_helper="fake").resolve("ghcr.io")
    assert "not JSON" in _assert_one_clean_line(err)


def test_cred_helper_with_empty_secret_falls_through(env: Env) -> None:
    env.helper("fake", {"ghcr.io": {"Username": "", "Secret": ""}})
    assert env.keychain(cred_helper="fake").resolve("ghcr.io") == ANONYMOUS


def test_cred_helper_timeout(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials.HELPER_TIMEOUT == 30.0
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT", 0.5)  # keep the test fast
    env.helper("fake", {"ghcr.io": {"sleep": 5, "Username": "u", "Secret": SECRET}})
    with pytest.raises(JibError) as err:
        env.keychain(cred_helper="fake").resolve("ghcr.io")
    assert "timed out after 0.5 s" in _assert_one_clean_line(err)


# --- Docker config.json -----------------------------------------------------------------------


def test_docker_config_order_cred_helpers_then_creds_store_then_auths(env: Env) -> None:
    env.helper("per-registry", {"ghcr.io": {"Username": "from-credhelpers", "Secret": SECRET}})
    env.helper("store", {"ghcr.io": {"Username": "from-credsstore", "Secret": SECRET}})
    config = {
        "credHelpers": {"ghcr.io": "per-registry"},
        "credsStore": "store",
        "auths": {"ghcr.io": {"auth": _auth("from-auths", SECRET)}},
    }
    path = env.docker_config(config)
    cred = env.keychain().resolve("ghcr.io")
    assert cred.username == "from-credhelpers"
    assert cred.source == f"docker-credential-per-registry (credHelpers in {path})"

    env.db["docker-credential-per-registry"] = {}  # not found there → credsStore
    env._save_db()
    assert env.keychain().resolve("ghcr.io").username == "from-credsstore"

    env.db["docker-credential-store"] = {}  # nor there → auths
    env._save_db()
    cred = env.keychain().resolve("ghcr.io")
    assert (cred.username, cred.password, cred.source) == ("from-auths", SECRET, str(path))


def test_docker_config_missing_or_failing_helper_warns_and_continues(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.helper("broken", {"ghcr.io": {"fail": f"boom {SECRET}", "Secret": SECRET}})
    env.docker_config(
        {
            "credHelpers": {"ghcr.io": "broken"},
            "credsStore": "desktop",  # copied from a laptop; not installed here
            "auths": {"ghcr.io": {"auth": _auth("from-auths", SECRET)}},
        }
    )
    assert env.keychain().resolve("ghcr.io").username == "from-auths"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "docker-credential-broken failed for ghcr.io (exit 3: boom ***)" in w for w in warnings
    )
    assert any(
        "docker-credential-desktop (credsStore in" in w and "not on PATH" in w for w in warnings
    )


def test_docker_config_env_dir_wins_over_home(env: Env) -> None:
    env.docker_config({"auths": {"ghcr.io": {"auth": _auth("home-user", SECRET)}}})
    path = env.docker_config(
        {"auths": {"ghcr.io": {"auth": _auth("env-user", SECRET)}}}, env_dir=True
    )
    cred = env.keychain().resolve("ghcr.io")
    assert (cred.username, cred.source) == ("env-user", str(path))


def test_home_argument_overrides_environ_home(env: Env, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    _write(other / ".docker" / "config.json", {"auths": {"q.io": {"auth": _auth("o", SECRET)}}})
    assert default_keychain(environ=env.environ, home=other).resolve("q.io").username == "o"


@pytest.mark.parametrize(
    "key",
    [
        HUB_KEY,
        "https://index.docker.io/v1",
        "index.docker.io",
        "docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io/v2/",
        "http://index.docker.io/v1/",
    ],
)
@pytest.mark.parametrize("asked", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_key_forms(env: Env, key: str, asked: str) -> None:
    env.docker_config({"auths": {key: {"auth": _auth("hub-user", SECRET)}}})
    assert env.keychain().resolve(asked).username == "hub-user"


def test_docker_hub_canonical_key_beats_aliases(env: Env) -> None:
    env.docker_config(
        {
            "auths": {
                "docker.io": {"auth": _auth("alias-user", SECRET)},
                HUB_KEY: {"auth": _auth("canonical-user", SECRET)},
            }
        }
    )
    assert env.keychain().resolve("docker.io").username == "canonical-user"


@pytest.mark.parametrize(
    ("key", "registry", "matches"),
    [
        ("https://myreg.example:5000/v1/", "myreg.example:5000", True),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", True),
        ("MyReg.Example", "myreg.example", True),
        ("ghcr.io/my-org", "ghcr.io", True),  # Podman-style namespaced key, Jib accepts it
        ("127.0.0.1:5000", "127.0.0.1", False),  # the port is part of the registry
        ("127.0.0.1", "127.0.0.1:5000", False),
        ("ghcr.io.evil.example", "ghcr.io", False),
        ("https://docker.io.evil.example/v1/", "docker.io", False),
    ],
)
def test_url_form_keys_match_by_hostname(env: Env, key: str, registry: str, matches: bool) -> None:
    env.docker_config({"auths": {key: {"auth": _auth("user", SECRET)}}})
    cred = env.keychain().resolve(registry)
    assert (cred.username == "user") is matches


def test_host_key_beats_namespaced_key(env: Env) -> None:
    env.docker_config(
        {
            "auths": {
                "ghcr.io/other-org": {"auth": _auth("namespaced", SECRET)},
                "ghcr.io": {"auth": _auth("registry-wide", SECRET)},
            }
        }
    )
    assert env.keychain().resolve("ghcr.io").username == "registry-wide"


def test_auth_entry_forms(env: Env) -> None:
    nul_padded = base64.b64encode(f"nul:{SECRET}\0\0".encode()).decode()
    env.docker_config(
        {
            "auths": {
                "colon.io": {"auth": _auth("alice", "a:b:c" + SECRET)},
                "nul.io": {"auth": nul_padded},
                "fields.io": {"username": "bob", "password": SECRET},
                "azure.io": {
                    "auth": _auth("00000000-0000-0000-0000-000000000000", ""),
                    "identitytoken": TOKEN,
                },
                "regtok.io": {"registrytoken": TOKEN},
                "empty.io": {},
            }
        }
    )
    keychain = env.keychain()
    assert keychain.resolve("colon.io").password == "a:b:c" + SECRET
    assert (keychain.resolve("nul.io").username, keychain.resolve("nul.io").password) == (
        "nul",
        SECRET,
    )
    assert (keychain.resolve("fields.io").username, keychain.resolve("fields.io").password) == (
        "bob",
        SECRET,
    )
    azure = keychain.resolve("azure.io")
    assert azure.identity_token == TOKEN and azure.password is None
    assert keychain.resolve("regtok.io").registry_token == TOKEN
    assert keychain.resolve("empty.io") == ANONYMOUS


def test_go_style_case_insensitive_field_names(env: Env) -> None:
    env.docker_config({"Auths": {"ghcr.io": {"Auth": _auth("cased", SECRET)}}})
    assert env.keychain().resolve("ghcr.io").username == "cased"


@pytest.mark.parametrize("bad", ["%%%not-base64%%%", base64.b64encode(b"no-colon").decode()])
def test_bad_auth_entry_warns_and_is_skipped(
    env: Env, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    env.docker_config({"auths": {"ghcr.io": {"auth": bad}}})
    env.podman({"auths": {"ghcr.io": {"auth": _auth("podman-user", SECRET)}}})
    assert env.keychain().resolve("ghcr.io").username == "podman-user"
    assert any("auth entry for ghcr.io" in r.getMessage() for r in caplog.records)
    assert all(bad not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("text", [f'{{"auths": {{"ghcr.io": {{"auth": "{SECRET}"', "[1, 2]"])
def test_unparseable_docker_config_warns_and_is_skipped(
    env: Env, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = env.docker_config(text)
    env.podman({"auths": {"ghcr.io": {"auth": _auth("podman-user", SECRET)}}})
    assert env.keychain().resolve("ghcr.io").username == "podman-user"
    assert any(str(path) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


# --- Podman auth.json -------------------------------------------------------------------------


def test_docker_config_wins_over_podman(env: Env) -> None:
    env.docker_config({"auths": {"quay.io": {"auth": _auth("docker-user", SECRET)}}})
    env.podman({"auths": {"quay.io": {"auth": _auth("podman-user", SECRET)}}}, where="runtime")
    assert env.keychain().resolve("quay.io").username == "docker-user"


def test_podman_files_in_order(env: Env) -> None:
    home = env.podman({"auths": {"quay.io": {"auth": _auth("home", SECRET)}}})
    assert env.keychain().resolve("quay.io").source == str(home)
    runtime = env.podman({"auths": {"quay.io": {"auth": _auth("runtime", SECRET)}}}, "runtime")
    assert env.keychain().resolve("quay.io").source == str(runtime)
    custom = env.podman({"auths": {"quay.io": {"auth": _auth("custom", SECRET)}}}, "file")
    cred = env.keychain().resolve("quay.io")
    assert (cred.username, cred.password, cred.source) == ("custom", SECRET, str(custom))


def test_podman_keys_docker_hub_as_docker_io(env: Env) -> None:
    path = env.podman({"auths": {"docker.io": {"auth": _auth("hub", SECRET)}}}, "runtime")
    assert env.keychain().resolve("docker.io").source == str(path)


def test_podman_cred_helpers(env: Env) -> None:
    env.helper("podhelper", {"quay.io": {"Username": "via-helper", "Secret": SECRET}})
    env.podman({"credHelpers": {"quay.io": "podhelper"}, "credsStore": "ignored"})
    assert env.keychain().resolve("quay.io").username == "via-helper"


def test_nothing_anywhere_is_anonymous(env: Env) -> None:
    env.docker_config({"auths": {"other.io": {"auth": _auth("x", SECRET)}}})
    assert env.keychain(env_prefix="JIB_TO").resolve("ghcr.io") is ANONYMOUS


# --- laziness, caching, logging ---------------------------------------------------------------


def test_resolves_lazily_and_caches_per_registry(env: Env) -> None:
    env.helper(
        "fake",
        {
            "a.io": {"Username": "a", "Secret": SECRET},
            HUB_KEY: {"Username": "hub", "Secret": SECRET},
        },
    )
    keychain = env.keychain(cred_helper="fake")
    assert env.calls() == []
    assert keychain.resolve("a.io").username == "a"
    assert keychain.resolve("a.io").username == "a"
    assert keychain.resolve("docker.io").username == "hub"
    assert keychain.resolve("index.docker.io").username == "hub"  # same registry, cached
    assert keychain.resolve("b.io") == ANONYMOUS
    assert keychain.resolve("b.io") == ANONYMOUS
    assert [c[2] for c in env.calls()] == ["a.io", HUB_KEY, "b.io"]


def test_logs_which_source_won_without_secrets(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.environ |= {"JIB_TO_USERNAME": "ci", "JIB_TO_PASSWORD": SECRET}
    env.keychain(env_prefix="JIB_TO").resolve("ghcr.io")
    assert any(
        "JIB_TO_USERNAME/JIB_TO_PASSWORD" in r.getMessage() and "ghcr.io" in r.getMessage()
        for r in caplog.records
    )


def test_default_environ_is_the_process_environment(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIB_TO_USERNAME", "proc-user")
    monkeypatch.setenv("JIB_TO_PASSWORD", SECRET)
    assert os.environ["JIB_TO_USERNAME"] == "proc-user"
    assert default_keychain(env_prefix="JIB_TO").resolve("ghcr.io").username == "proc-user"
