"""Sealing the shared Tradovate token for Redis: AES-256-GCM, bound to its login.

Guarantees:
- ``seal`` encrypts the token, md token, user id, expiry, login and the writer's fencing
  epoch with ``GATEWAY_TOKEN_KEY`` (AES-GCM, a fresh 96-bit nonce each time). The login name
  is the associated data, so a value copied to another login's key does not open there.
- ``open`` returns a token only from a value that authenticates for this login with a key
  this replica has (the current one or one of ``GATEWAY_TOKEN_OLD_KEYS``). A wrong key, a
  changed byte, another login's value, or garbage raises ``TokenUnreadable``: nothing that
  failed authentication is ever decoded, let alone sent to Tradovate.
- Without a key nothing is shared unless ``GATEWAY_TOKEN_PLAINTEXT=true`` says so
  (``TokenKeyMissing``). Plaintext values still carry their login, checked on open; a
  replica with a key refuses a plaintext value and one without a key refuses a sealed one,
  so a deployment with mixed settings fails loudly, not silently.

Format: one version byte, then for 0x01 the key id (8 bytes, token_keys.key_id), the nonce
(12 bytes) and the ciphertext with its tag; for 0x00 the JSON payload as is.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trading_gateway.server.broker.token_source import SharedToken
from trading_gateway.server.replicas.token_errors import TokenKeyMissing, TokenUnreadable
from trading_gateway.server.replicas.token_keys import KEY_ID_BYTES, key_id, parse_key, parse_keys

if TYPE_CHECKING:
    from trading_gateway.server.config import GatewaySettings

PLAINTEXT: Final = 0x00
AES_GCM: Final = 0x01
NONCE_BYTES: Final = 12
_AAD_DOMAIN: Final = b"trading-gateway token v1\x00"
_HEADER: Final = 1 + KEY_ID_BYTES + NONCE_BYTES
KEY_SETTING: Final = "GATEWAY_TOKEN_KEY"
OLD_KEYS_SETTING: Final = "GATEWAY_TOKEN_OLD_KEYS"
PLAINTEXT_SETTING: Final = "GATEWAY_TOKEN_PLAINTEXT"


class _Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    login: str
    epoch: int
    access_token: str
    md_access_token: str | None
    user_id: int
    expires_at: dt.datetime


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(_Payload)


@dataclass(frozen=True)
class Published:
    """A token as its holder published it, with the holder's fencing epoch."""

    token: SharedToken
    epoch: int


def associated_data(login: str) -> bytes:
    """What binds a sealed value to its login (authenticated, not encrypted)."""
    return _AAD_DOMAIN + login.encode("utf-8")


class TokenSealer:
    """Seals with one key, opens with it or any old key; or, if allowed, plaintext."""

    def __init__(
        self, key: bytes | None, old_keys: Sequence[bytes] = (), *, plaintext: bool = False
    ) -> None:
        if key is None and not plaintext:
            raise TokenKeyMissing(
                f"sharing the Tradovate token between replicas needs {KEY_SETTING} (the same "
                f"on every replica), or {PLAINTEXT_SETTING}=true to store it unencrypted"
            )
        self._key = key
        self._keys = {key_id(k): AESGCM(k) for k in (*old_keys, *([key] if key else []))}
        self._key_id = key_id(key) if key is not None else None

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> TokenSealer:
        """The sealer the settings describe; ``TokenKeyMissing`` when they describe none."""
        key = settings.token_key.get_secret_value() if settings.token_key else None
        old = settings.token_old_keys.get_secret_value() if settings.token_old_keys else ""
        return cls(
            parse_key(key, KEY_SETTING) if key else None,
            parse_keys(old, OLD_KEYS_SETTING),
            plaintext=settings.token_plaintext,
        )

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    def seal(self, login: str, token: SharedToken, epoch: int) -> bytes:
        payload = _encoder.encode(
            _Payload(
                login=login,
                epoch=epoch,
                access_token=token.access_token,
                md_access_token=token.md_access_token,
                user_id=token.user_id,
                expires_at=token.expires_at,
            )
        )
        if self._key is None or self._key_id is None:
            return bytes([PLAINTEXT]) + payload
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._key_id].encrypt(nonce, payload, associated_data(login))
        return bytes([AES_GCM]) + self._key_id + nonce + sealed

    def open(self, login: str, value: bytes) -> Published:
        """The token in ``value`` if it authenticates for ``login``; else TokenUnreadable."""
        where = f"the shared token of login {login!r}"
        if not value:
            raise TokenUnreadable(f"{where} is an empty value")
        version = value[0]
        if version == PLAINTEXT:
            if self.encrypted:
                raise TokenUnreadable(
                    f"{where} is stored unencrypted, but this replica has {KEY_SETTING}: a "
                    f"replica with {PLAINTEXT_SETTING}=true wrote it; give every replica the "
                    "same key"
                )
            payload = value[1:]
        elif version == AES_GCM:
            payload = self._decrypt(login, value, where)
        else:
            raise TokenUnreadable(f"{where} has an unknown format (version byte {version})")
        return self._decode(login, payload, where)

    def _decrypt(self, login: str, value: bytes, where: str) -> bytes:
        if not self.encrypted:
            raise TokenUnreadable(
                f"{where} is encrypted, but this replica has no {KEY_SETTING}; give every "
                "replica the same key"
            )
        if len(value) < _HEADER + 16:
            raise TokenUnreadable(f"{where} is too short to be a sealed token")
        aead = self._keys.get(value[1 : 1 + KEY_ID_BYTES])
        if aead is None:
            raise TokenUnreadable(
                f"{where} was sealed with a key this replica does not have: set {KEY_SETTING} "
                f"to the writer's key, or list it in {OLD_KEYS_SETTING} while rotating"
            )
        nonce = value[1 + KEY_ID_BYTES : _HEADER]
        try:
            return aead.decrypt(nonce, value[_HEADER:], associated_data(login))
        except InvalidTag:
            raise TokenUnreadable(
                f"{where} failed authentication: it was altered, or copied from another "
                "login's key; it is not used"
            ) from None

    @staticmethod
    def _decode(login: str, payload: bytes, where: str) -> Published:
        try:
            decoded = _decoder.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise TokenUnreadable(f"{where} does not decode as a token") from None
        if decoded.login != login:
            raise TokenUnreadable(f"{where} holds the token of another login; it is not used")
        expires = decoded.expires_at
        if expires.tzinfo is None:
            raise TokenUnreadable(f"{where} has an expiry without a time zone")
        token = SharedToken(
            access_token=decoded.access_token,
            md_access_token=decoded.md_access_token,
            user_id=decoded.user_id,
            expires_at=expires,
        )
        return Published(token=token, epoch=decoded.epoch)
