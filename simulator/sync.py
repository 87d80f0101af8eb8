"""user/syncrequest: a SyncMessage snapshot, then props events for every change.

The snapshot is built and the socket subscribed in one synchronous step, so no change can
fall between them or be sent twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trading_gateway.simulator.api import NO_ACCOUNTS, BadRequest, Call, Reply, Route
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.entity_routes import parse_int
from trading_gateway.simulator.sessions import Session
from trading_gateway.simulator.store import (
    ACCOUNT_FIELD,
    ACCOUNT_KEYED,
    ACCOUNT_SCOPED,
    COLLECTIONS,
    ORDER_CHILD,
    Entity,
)

TYPE_NAMES = {name.lower(): name for name in COLLECTIONS}
PLURAL_NAMES = {plural.lower(): name for name, plural in COLLECTIONS.items()}


@dataclass(slots=True, frozen=True)
class SyncParams:
    users: list[int] | None
    accounts: list[int] | None
    entity_types: frozenset[str] | None
    split_responses: bool


def _int_list(value: Any, name: str) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be an array")
    return [parse_int(v, name) for v in value]


def _entity_types(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("entityTypes must be an array of strings")
    names = set()
    for raw in value:
        key = raw.lower()
        name = TYPE_NAMES.get(key) or PLURAL_NAMES.get(key)
        if name is not None:
            names.add(name)
    return frozenset(names) if value else None


def parse_sync(core: SimCore, call: Call) -> SyncParams:
    body = call.body
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("Expected a JSON object body")
    return SyncParams(
        users=_int_list(body.get("users"), "users"),
        accounts=_int_list(body.get("accounts"), "accounts"),
        entity_types=_entity_types(body.get("entityTypes")),
        split_responses=bool(body.get("splitResponses", False)),
    )


def _sync_accounts(core: SimCore, params: SyncParams) -> Sequence[int]:
    return NO_ACCOUNTS if params.accounts is None else params.accounts


def visible_accounts(
    core: SimCore, params: SyncParams, session: Session | None = None
) -> list[int] | None:
    """None means every account (the one user's); else the accounts asked for that exist and
    belong to the caller's user. With several users, None becomes the user's own accounts."""
    user_id = core.user_of(session)["id"]
    if params.users is not None and user_id not in params.users:
        return []
    if params.accounts is None:
        return core.accounts_of(user_id) if core.several_users else None
    accounts = core.store.accounts
    return [a for a in params.accounts if accounts.get(a) is not None and core.sees(session, a)]


def _scoped(
    core: SimCore, entity_type: str, accounts: list[int], orders: list[int]
) -> list[Entity]:
    table = core.store.table(entity_type)
    if entity_type in ACCOUNT_KEYED:
        return table.items(accounts)
    if entity_type in ACCOUNT_FIELD and entity_type != "executionReport":
        return table.ldeps(accounts)
    if entity_type in ORDER_CHILD:
        return table.ldeps(orders)
    wanted = set(accounts)
    store = core.store
    return [e for e in table.values() if store.account_of(entity_type, e) in wanted]


def snapshot(
    core: SimCore,
    accounts: list[int] | None,
    types: frozenset[str] | None,
    session: Session | None = None,
) -> dict[str, list[Entity] | None]:
    """The SyncMessage: every collection, limited to `accounts` and `types` when given.

    ``SimConfig.sync_margin_snapshots`` can make ``marginSnapshots`` null or empty."""
    store = core.store
    orders: list[int] = []
    if accounts is not None:
        orders = [o["id"] for o in store.orders.ldeps(accounts)]
    out: dict[str, list[Entity] | None] = {}
    for entity_type, plural in COLLECTIONS.items():
        if entity_type == "user":
            out[plural] = [core.user_of(session)] if accounts != [] else []
            continue
        if types is not None and entity_type not in types:
            continue
        if accounts is None or entity_type not in ACCOUNT_SCOPED:
            out[plural] = store.table(entity_type).values()
        else:
            out[plural] = _scoped(core, entity_type, accounts, orders)
    margin_mode = core.config.sync_margin_snapshots
    if margin_mode != "include" and "marginSnapshots" in out:
        out["marginSnapshots"] = None if margin_mode == "null" else []
    return out


def _run_sync(core: SimCore, call: Call, params: SyncParams) -> Reply:
    conn = call.conn
    accounts = visible_accounts(core, params, call.session)
    data = snapshot(core, accounts, params.entity_types, call.session)
    if conn is not None:
        conn.sync_accounts = None if accounts is None else frozenset(accounts)
        conn.sync_types = params.entity_types
        core.hub.subscribers.add(conn)
    return Reply(200, data)


def sync_routes() -> dict[str, Route]:
    return {"user/syncrequest": Route("POST", _run_sync, parse_sync, _sync_accounts)}
