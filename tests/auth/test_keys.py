"""Keys, hashes, the key file, scopes, and `trading-gateway keys`."""

from __future__ import annotations

import io
import json
import pathlib

import pytest

from tests.support.secret_scan import register_secret
from trading_gateway.server.auth.errors import KeyFileError
from trading_gateway.server.auth.keys import (
    KEY_PREFIX,
    KeyRing,
    generate_key,
    hash_key,
    load_keyring,
    make_entry,
    parse_keys,
)
from trading_gateway.server.auth.principal import Principal, Scope, acting_as, current_scope
from trading_gateway.server.auth.scoping import check_selection, narrow
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.cli import main as gateway_main

HASH = "ab" * 32


def account(account_id: int, name: str) -> Account:
    return Account(id=account_id, name=name, user_id=1, active=True)


def test_generated_keys_are_random_prefixed_and_stored_only_as_sha256() -> None:
    first, second = generate_key(), generate_key()
    register_secret(first, second)
    assert first != second
    assert first.startswith(KEY_PREFIX) and len(first) == len(KEY_PREFIX) + 43
    assert hash_key(first) == hash_key(first) != hash_key(second)
    entry = make_entry("svc", first, ["DEMO1"])
    assert entry.sha256 == hash_key(first)
    assert first not in json.dumps(entry.as_json())
    assert first not in repr(entry)


def test_the_keyring_finds_the_right_key_and_nothing_else() -> None:
    keys = [generate_key() for _ in range(3)]
    register_secret(*keys)
    ring = KeyRing([make_entry("a", keys[0], None), make_entry("b", keys[1], ["DEMO1", "42"])])
    assert ring.authenticate(keys[0]) == Principal("a", Scope.all())
    found = ring.authenticate(keys[1])
    assert found is not None and found.name == "b"
    assert found.scope == Scope(ids=frozenset({42}), names=frozenset({"DEMO1"}))
    assert ring.authenticate(keys[2]) is None
    assert ring.authenticate("") is None
    assert ring.authenticate("x" * 10_000) is None
    assert ring.authenticate(hash_key(keys[0])) is None  # the hash is not the key


def test_key_files_parse_both_shapes_and_ints_in_scopes(tmp_path: pathlib.Path) -> None:
    document = {
        "keys": [
            {"name": "ops", "sha256": HASH.upper(), "scope": "*"},
            {"name": "risk", "sha256": "cd" * 32, "scope": ["DEMO1", 456], "comment": "team"},
        ]
    }
    file = tmp_path / "keys.json"
    file.write_text(json.dumps(document))
    ring = load_keyring(
        str(file),
        json.dumps([{"name": "inline", "sha256": "ef" * 32, "scope": ["7"]}]),
    )
    assert ring.names == ["ops", "risk", "inline"]
    assert ring.entries[0].sha256 == HASH  # normalised to lower case
    assert ring.entries[1].scope == Scope(ids=frozenset({456}), names=frozenset({"DEMO1"}))
    assert not load_keyring(None, None)


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ("not json", "not valid JSON"),
        ('{"keys": {}}', "expected"),
        ('{"keys": [], "extra": 1}', "nothing else"),
        ('[{"name": "a", "key": "tgk_plain", "scope": "*"}]', "plain key"),
        ('[{"name": "a", "sha256": "zz", "scope": "*"}]', "64 hex digits"),
        ('[{"name": "", "sha256": "' + HASH + '", "scope": "*"}]', "name must be"),
        ('[{"name": "a", "sha256": "' + HASH + '", "scope": []}]', "non-empty list"),
        ('[{"name": "a", "sha256": "' + HASH + '", "scope": "DEMO1"}]', "non-empty list"),
        ('[{"name": "a", "sha256": "' + HASH + '", "scope": ["*"]}]', 'use "scope": "*"'),
        ('[{"name": "a", "sha256": "' + HASH + '", "scope": ["1abc"]}]', "no id"),
        ('[{"name": "a", "sha256": "' + HASH + '", "scope": ["a b"]}]', "not an account"),
        ('[{"name": "a", "sha256": "' + HASH + '", "scope": "*", "x": 1}]', "unknown fields"),
    ],
)
def test_bad_key_files_are_refused_with_the_reason(document: str, complaint: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_keys(document, "keys.json")
    assert complaint in str(caught.value)
    assert "tgk_plain" not in str(caught.value)


def test_duplicates_missing_files_and_empty_configurations_are_refused(
    tmp_path: pathlib.Path,
) -> None:
    entry = {"name": "a", "sha256": HASH, "scope": "*"}
    with pytest.raises(KeyFileError, match="more than once"):
        load_keyring(None, json.dumps([entry, {**entry, "sha256": "cd" * 32}]))
    with pytest.raises(KeyFileError, match="same hash"):
        load_keyring(None, json.dumps([entry, {**entry, "name": "b"}]))
    with pytest.raises(KeyFileError, match="cannot read"):
        load_keyring(str(tmp_path / "missing.json"), None)
    with pytest.raises(KeyFileError, match="no keys"):
        load_keyring(None, '{"keys": []}')


def test_scopes_match_names_and_ids_and_narrow_only_under_a_principal() -> None:
    accounts = [account(1, "DEMO1"), account(2, "DEMO2"), account(3, "DEMO3")]
    scope = Scope.of(["DEMO1", "2"])
    assert [scope.allows(a) for a in accounts] == [True, True, False]
    assert scope.mentions("DEMO1") and scope.mentions("2") and not scope.mentions("1")
    assert narrow(accounts) == accounts  # no principal: auth off
    assert current_scope() is None
    with acting_as(Principal("risk", scope)):
        assert narrow(accounts) == accounts[:2]
        check_selection([("1", accounts[0]), ("DEMO2", accounts[1])])
        with pytest.raises(Exception) as caught:
            check_selection([("DEMO3", accounts[2]), ("NOPE", None), ("DEMO1", accounts[0])])
        assert "DEMO3, NOPE" in str(caught.value) and "'risk'" in str(caught.value)
    with acting_as(Principal("ops", Scope.all())):
        check_selection([("NOPE", None)])  # every account: unknown ones are NOT_FOUND later
        assert narrow(accounts) == accounts


def test_keys_create_prints_the_key_once_and_an_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert gateway_main(["keys", "create", "--name", "risk-service", "--scope", "DEMO1, 42"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0]
    register_secret(key)
    assert key.startswith(KEY_PREFIX)
    entry = json.loads(out[-1])
    assert entry == {"name": "risk-service", "sha256": hash_key(key), "scope": ["DEMO1", "42"]}
    assert sum(key in line for line in out) == 1
    ring = parse_keys(json.dumps({"keys": [entry]}), "new")
    principal = KeyRing(ring).authenticate(key)
    assert principal is not None and principal.scope.mentions("42")

    assert gateway_main(["keys", "create", "--name", "ops", "--all"]) == 0
    all_out = capsys.readouterr().out.splitlines()
    register_secret(all_out[0])
    assert json.loads(all_out[-1])["scope"] == "*"


def test_keys_create_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway_main(["keys", "create", "--name", "x"]) == 2  # no --scope, --logins, --all
    assert "--scope, --logins or --all" in capsys.readouterr().err
    assert gateway_main(["keys", "create", "--name", "bad name", "--all"]) == 2
    assert "name must be" in capsys.readouterr().err


def test_keys_hash_reads_the_key_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key()
    register_secret(key)
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert gateway_main(["keys", "hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_key(key)
