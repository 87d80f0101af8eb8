"""The keys that seal the shared Tradovate token: parsing and naming them.

A key is 32 random bytes written in base64 (standard or URL-safe, so a Fernet key works
too). ``GATEWAY_TOKEN_KEY`` is the one that seals; ``GATEWAY_TOKEN_OLD_KEYS`` (a comma
separated list) are accepted for opening only, while a rotation is rolled out. Each sealed
value names its key by a short id (a hash of the key, not the key), so a reader that lacks
that key says so instead of guessing. No key material reaches a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

KEY_BYTES: Final = 32
KEY_ID_BYTES: Final = 8
_ID_DOMAIN: Final = b"trading-gateway token key id\x00"
MAKE_ONE: Final = (
    'make one with: python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
)


def parse_key(text: str, setting: str) -> bytes:
    """The 32 bytes ``text`` (base64) encodes; ValueError naming ``setting`` if it is not one."""
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        if "-" in cleaned or "_" in cleaned:
            raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        else:
            raw = base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(f"{setting} is not base64; {MAKE_ONE}") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"{setting} must encode exactly {KEY_BYTES} bytes, this one encodes {len(raw)}; "
            f"{MAKE_ONE}"
        )
    return raw


def parse_keys(text: str, setting: str) -> list[bytes]:
    """A comma-separated list of keys (empty entries skipped); ValueError naming ``setting``."""
    keys = []
    for position, part in enumerate(text.split(","), start=1):
        if part.strip():
            keys.append(parse_key(part, f"{setting} (entry {position})"))
    return keys


def key_id(key: bytes) -> bytes:
    """A short public name for ``key``: which key sealed a value, without revealing it."""
    return hashlib.sha256(_ID_DOMAIN + key).digest()[:KEY_ID_BYTES]
