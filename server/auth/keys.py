"""API keys: generation, hashing, the key file format, and checking a presented key.

Only SHA-256 hashes of keys are configured (keys are 256-bit random tokens, so a fast
hash is enough; nothing to salt or stretch). The key file is JSON::

    {"keys": [
      {"name": "risk-service", "sha256": "<64 hex digits>", "scope": ["DEMO123", "456"]},
      {"name": "desk-a-risk",  "sha256": "<64 hex digits>", "logins": ["desk-a"]},
      {"name": "desk-b-one",   "sha256": "<64 hex digits>", "scope": ["desk-b/DEMO7"]},
      {"name": "ops-console",  "sha256": "<64 hex digits>", "scope": "*"}
    ]}

A key sees the union of: every account of its ``logins``, and its ``scope`` entries
(a bare name or id under any login, ``login/name`` or ``login/id`` under that login only).

It is read from ``GATEWAY_API_KEYS_FILE`` (a path) and/or ``GATEWAY_API_KEYS`` (the same
JSON inline). A presented key is hashed and compared with every entry in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pathlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from trading_gateway.server.auth.errors import KeyFileError
from trading_gateway.server.auth.principal import ALL, Principal, Scope
from trading_gateway.server.logins.account import split_entry
from trading_gateway.server.logins.spec import NAME_PATTERN as LOGIN_NAME

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "tgk_"
KEY_BYTES: Final = 32
MAX_KEY_LENGTH: Final = 256
MAX_SCOPE_ENTRY: Final = 64
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}")


def generate_key() -> str:
    """A new random API key: ``tgk_`` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key, as stored in the key file."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    name: str
    sha256: str
    scope: Scope
    scope_text: tuple[str, ...] | None  # None means every account
    logins: tuple[str, ...] = ()  # every account of these logins

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.scope)

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "sha256": self.sha256}
        if self.scope_text is None:
            entry["scope"] = ALL
        elif self.scope_text:
            entry["scope"] = list(self.scope_text)
        if self.logins:
            entry["logins"] = list(self.logins)
        return entry


def make_entry(
    name: str, key: str, scope: Sequence[str] | None, logins: Sequence[str] = ()
) -> KeyEntry:
    """The key file entry for ``key``: scope None (and no logins) is every account;
    otherwise the accounts in ``scope`` plus every account of ``logins``."""
    raw: dict[str, Any] = {"name": name, "sha256": hash_key(key)}
    if scope is None and not logins:
        raw["scope"] = ALL
    elif scope:
        raw["scope"] = list(scope)
    if logins:
        raw["logins"] = list(logins)
    return _entry(raw, "new key")


