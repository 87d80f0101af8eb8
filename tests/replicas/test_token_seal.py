"""Sealing the shared token: round trip, refusals, rotation, plaintext, and the settings."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from tests.replicas.tokens import key_text, new_key, sealer, token
from trading_gateway.server.cli import describe_invalid
from trading_gateway.server.config import explicit_settings
from trading_gateway.server.replicas.token_errors import TokenKeyMissing, TokenUnreadable
from trading_gateway.server.replicas.token_seal import TokenSealer


def test_a_sealed_token_opens_for_its_login_with_every_field_and_its_epoch() -> None:
    seal, shared = sealer(), token()
    value = seal.seal("alpha", shared, 7)
    assert shared.access_token.encode() not in value  # encrypted, not encoded
    assert shared.md_access_token is not None
    assert shared.md_access_token.encode() not in value
    opened = seal.open("alpha", value)
    assert opened.token == shared
    assert opened.epoch == 7


def test_two_seals_of_one_token_differ_by_their_nonce() -> None:
    seal, shared = sealer(), token()
    assert seal.seal("alpha", shared, 1) != seal.seal("alpha", shared, 1)


def test_a_wrong_key_is_refused_naming_the_settings() -> None:
    value = sealer().seal("alpha", token(), 1)
    with pytest.raises(TokenUnreadable, match=r"GATEWAY_TOKEN_KEY.*GATEWAY_TOKEN_OLD_KEYS"):
        sealer().open("alpha", value)


@pytest.mark.parametrize("position", [0, 1, 9, 21, -1])
def test_any_changed_byte_is_refused(position: int) -> None:
    seal = sealer()
    value = bytearray(seal.seal("alpha", token(), 1))
    value[position] ^= 0x01
    with pytest.raises(TokenUnreadable):
        seal.open("alpha", bytes(value))


def test_a_value_moved_to_another_login_does_not_open_there() -> None:
    seal = sealer()
    value = seal.seal("alpha", token(), 1)
    with pytest.raises(TokenUnreadable, match="another login"):
        seal.open("beta", value)


def test_truncated_and_empty_values_are_refused() -> None:
    seal = sealer()
    value = seal.seal("alpha", token(), 1)
    for broken in (b"", value[:20], b"\x07" + value[1:]):
        with pytest.raises(TokenUnreadable):
            seal.open("alpha", broken)


def test_an_old_key_still_opens_during_a_rotation_and_the_new_key_seals() -> None:
    old, new = new_key(), new_key()
    before = TokenSealer(old).seal("alpha", token(), 3)
    rotating = TokenSealer(new, [old])
    assert rotating.open("alpha", before).epoch == 3
    after = rotating.seal("alpha", token(), 4)
    assert TokenSealer(new).open("alpha", after).epoch == 4
    with pytest.raises(TokenUnreadable, match="key this replica does not have"):
        TokenSealer(old).open("alpha", after)


def test_without_a_key_nothing_is_shared_unless_plaintext_is_asked_for() -> None:
    with pytest.raises(TokenKeyMissing, match=r"GATEWAY_TOKEN_KEY.*GATEWAY_TOKEN_PLAINTEXT=true"):
        TokenSealer(None)
    with pytest.raises(TokenKeyMissing):
        TokenSealer.from_settings(explicit_settings())


def test_plaintext_round_trips_keeps_its_login_and_mixed_settings_fail_loudly() -> None:
    plain = TokenSealer(None, plaintext=True)
    assert not plain.encrypted
    shared = token()
    value = plain.seal("alpha", shared, 2)
    assert plain.open("alpha", value).token == shared
    with pytest.raises(TokenUnreadable, match="another login"):
        plain.open("beta", value)
    with pytest.raises(TokenUnreadable, match="stored unencrypted"):
        sealer().open("alpha", value)
    with pytest.raises(TokenUnreadable, match="no GATEWAY_TOKEN_KEY"):
        plain.open("alpha", sealer().seal("alpha", shared, 2))


def test_settings_build_the_sealer_with_old_keys_for_reading() -> None:
    old, new = new_key(), new_key()
    settings = explicit_settings(
        token_key=key_text(new), token_old_keys=f"{key_text(old)}, ,{key_text(new_key())}"
    )
    from_settings = TokenSealer.from_settings(settings)
    assert from_settings.open("alpha", TokenSealer(old).seal("alpha", token(), 1)).epoch == 1
    assert TokenSealer(new).open("alpha", from_settings.seal("alpha", token(), 2)).epoch == 2
    plain = TokenSealer.from_settings(explicit_settings(token_plaintext=True))
    assert not plain.encrypted


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"token_key": "not base64!"}, "GATEWAY_TOKEN_KEY is not base64"),
        ({"token_key": key_text(b"short")}, "GATEWAY_TOKEN_KEY must encode exactly 32 bytes"),
        (
            {"token_key": key_text(bytes(32)), "token_old_keys": "x" * 10},
            r"GATEWAY_TOKEN_OLD_KEYS \(entry 1\)",
        ),
        (
            {"token_key": key_text(bytes(32)), "token_plaintext": True},
            "contradict each other",
        ),
    ],
)
def test_bad_key_settings_are_refused_with_an_actionable_message(
    values: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected) as caught:
        explicit_settings(**values)
    shown = describe_invalid(caught.value)  # what `serve` prints
    assert "os.urandom(32)" in shown or "contradict" in shown
    for value in values.values():
        if isinstance(value, str):
            assert value not in shown


def test_a_url_safe_fernet_style_key_is_accepted() -> None:
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"
    text = base64.urlsafe_b64encode(raw).decode()
    assert "-" in text or "_" in text
    settings = explicit_settings(token_key=text)
    assert TokenSealer.from_settings(settings).encrypted
    assert text not in repr(settings)
