"""One ``[[login]]`` table of the logins file, checked: its keys, their types, what is
missing, and where its endpoints and secrets come from.

A value missing from a ``[[login]]`` table is taken from the file's ``[defaults]``
table, then from the gateway's settings where one applies (``TRADOVATE_ENV``,
``TRADOVATE_URL``, ``TRADOVATE_WS_URL``, ``TRADOVATE_MD_URL``), then from Tradovate's own
(its REST URL for the login's environment, its market-data host). The socket URL comes
with the REST URL: a ``url`` set without ``ws_url`` derives the socket from that ``url``.
Secrets are only ever named here (``SecretSource``); ``LoginEntry.resolved`` reads them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, cast

from trading_gateway.server.broker.urls import MD_WS_URL, REST_URLS
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.logins.problem import FileProblem
from trading_gateway.server.logins.secret_source import SecretSource
from trading_gateway.server.logins.spec import NAME_PATTERN, LoginSpec
from trading_gateway.server.setting_error import masked_url

# Every key a [[login]] table may hold.
LOGIN_KEYS: Final = (
    "name",
    "username",
    "password_env",
    "password_file",
    "secret_env",
    "secret_file",
    "app_id",
    "app_version",
    "cid",
    "device_id",
    "environment",
    "url",
    "ws_url",
    "md_url",
)
# Keys that are one user's own, so never in [defaults].
OWN_KEYS: Final = frozenset({"name", "username", "password_env", "password_file"})
DEFAULT_KEYS: Final = tuple(key for key in LOGIN_KEYS if key not in OWN_KEYS)
# Keys that would hold a secret itself, and which secret (refused: the file names places).
LITERAL_SECRETS: Final = {"password": "password", "secret": "secret", "sec": "secret"}
DEFAULT_APP_VERSION: Final = "1.0"
URL_SCHEMES: Final = {
    "url": ("http://", "https://"),
    "ws_url": ("ws://", "wss://"),
    "md_url": ("ws://", "wss://"),
}
_TOML_TYPES: Final = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}

Value = str | int
Table = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class LoginEntry:
    """A checked ``[[login]]``: its spec without secrets, and where its secrets are."""

    index: int
    spec: LoginSpec
    password_from: SecretSource
    secret_from: SecretSource

    @property
    def label(self) -> str:
        return login_label(self.spec.name, self.index)

    def resolved(self, environ: Mapping[str, str], base: Path) -> LoginSpec:
        """The spec with its password and secret read (a FileProblem if one cannot be)."""
        return replace(
            self.spec,
            password=self.password_from.read(environ, base, self.label),
            secret=self.secret_from.read(environ, base, self.label),
        )


def login_label(name: str, index: int) -> str:
    return f'login "{name}" (entry {index})'


def entry_label(table: Table, index: int) -> str:
    """How messages name a [[login]]: by its name when it has a valid one."""
    name = table.get("name")
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        return login_label(name, index)
    return f"entry {index}"


def check_defaults(table: object) -> dict[str, Value]:
    if not isinstance(table, dict):
        raise FileProblem(
            f"defaults is {type_name(table)}, not a table",
            "write it as a [defaults] table (README, Many logins)",
        )
    return check_table(cast(Table, table), "[defaults]", DEFAULT_KEYS)


def check_table(table: Table, label: str, allowed: Sequence[str]) -> dict[str, Value]:
    """The table's values, each of a known key and the right type."""
    values: dict[str, Value] = {}
    for key, value in table.items():
        if key in LITERAL_SECRETS:
            what = LITERAL_SECRETS[key]
            raise FileProblem(
                f"{label}: {key} holds a {what} itself, and the file must never hold secrets",
                f'name where it is kept instead: {what}_env = "VARIABLE" or {what}_file = "PATH"',
            )
        if key not in allowed:
            if key in LOGIN_KEYS:
                raise FileProblem(
                    f"{label}: {key} is one login's own, not a default",
                    "move it into each [[login]] table",
                )
            raise FileProblem(
                f"{label}: unknown key {json.dumps(key)}{nearest(key, allowed)}",
                "fix or remove it (README, Many logins, lists the keys)",
            )
        values[key] = _checked_value(key, value, label)
    return values


