"""WWW-Authenticate parsing and token scopes, against what distribution 2.8 really sends."""

from __future__ import annotations

import pytest

from jib.image.reference import Reference
from jib.registry.challenge import Challenge, Scope, merge_scopes, parse_challenges, pick

REALM = 'Bearer realm="http://127.0.0.1:5199/token",service="test-registry"'


def _one(header: str) -> Challenge:
    challenges = parse_challenges([header])
    assert len(challenges) == 1, challenges
    return challenges[0]


# --- the 2.8 challenges, verbatim from oci.md §3.1 ------------------------------------------


def test_ping_challenge_has_realm_and_service_but_no_scope() -> None:
    challenge = _one(REALM)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "http://127.0.0.1:5199/token"
    assert challenge.service == "test-registry"
    assert challenge.scopes == ()
    assert challenge.error is None
    assert challenge.token68 is None


def test_push_challenge_scope() -> None:
    challenge = _one(REALM + ',scope="repository:alice/app:pull,push"')
    assert challenge.scopes == ("repository:alice/app:pull,push",)
    assert Scope.parse(challenge.scopes[0]) == Scope("repository", "alice/app", ("pull", "push"))


def test_mount_challenge_holds_two_space_separated_scopes() -> None:
    header = REALM + ',scope="repository:alice/app:pull,push repository:shared/base:pull"'
    challenge = _one(header)
    assert challenge.scopes == ("repository:alice/app:pull,push", "repository:shared/base:pull")
    assert [str(Scope.parse(s)) for s in challenge.scopes] == list(challenge.scopes)


@pytest.mark.parametrize(
    ("suffix", "scope"),
    [
        (',scope="repository:alice/app:delete"', Scope("repository", "alice/app", ("delete",))),
        (',scope="registry:catalog:*"', Scope("registry", "catalog", ("*",))),
    ],
)
def test_delete_and_catalog_scopes(suffix: str, scope: Scope) -> None:
    challenge = _one(REALM + suffix)
    assert [Scope.parse(s) for s in challenge.scopes] == [scope]


@pytest.mark.parametrize("error", ["invalid_token", "insufficient_scope"])
def test_error_param(error: str) -> None:
    header = REALM + f',scope="repository:alice/app:pull,push",error="{error}"'
    challenge = _one(header)
    assert challenge.error == error
    assert challenge.scopes == ("repository:alice/app:pull,push",)


def test_htpasswd_basic_challenge() -> None:
    challenge = _one('Basic realm="test-realm"')
    assert challenge == Challenge("basic", {"realm": "test-realm"})
    assert challenge.service is None


# --- RFC 7235 syntax --------------------------------------------------------------------------


def test_scheme_and_param_names_are_case_insensitive_values_are_not() -> None:
    challenge = _one('BEARER Realm="https://Auth.Example/Token", SERVICE=Registry.Example')
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://Auth.Example/Token",
        "service": "Registry.Example",
    }


def test_bare_values_whitespace_around_equals_and_spaces_after_commas() -> None:
    # Unquoted values with ':' and '/' are not RFC tokens, but registries send them.
    header = 'Bearer realm = "https://a/t" ,  service=reg.example ,realm2=https://b/t?x=1 ,'
    challenge = _one(header + "scope=x:y:pull")
    assert challenge.realm == "https://a/t"
    assert challenge.service == "reg.example"
    assert challenge.scopes == ("x:y:pull",)
    assert challenge.params["realm2"] == "https://b/t?x=1"


def test_quoted_string_escapes_and_embedded_commas() -> None:
    challenge = _one(r'Basic realm="say \"hi\", then \\ go", charset="UTF-8"')
    assert challenge.realm == 'say "hi", then \\ go'
    assert challenge.params["charset"] == "UTF-8"


def test_several_challenges_in_one_header_value() -> None:
    challenges = parse_challenges(['Bearer realm="a",service="b", Basic realm="c"'])
    assert challenges == [
        Challenge("bearer", {"realm": "a", "service": "b"}),
        Challenge("basic", {"realm": "c"}),
    ]


def test_bare_scheme_then_another_challenge() -> None:
    challenges = parse_challenges(['Negotiate, Basic realm="x"'])
    assert [c.scheme for c in challenges] == ["negotiate", "basic"]
    assert challenges[1].realm == "x"


