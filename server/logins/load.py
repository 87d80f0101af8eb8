"""The gateway's logins: from the logins file (``GATEWAY_LOGINS_FILE``), or the one login
the ``TRADOVATE_*`` variables describe.

The file is TOML: an optional ``[defaults]`` table and one ``[[login]]`` table per
Tradovate user (server/logins/entry.py checks each; README, Many logins, shows one).
Secrets are never in it: each login names the environment variable or file holding its
password and API secret. Anything wrong is a ``SettingError`` whose one line names the
setting, the file, the entry and what to do, and never shows a secret. Checks run in
this order, so the first line an operator sees is about the file's shape before the
secrets: TOML syntax, each table's keys and types, names, users, the ``TRADOVATE_*``
variables, then the secrets.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from trading_gateway.server.config import GatewaySettings, env_name
from trading_gateway.server.logins.entry import (
    LoginEntry,
    check_defaults,
    nearest,
    parse_entry,
    type_name,
)
from trading_gateway.server.logins.problem import FileProblem
from trading_gateway.server.logins.spec import LoginSpec, shorthand_spec
from trading_gateway.server.setting_error import SettingError

SETTING: Final = "GATEWAY_LOGINS_FILE"
TOP_KEYS: Final = ("defaults", "login")
# The settings that describe one login: beside a logins file they would be a second,
# unnamed login (or values silently ignored), so they are refused unless the file itself
# names the variable (password_env = "TRADOVATE_PASSWORD").
SHORTHAND_FIELDS: Final = (
    "tradovate_username",
    "tradovate_password",
    "tradovate_app_id",
    "tradovate_app_version",
    "tradovate_cid",
    "tradovate_secret",
    "tradovate_device_id",
)


@dataclass(frozen=True, slots=True)
class LoadedLogin:
    """One login of the file: its checked entry (where its secrets are) and its spec."""

    entry: LoginEntry
    spec: LoginSpec


def load_logins(
    settings: GatewaySettings, environ: Mapping[str, str] | None = None
) -> list[LoginSpec]:
    """Every login the gateway serves, in the file's order (a SettingError if any is bad).

    Without ``GATEWAY_LOGINS_FILE``: the one ``TRADOVATE_*`` login, named ``default``.
    ``environ`` (default ``os.environ``) is where ``*_env`` secrets are read.
    """
    if not settings.logins_file:
        return [shorthand_spec(settings)]
    return [loaded.spec for loaded in read_logins_file(settings, environ)]


def read_logins_file(
    settings: GatewaySettings, environ: Mapping[str, str] | None = None
) -> list[LoadedLogin]:
    """The logins of ``settings.logins_file``, with where each secret came from."""
    path = settings.logins_file or ""
    try:
        return _read(Path(path), settings, os.environ if environ is None else environ)
    except FileProblem as exc:
        raise SettingError(SETTING, path, exc.problem, exc.fix) from None


def variables_named(settings: GatewaySettings) -> set[str]:
    """The environment variables the logins file names for secrets; empty when there is
    no file or it cannot be read (start-up says why). The CLI does not warn about them."""
    if not settings.logins_file:
        return set()
    try:
        entries = _entries(_parse(Path(settings.logins_file)), settings)
    except FileProblem:
        return set()
    return _named(entries)


def _read(path: Path, settings: GatewaySettings, environ: Mapping[str, str]) -> list[LoadedLogin]:
    entries = _entries(_parse(path), settings)
    _check_unique(entries)
    _check_shorthand_unset(settings, _named(entries))
    base = path.parent
    return [LoadedLogin(entry, entry.resolved(environ, base)) for entry in entries]


def _parse(path: Path) -> dict[str, object]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileProblem(
            f"cannot read the logins file ({exc.strerror})",
            "check the path and its permissions, or unset it for the single TRADOVATE_* login",
        ) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise FileProblem("the logins file is not UTF-8 text", "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileProblem(
            f"not valid TOML: {exc}", "fix the file (README, Many logins, shows one)"
        ) from None


def _entries(document: Mapping[str, object], settings: GatewaySettings) -> list[LoginEntry]:
    for key in document:
        if key not in TOP_KEYS:
            raise FileProblem(
                f"unknown table or key {json.dumps(key)} at the top level{nearest(key, TOP_KEYS)}",
                "the file holds [defaults] and [[login]] tables (README, Many logins)",
            )
    defaults = check_defaults(document.get("defaults", {}))
    tables = document.get("login", [])
    if isinstance(tables, dict):
        raise FileProblem(
            "[login] is a single table", "write each login as a [[login]] table (two brackets)"
        )
    if not isinstance(tables, list):
        raise FileProblem(
            f"login is {type_name(tables)}, not [[login]] tables",
            "write each login as a [[login]] table",
        )
    if not tables:
        raise FileProblem(
            "the file has no [[login]] tables",
            "add one [[login]] table per Tradovate user (README, Many logins), or unset "
            f"{SETTING} for the single TRADOVATE_* login",
        )
    return [parse_entry(table, index, defaults, settings) for index, table in enumerate(tables, 1)]


def _check_unique(entries: list[LoginEntry]) -> None:
    """Each name once, and each Tradovate user once (two logins of one user would evict
    each other's sessions: Tradovate allows a user two)."""
    by_name: dict[str, LoginEntry] = {}
    by_user: dict[tuple[str, str, str], LoginEntry] = {}
    for entry in entries:
        spec = entry.spec
        first = by_name.setdefault(spec.name, entry)
        if first is not entry:
            raise FileProblem(
                f"{entry.label}: the name is already entry {first.index}'s",
                "give each login its own name",
            )
        first = by_user.setdefault(spec.user_key, entry)
        if first is not entry:
            raise FileProblem(
                f'{entry.label}: user "{spec.username}" on {spec.rest_url} is already '
                f"{first.label}",
                "keep one: two logins of one Tradovate user evict each other's sessions",
            )


def _check_shorthand_unset(settings: GatewaySettings, named: set[str]) -> None:
    stray = [
        env_name(field)
        for field in SHORTHAND_FIELDS
        if _is_set(getattr(settings, field)) and env_name(field) not in named
    ]
    if stray:
        verb = "is" if len(stray) == 1 else "are"
        raise FileProblem(
            f"{', '.join(stray)} {verb} set as well, and a logins file replaces the single "
            "TRADOVATE_* login",
            "unset them, or move that login into the file (app_id, cid and the like go in a "
            "[[login]] or [defaults]; password_env and secret_env may name any variable)",
        )


def _named(entries: list[LoginEntry]) -> set[str]:
    return {
        source.where
        for entry in entries
        for source in (entry.password_from, entry.secret_from)
        if source.kind == "env"
    }


def _is_set(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)