def parse_entry(
    table: object, index: int, defaults: Mapping[str, Value], settings: GatewaySettings
) -> LoginEntry:
    """One [[login]] table, checked and completed from ``defaults`` and ``settings``."""
    if not isinstance(table, dict):
        raise FileProblem(
            f"entry {index} of login is {type_name(table)}, not a table",
            "write each login as a [[login]] table",
        )
    label = entry_label(table, index)
    own = check_table(cast(Table, table), label, LOGIN_KEYS)
    merged = {**defaults, **own}
    name = _required(merged, "name", label, "each [[login]] needs its own")
    if not NAME_PATTERN.fullmatch(name):
        raise FileProblem(
            f"{label}: name {json.dumps(name)} is not a login name",
            "use 1 to 32 lowercase letters, digits, - or _, starting with a letter or digit",
        )
    environment = cast(Literal["demo", "live"], merged.get("environment", settings.tradovate_env))
    rest_url, ws_url, md_ws_url = _endpoints(own, defaults, settings, environment)
    cid = merged.get("cid")
    if cid is None:
        raise FileProblem(f"{label}: no cid", "add cid = ... to the entry or to [defaults]")
    device_id = merged.get("device_id")
    spec = LoginSpec(
        name=name,
        env=environment,
        rest_url=rest_url,
        ws_url=ws_url,
        md_ws_url=md_ws_url,
        username=_required(merged, "username", label, "each [[login]] needs its own"),
        password="",
        app_id=_required(merged, "app_id", label, "add it to the entry or to [defaults]"),
        app_version=str(merged.get("app_version", DEFAULT_APP_VERSION)),
        cid=int(cid) if isinstance(cid, str) and cid.isdigit() else cid,
        secret="",
        device_id=None if device_id is None else str(device_id),
    )
    return LoginEntry(
        index=index,
        spec=spec,
        password_from=_source("password", own, {}, label),
        secret_from=_source("secret", own, defaults, label),
    )


def _required(values: Mapping[str, Value], key: str, label: str, where: str) -> str:
    value = values.get(key)
    if value is None:
        raise FileProblem(f"{label}: no {key}", f'add {key} = "..." ({where})')
    return str(value)


def _source(
    what: str, own: Mapping[str, Value], defaults: Mapping[str, Value], label: str
) -> SecretSource:
    """Where the entry's ``what`` is kept: its own keys first, then [defaults]."""
    for values in (own, defaults):
        env, file = values.get(f"{what}_env"), values.get(f"{what}_file")
        if env is not None and file is not None:
            where = label if values is own else "[defaults]"
            raise FileProblem(
                f"{where}: both {what}_env and {what}_file are set", "keep one of them"
            )
        if env is not None:
            return SecretSource(what, "env", str(env))
        if file is not None:
            return SecretSource(what, "file", str(file))
    also = "" if what == "password" else " (here or in [defaults])"
    raise FileProblem(
        f"{label}: no {what}_env or {what}_file{also}",
        f'name where the {what} is kept: {what}_env = "VARIABLE" or {what}_file = "PATH"',
    )


def _endpoints(
    own: Mapping[str, Value],
    defaults: Mapping[str, Value],
    settings: GatewaySettings,
    environment: Literal["demo", "live"],
) -> tuple[str, str, str]:
    """REST, user-sync socket and market-data socket URLs ('' socket: derived from REST)."""
    gateway = {
        "url": settings.tradovate_url,
        "ws_url": settings.tradovate_ws_url,
        "md_url": settings.tradovate_md_url,
    }
    levels = [own, defaults, {key: value for key, value in gateway.items() if value}]
    with_url = next((level for level in levels if level.get("url")), None)
    if with_url is not None:
        rest_url = str(with_url["url"]).rstrip("/")
        ws_url = str(with_url.get("ws_url", ""))
    else:
        rest_url = REST_URLS[environment]
        ws_url = next((str(level["ws_url"]) for level in levels if level.get("ws_url")), "")
    md_url = next((str(level["md_url"]) for level in levels if level.get("md_url")), MD_WS_URL)
    return rest_url, ws_url, md_url


def _checked_value(key: str, value: object, label: str) -> Value:
    if key == "cid":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str):
            raise FileProblem(
                f"{label}: cid is {type_name(value)}", "write it as a number: cid = 1234"
            )
    elif not isinstance(value, str):
        raise FileProblem(
            f"{label}: {key} is {type_name(value)}, not a string", f'quote it: {key} = "..."'
        )
    if not value:
        raise FileProblem(f"{label}: {key} is empty", "give it a value or remove the key")
    if key == "environment" and value not in REST_URLS:
        raise FileProblem(
            f"{label}: environment {json.dumps(value)} is neither demo nor live",
            'write environment = "demo" or environment = "live"',
        )
    schemes = URL_SCHEMES.get(key)
    if schemes is not None and not value.startswith(schemes):
        raise FileProblem(
            f"{label}: {key} {masked_url(value)} does not start with {' or '.join(schemes)}",
            "give the full URL",
        )
    return value


def nearest(key: str, known: Sequence[str]) -> str:
    """' (did you mean "password_env"?)' for the closest known key, else ''."""
    longer = sorted((k for k in known if k.startswith(key)), key=len)
    close = longer[:1] or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {json.dumps(close[0])}?)" if close else ""


def type_name(value: object) -> str:
    for kind, name in _TOML_TYPES.items():
        if isinstance(value, kind):
            return name
    return "a date or time"