def test_token68_is_tolerated() -> None:
    challenges = parse_challenges(['Negotiate YIIC+g/Ab==, Basic realm="x"'])
    assert challenges[0] == Challenge("negotiate", {}, "YIIC+g/Ab==")
    assert challenges[1].realm == "x"


def test_several_headers_keep_their_order() -> None:
    challenges = parse_challenges(["Negotiate", 'Basic realm="r"', REALM])
    assert [c.scheme for c in challenges] == ["negotiate", "basic", "bearer"]


def test_duplicate_param_keeps_the_first() -> None:
    assert _one('Basic realm="first", realm="second"').realm == "first"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        ",,, ,",
        'realm="no scheme"',
        '"just a string"',
        '="x"',
        "(((",
        "Bearer realm=",
        'Bearer realm="unterminated',
    ],
)
def test_garbage_never_raises_and_yields_no_usable_realm(header: str) -> None:
    challenges = parse_challenges([header])
    assert all(c.realm is None for c in challenges)


def test_garbage_next_to_a_good_challenge_does_not_hide_it() -> None:
    challenges = parse_challenges(['"junk", Basic realm="ok"', "\x00\x01", 'Bearer realm="b"'])
    assert pick(challenges) == Challenge("bearer", {"realm": "b"})
    assert any(c.realm == "ok" for c in challenges)


def test_non_string_header_values_are_skipped() -> None:
    assert parse_challenges([None, b"Basic realm=x", 'Basic realm="y"']) == [  # type: ignore[list-item]
        Challenge("basic", {"realm": "y"})
    ]


def test_challenges_are_immutable_and_hashable() -> None:
    challenge = _one(REALM)
    with pytest.raises(TypeError):
        challenge.params["realm"] = "evil"  # type: ignore[index]
    assert hash(challenge) == hash(_one(REALM))
    assert Challenge("Basic", {"Realm": "x"}) == Challenge("basic", {"realm": "x"})


# --- pick -------------------------------------------------------------------------------------


def test_pick_prefers_bearer_then_basic() -> None:
    negotiate, basic, bearer = parse_challenges(['Negotiate, Basic realm="x"', REALM])
    assert pick([negotiate, basic, bearer]) is bearer
    assert pick([negotiate, basic]) is basic
    assert pick([negotiate]) is None
    assert pick([]) is None


# --- scopes -----------------------------------------------------------------------------------


def test_scope_grammar_example_with_host_port_in_the_name() -> None:
    scope = Scope.parse("repository:localhost:5000/foo/bar:push,pull")
    assert scope == Scope("repository", "localhost:5000/foo/bar", ("push", "pull"))
    assert str(scope) == "repository:localhost:5000/foo/bar:push,pull"


def test_scope_with_resource_class() -> None:
    scope = Scope.parse("repository(plugin):sample/plugin:pull")
    assert (scope.type, scope.name, scope.actions) == (
        "repository(plugin)",
        "sample/plugin",
        ("pull",),
    )


@pytest.mark.parametrize(
    "text",
    ["", "repository", "repository:name", "repository:name:", ":name:pull", "repository::pull"],
)
def test_malformed_scope_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a scope"):
        Scope.parse(text)


def test_pull_and_push_helpers() -> None:
    assert str(Scope.pull("alice/app")) == "repository:alice/app:pull"
    assert str(Scope.push("alice/app")) == "repository:alice/app:push,pull"


def test_scope_names_the_repository_never_the_registry() -> None:
    # repository:127.0.0.1:5000/app:pull is not a thing: the token server knows its registry.
    ref = Reference.parse("127.0.0.1:5000/app:1.0")
    assert str(Scope.pull(ref)) == "repository:app:pull"
    assert str(Scope.push(ref)) == "repository:app:push,pull"
    hub = Reference.parse("python:3.12-slim")
    assert str(Scope.pull(hub)) == "repository:library/python:pull"


def test_merge_scopes_unions_actions_per_resource_in_order() -> None:
    merged = merge_scopes(
        [
            Scope.push("alice/app"),
            Scope.pull("shared/base"),
            Scope.pull("alice/app"),
            Scope("repository", "alice/app", ("delete",)),
            Scope.parse("registry:catalog:*"),
        ]
    )
    assert [str(s) for s in merged] == [
        "repository:alice/app:push,pull,delete",
        "repository:shared/base:pull",
        "registry:catalog:*",
    ]
    assert merge_scopes([]) == ()