class KeyRing:
    """The configured keys; ``authenticate`` maps a presented key to its principal."""

    def __init__(self, entries: Sequence[KeyEntry]) -> None:
        self.entries = tuple(entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def unknown_logins(self, configured: Iterable[str]) -> list[str]:
        """One warning per key whose scope names logins not in ``configured`` (a typo, or a
        login not added yet): the key sees no accounts of those logins until one is."""
        known = set(configured)
        warnings: list[str] = []
        for entry in self.entries:
            named = set(entry.logins)
            named.update(login for login, _ in entry.scope.login_ids)
            named.update(login for login, _ in entry.scope.login_names)
            missing = sorted(named - known)
            if missing:
                warnings.append(
                    f"API key {entry.name!r} is scoped to logins that are not configured: "
                    f"{', '.join(missing)} (configured: {', '.join(sorted(known)) or 'none'}); "
                    "it sees no accounts of those until such a login is added"
                )
        return warnings

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for ``presented``, or None. Looks at every entry every time."""
        if not presented or len(presented) > MAX_KEY_LENGTH:
            return None
        digest = hash_key(presented).encode("ascii")
        found: KeyEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.sha256.encode("ascii")):
                found = entry
        return found.principal if found is not None else None


# ---------------------------------------------------------------- parsing and loading
def parse_keys(text: str, source: str) -> list[KeyEntry]:
    """Entries from key file JSON; KeyFileError names ``source`` and the bad entry."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{source}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if isinstance(document, dict):
        if set(document) - {"keys"}:
            raise KeyFileError(f'{source}: expected {{"keys": [...]}} and nothing else')
        document = document.get("keys")
    if not isinstance(document, list):
        raise KeyFileError(f'{source}: expected {{"keys": [...]}} or a JSON list of entries')
    return [_entry(raw, f"{source}: keys[{i}]") for i, raw in enumerate(document)]


def _entry(raw: Any, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise KeyFileError(f"{where}: each entry is an object with name, sha256 and scope")
    if "key" in raw or "api_key" in raw:
        raise KeyFileError(
            f"{where}: holds a plain key; store only its sha256 (see `trading-gateway keys hash`)"
        )
    unknown = set(raw) - {"name", "sha256", "scope", "logins", "comment"}
    if unknown:
        raise KeyFileError(f"{where}: unknown fields {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeyFileError(
            f"{where}: name must be 1-64 characters (letters, digits, . _ : @ / -), "
            "starting with a letter or digit"
        )
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
        raise KeyFileError(f"{where} ({name}): sha256 must be 64 hex digits")
    scope, scope_text, logins = _scope(raw.get("scope"), raw.get("logins"), f"{where} ({name})")
    return KeyEntry(
        name=name, sha256=digest.lower(), scope=scope, scope_text=scope_text, logins=logins
    )


def _scope(
    value: Any, logins_value: Any, where: str
) -> tuple[Scope, tuple[str, ...] | None, tuple[str, ...]]:
    """(scope, its account entries or None for every account, its whole logins)."""
    if value == ALL:
        if logins_value is not None:
            raise KeyFileError(
                f'{where}: "scope": "*" already covers every login; drop "logins", or list '
                'the accounts in scope instead of "*"'
            )
        return Scope.all(), None, ()
    logins = _logins(logins_value, where)
    if value is None and logins:
        return Scope.of((), logins), (), logins
    if not isinstance(value, list) or not value:
        raise KeyFileError(
            f'{where}: scope must be "*" (every account) or a non-empty list of account '
            'names or ids ("DEMO123", "456", "desk-a/DEMO123"), unless "logins" lists '
            "the logins whose accounts the key sees"
        )
    entries = [_scope_entry(item, where) for item in value]
    return Scope.of(entries, logins), tuple(entries), logins


def _logins(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise KeyFileError(
            f'{where}: logins must be a non-empty list of login names (e.g. ["desk-a"])'
        )
    logins: list[str] = []
    for item in value:
        if not isinstance(item, str) or not LOGIN_NAME.fullmatch(item):
            raise KeyFileError(
                f"{where}: logins entry {item!r} is not a login name (1-32 characters: "
                "a-z, 0-9, _ and -, starting with a letter or digit)"
            )
        if item in logins:
            raise KeyFileError(f"{where}: logins lists {item!r} twice")
        logins.append(item)
    return tuple(logins)


def _scope_entry(item: Any, where: str) -> str:
    """One scope entry, checked: an account name or id, bare or as login/name, login/id."""
    text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
    if (
        not isinstance(text, str)
        or not text
        or not text.isprintable()
        or any(ch.isspace() for ch in text)
    ):
        raise KeyFileError(f"{where}: scope entry {item!r} is not an account name or id")
    if text == ALL:
        raise KeyFileError(f'{where}: use "scope": "*" (not a list) for every account')
    login, account = split_entry(text)
    if login is None and "/" in text:
        before = text.partition("/")[0]
        problem = (
            "no account after the login"
            if LOGIN_NAME.fullmatch(before)
            else f"{before!r} is not a login name (1-32 characters: a-z, 0-9, _ and -)"
        )
        raise KeyFileError(
            f"{where}: scope entry {text!r}: {problem}; write login/name or login/id"
        )
    if len(account) > MAX_SCOPE_ENTRY:
        raise KeyFileError(f"{where}: scope entry {text!r} is not an account name or id")
    if account == ALL:
        raise KeyFileError(
            f"{where}: scope entry {text!r}: for every account of {login!r} write "
            f'"logins": ["{login}"]'
        )
    if account[0].isdigit() and not (account.isascii() and account.isdigit()):
        raise KeyFileError(f"{where}: scope entry {text!r} starts with a digit but is no id")
    return text


def load_keyring(file: str | None, inline: str | None) -> KeyRing:
    """Keys from a file and/or inline JSON; names and hashes must be unique across both."""
    entries: list[KeyEntry] = []
    # Every message starts with the environment variable(s) to fix.
    sources = " and ".join(
        name
        for name, given in (("GATEWAY_API_KEYS_FILE", file), ("GATEWAY_API_KEYS", inline))
        if given
    )
    if file:
        path = pathlib.Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileError(
                f"GATEWAY_API_KEYS_FILE={file}: cannot read the API key file: {exc.strerror}"
            ) from None
        entries += parse_keys(text, f"GATEWAY_API_KEYS_FILE={file}")
    if inline:
        entries += parse_keys(inline, "GATEWAY_API_KEYS")
    names: set[str] = set()
    hashes: set[str] = set()
    for entry in entries:
        if entry.name in names:
            raise KeyFileError(
                f"{sources}: API key name {entry.name!r} is configured more than once"
            )
        if entry.sha256 in hashes:
            raise KeyFileError(
                f"{sources}: API key {entry.name!r} has the same hash as another key"
            )
        names.add(entry.name)
        hashes.add(entry.sha256)
    if (file or inline) and not entries:
        raise KeyFileError(f"{sources}: the API key configuration holds no keys")
    return KeyRing(entries)
