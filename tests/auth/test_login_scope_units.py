"""Keys scoped to logins: the Scope rules, the key file's ``logins`` and ``login/name``
entries, the scoping API over LoginAccounts and plain accounts, and `keys create|show`."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.support.secret_scan import register_secret
from trading_gateway.server.auth.errors import AccountNotInScope, KeyFileError
from trading_gateway.server.auth.keys import KeyRing, hash_key, make_entry, parse_keys
from trading_gateway.server.auth.principal import Principal, Scope, acting_as
from trading_gateway.server.auth.scoping import (
    check_selection,
    follows_new_accounts,
    narrow,
    visible_logins,
)
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.cli import main as gateway_main
from trading_gateway.server.logins.account import LoginAccount, split_entry
from trading_gateway.server.logins.spec import DEFAULT_LOGIN

HASH = "ab" * 32


def acct(login: str, account_id: int, name: str) -> LoginAccount:
    return LoginAccount(login, Account(id=account_id, name=name, user_id=1, active=True))


# Three logins; desk-a and desk-b both see account 7 ("SHARED").
A1, A2 = acct("desk-a", 1, "A1"), acct("desk-a", 2, "A2")
B7, B3 = acct("desk-b", 7, "SHARED"), acct("desk-b", 3, "B3")
A7 = acct("desk-a", 7, "SHARED")
C4 = acct("desk-c", 4, "C4")
EVERYONE = [A1, A2, A7, B3, B7, C4]


def test_split_entry_reads_login_name_and_login_id_and_nothing_else() -> None:
    assert split_entry("desk-a/DEMO1") == ("desk-a", "DEMO1")
    assert split_entry("desk-a/123") == ("desk-a", "123")
    assert split_entry("DEMO1") == (None, "DEMO1")
    assert split_entry("Desk/DEMO1") == (None, "Desk/DEMO1")  # not a login name
    assert split_entry("desk-a/") == (None, "desk-a/")
    assert split_entry(A1.qualified) == ("desk-a", "A1")


def test_a_login_scope_covers_every_account_of_its_logins_only() -> None:
    scope = Scope.of([], logins=["desk-a"])
    assert [a for a in EVERYONE if scope.allows(a)] == [A1, A2, A7]
    assert scope.covers_login("desk-a") and not scope.covers_login("desk-b")
    assert scope.reaches_login("desk-a") and not scope.reaches_login("desk-b")
    # An unknown account of a covered login is NOT_FOUND; of any other login, denied.
    assert scope.mentions("desk-a/NOPE") and scope.mentions("desk-a/999")
    assert not scope.mentions("desk-b/NOPE") and not scope.mentions("nosuch/NOPE")
    # A bare unknown entry could be an account of another login: denied.
    assert not scope.mentions("NOPE") and not scope.mentions("999")


def test_qualified_entries_allow_the_account_under_that_login_only() -> None:
    scope = Scope.of(["desk-b/SHARED", "desk-c/4", "A2"])
    assert [a for a in EVERYONE if scope.allows(a)] == [A2, B7, C4]  # not A7: desk-a's
    assert not scope.covers_login("desk-b")
    assert [scope.reaches_login(n) for n in ("desk-a", "desk-b", "nosuch")] == [True] * 3
    assert scope.mentions("desk-b/SHARED") and scope.mentions("desk-c/4")
    assert scope.mentions("SHARED") and scope.mentions("4")  # named, under some login
    assert not scope.mentions("desk-a/SHARED") and not scope.mentions("desk-a/4")
    assert scope.mentions("nosuch/A2")  # A2 is in scope under any login


def test_a_scope_of_qualified_entries_alone_reaches_only_their_logins() -> None:
    scope = Scope.of(["desk-b/SHARED"])
    assert [scope.reaches_login(n) for n in ("desk-a", "desk-b")] == [False, True]
    assert not Scope.of([], logins=["desk-a"]).reaches_login("desk-b")
    assert Scope.all().reaches_login("anything") and Scope.all().covers_login("anything")


def test_plain_accounts_count_as_the_default_login_unless_told_otherwise() -> None:
    plain = Account(id=5, name="P5", user_id=1, active=True)
    default_scope = Scope.of([], logins=[DEFAULT_LOGIN])
    assert default_scope.allows(plain)
    assert not default_scope.allows(plain, "desk-a")
    assert Scope.of(["desk-a/P5"]).allows(plain, "desk-a")
    assert not Scope.of(["desk-a/P5"]).allows(plain)
    # A LoginAccount's own login wins over the one passed.
    assert not default_scope.allows(A1, DEFAULT_LOGIN)


def test_narrow_and_check_selection_decide_by_login() -> None:
    with acting_as(Principal("desk-a-risk", Scope.of(["desk-b/B3"], logins=["desk-a"]))):
        assert narrow(EVERYONE) == [A1, A2, A7, B3]
        check_selection([("A1", A1), ("desk-a/SHARED", A7), ("3", B3), ("desk-a/NOPE", None)])
        with pytest.raises(AccountNotInScope) as caught:
            check_selection(
                [("A1", A1), ("desk-b/SHARED", B7), ("C4", C4), ("nosuch/X", None), ("Y", None)]
            )
        assert caught.value.denied == ["desk-b/SHARED", "C4", "nosuch/X", "Y"]
        message = str(caught.value)
        assert "'desk-a-risk'" in message and "desk-b/SHARED, C4, nosuch/X, Y" in message
        # Only the entries as written: never another login's account by its qualified name.
        assert "desk-c/C4" not in message and "A1" not in message
        # Plain accounts on a per-login path: the login comes from the caller.
        plain = [A1.account, B3.account]
        assert narrow(plain, "desk-a") == plain  # the whole login is in scope
        assert narrow(plain, "desk-b") == [B3.account]  # named as desk-b/B3
        assert narrow(plain) == []  # DEFAULT_LOGIN is not in the scope
        check_selection([("B3", B3.account)], "desk-b")
        with pytest.raises(AccountNotInScope):
            check_selection([("A1", A1.account)], "desk-c")


def test_new_accounts_are_followed_only_where_the_key_covers_the_login() -> None:
    assert follows_new_accounts("desk-a")  # auth off
    with acting_as(Principal("ops", Scope.all())):
        assert follows_new_accounts("desk-a")
    with acting_as(Principal("desk", Scope.of(["desk-b/B3"], logins=["desk-a"]))):
        assert follows_new_accounts("desk-a") and not follows_new_accounts("desk-b")
        assert visible_logins(["desk-a", "desk-b", "desk-c"]) == ["desk-a", "desk-b"]
    with acting_as(Principal("bare", Scope.of(["A1"]))):
        assert not follows_new_accounts("desk-a")
        assert visible_logins(["desk-a", "desk-b"]) == ["desk-a", "desk-b"]
    assert visible_logins(["desk-a", "desk-b"]) == ["desk-a", "desk-b"]


def test_key_files_take_logins_and_qualified_entries() -> None:
    document = {
        "keys": [
            {"name": "desk-a", "sha256": HASH, "logins": ["desk-a"]},
            {"name": "mixed", "sha256": "cd" * 32, "scope": ["desk-b/SHARED", 4, "desk-c/4"]},
            {"name": "both", "sha256": "ef" * 32, "scope": ["B3"], "logins": ["desk-a", "x_1"]},
        ]
    }
    ring = parse_keys(json.dumps(document), "keys.json")
    assert ring[0].scope == Scope(logins=frozenset({"desk-a"}))
    assert ring[0].as_json() == {"name": "desk-a", "sha256": HASH, "logins": ["desk-a"]}
    assert ring[1].scope == Scope(
        ids=frozenset({4}),
        login_ids=frozenset({("desk-c", 4)}),
        login_names=frozenset({("desk-b", "SHARED")}),
    )
    assert ring[2].scope == Scope(names=frozenset({"B3"}), logins=frozenset({"desk-a", "x_1"}))
    assert ring[2].as_json()["scope"] == ["B3"] and ring[2].logins == ("desk-a", "x_1")
    # Entries survive the round trip through as_json.
    again = parse_keys(json.dumps({"keys": [e.as_json() for e in ring]}), "again")
    assert [e.scope for e in again] == [e.scope for e in ring]


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"logins": []}, "logins must be a non-empty list"),
        ({"logins": "desk-a"}, "logins must be a non-empty list"),
        ({"logins": ["Desk-A"]}, "logins entry 'Desk-A' is not a login name"),
        ({"logins": ["desk-a/x"]}, "is not a login name"),
        ({"logins": [1]}, "logins entry 1 is not a login name"),
        ({"logins": ["a", "a"]}, "lists 'a' twice"),
        ({"scope": "*", "logins": ["a"]}, 'already covers every login; drop "logins"'),
        ({}, 'unless "logins" lists'),
        ({"scope": ["Desk/X"]}, "'Desk' is not a login name"),
        ({"scope": ["desk-a/"]}, "no account after the login"),
        ({"scope": ["desk-a/*"]}, '"logins": ["desk-a"]'),
        ({"scope": ["desk-a/1x"]}, "starts with a digit but is no id"),
        ({"scope": ["desk-a/" + "x" * 65]}, "is not an account name or id"),
        ({"scope": ["desk-a/a b"]}, "is not an account name or id"),
    ],
)
def test_bad_login_scopes_are_one_line_naming_the_key(
    fields: dict[str, object], complaint: str
) -> None:
    document = [{"name": "desk-key", "sha256": HASH, **fields}]
    with pytest.raises(KeyFileError) as caught:
        parse_keys(json.dumps(document), "keys.json")
    message = str(caught.value)
    assert complaint in message
    assert message.startswith("keys.json: keys[0] (desk-key): ")
    assert "\n" not in message


def test_keys_create_makes_login_scoped_keys(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["keys", "create", "--name", "desk-a", "--logins", "desk-a, desk-b"]
    assert gateway_main([*argv, "--scope", "desk-c/C4"]) == 0
    out = capsys.readouterr().out.splitlines()
    register_secret(out[0])
    entry = json.loads(out[-1])
    assert entry == {
        "name": "desk-a",
        "sha256": hash_key(out[0]),
        "scope": ["desk-c/C4"],
        "logins": ["desk-a", "desk-b"],
    }
    assert any("every account of logins desk-a, desk-b; accounts desk-c/C4" in x for x in out)
    principal = KeyRing(parse_keys(json.dumps([entry]), "new")).authenticate(out[0])
    assert principal is not None
    with acting_as(principal):
        assert narrow(EVERYONE) == [A1, A2, A7, B3, B7, C4]
        assert narrow([acct("desk-d", 9, "D9")]) == []

    assert gateway_main([*argv[:4], "--logins", "desk-a"]) == 0
    only = capsys.readouterr().out.splitlines()
    register_secret(only[0])
    assert json.loads(only[-1]) == {
        "name": "desk-a",
        "sha256": hash_key(only[0]),
        "logins": ["desk-a"],
    }


def test_keys_create_refuses_contradictions(capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway_main(["keys", "create", "--name", "x", "--all", "--logins", "a"]) == 2
    assert "--all already covers every account" in capsys.readouterr().err
    assert gateway_main(["keys", "create", "--name", "x", "--logins", "Bad"]) == 2
    err = capsys.readouterr().err
    assert "'Bad' is not a login name" in err and "(x)" in err
    assert gateway_main(["keys", "create", "--name", "x", "--scope", " , "]) == 2
    assert "--scope, --logins or --all" in capsys.readouterr().err


def test_keys_show_lists_each_keys_scope_without_secrets(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "tgk_" + "k" * 43
    register_secret(key)
    entries = [
        make_entry("ops", key + "1", None),
        make_entry("desk-a", key + "2", None, ["desk-a"]),
        make_entry("mixed", key + "3", ["desk-b/B3", "A1"], ["desk-c"]),
    ]
    file = tmp_path / "keys.json"
    file.write_text(json.dumps({"keys": [e.as_json() for e in entries]}))
    assert gateway_main(["keys", "show", "--file", str(file)]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines() == [
        "ops     every account",
        "desk-a  every account of logins desk-a",
        "mixed   every account of logins desk-c; accounts desk-b/B3, A1",
    ]
    assert all(e.sha256 not in shown for e in entries)
    # Without --file: the gateway's own variables.
    monkeypatch.delenv("GATEWAY_API_KEYS_FILE", raising=False)
    monkeypatch.setenv("GATEWAY_API_KEYS", json.dumps([entries[1].as_json()]))
    assert gateway_main(["keys", "show"]) == 0
    assert capsys.readouterr().out == "desk-a  every account of logins desk-a\n"
    monkeypatch.delenv("GATEWAY_API_KEYS")
    assert gateway_main(["keys", "show"]) == 2
    assert "no keys configured" in capsys.readouterr().err
    file.write_text('[{"name": "k", "sha256": "' + HASH + '", "logins": ["BAD"]}]')
    assert gateway_main(["keys", "show", "--file", str(file)]) == 2
    assert "(k): logins entry 'BAD'" in capsys.readouterr().err


def test_the_keyring_names_logins_no_configuration_has() -> None:
    ring = KeyRing(
        [
            make_entry("ops", "tgk_" + "a" * 43, None),
            make_entry("desk", "tgk_" + "b" * 43, ["z/1", "desk-b/X", "bare"], ["desk-a", "y"]),
        ]
    )
    assert ring.unknown_logins(["desk-a", "desk-b", "z"]) == [
        "API key 'desk' is scoped to logins that are not configured: y "
        "(configured: desk-a, desk-b, z); it sees no accounts of those until such a login "
        "is added"
    ]
    assert ring.unknown_logins(["desk-a", "desk-b", "y", "z"]) == []
    assert ring.unknown_logins([]) == [
        "API key 'desk' is scoped to logins that are not configured: desk-a, desk-b, y, z "
        "(configured: none); it sees no accounts of those until such a login is added"
    ]
