"""The generic entity operations: list, item, items, deps, ldeps, find, suggest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trading_gateway.simulator.api import NO_ACCOUNTS, BadRequest, Call, NotFound, Reply, Route
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.store import (
    ACCOUNT_SCOPED,
    COLLECTIONS,
    MASTER_FIELDS,
    NAMED,
    Entity,
)

SUGGESTIBLE = frozenset({"contract", "product"})


def parse_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"Invalid {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise BadRequest(f"Missing or invalid {name}" if value is None else f"Invalid {name}")


def parse_ids(value: Any, name: str) -> list[int]:
    """`1,2,3` (query) or [1, 2, 3] (body)."""
    if isinstance(value, str):
        parts = [p for p in value.split(",") if p.strip()]
        if not parts:
            raise BadRequest(f"Missing {name}")
        return [parse_int(p, name) for p in parts]
    if isinstance(value, list) and value:
        return [parse_int(v, name) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    raise BadRequest(f"Missing or invalid {name}")


def _accounts_of(core: SimCore, entity_type: str, entities: list[Entity]) -> list[int]:
    store = core.store
    found = {store.account_of(entity_type, e) for e in entities}
    return [a for a in found if a is not None]


def _master_accounts(core: SimCore, entity_type: str, masters: Sequence[int]) -> Sequence[int]:
    """Accounts touched by a deps/ldeps call, from the master ids alone."""
    field = MASTER_FIELDS.get(entity_type)
    if entity_type not in ACCOUNT_SCOPED or entity_type == "account" or field is None:
        return NO_ACCOUNTS
    if field in ("accountId", "id"):
        return masters
    store = core.store
    out: list[int] = []
    for master in masters:
        if field == "orderId":
            account = store.account_of_order(master)
        else:
            parent_type = "command" if field == "commandId" else "position"
            parent = store.table(parent_type).get(master)
            account = None if parent is None else store.account_of(parent_type, parent)
        if account is not None:
            out.append(account)
    return out


def _routes_for(entity_type: str) -> dict[str, Route]:
    scoped = entity_type in ACCOUNT_SCOPED and entity_type != "account"

    def table_of(core: SimCore) -> Any:
        return core.store.table(entity_type)

    def run_list(core: SimCore, call: Call, params: Any) -> Reply:
        return Reply(200, core.visible(call.session, entity_type, table_of(core).values()))

    def list_accounts(core: SimCore, params: Any) -> Sequence[int]:
        return core.store.account_ids() if scoped else NO_ACCOUNTS

    def parse_item(core: SimCore, call: Call) -> int:
        return parse_int(call.param("id"), "id")

    def run_item(core: SimCore, call: Call, entity_id: int) -> Reply:
        entity = table_of(core).get(entity_id)
        if entity is None or not core.visible(call.session, entity_type, [entity]):
            raise NotFound(f"{entity_type} with id {entity_id} could not be found")
        return Reply(200, entity)

    def item_accounts(core: SimCore, entity_id: int) -> Sequence[int]:
        entity = table_of(core).get(entity_id)
        return NO_ACCOUNTS if entity is None else _accounts_of(core, entity_type, [entity])

    def parse_items(core: SimCore, call: Call) -> list[int]:
        return parse_ids(call.param("ids"), "ids")

    def run_items(core: SimCore, call: Call, ids: list[int]) -> Reply:
        return Reply(200, core.visible(call.session, entity_type, table_of(core).items(ids)))

    def items_accounts(core: SimCore, ids: list[int]) -> Sequence[int]:
        return _accounts_of(core, entity_type, table_of(core).items(ids))

    def parse_deps(core: SimCore, call: Call) -> list[int]:
        return [parse_int(call.param("masterid"), "masterid")]

    def parse_ldeps(core: SimCore, call: Call) -> list[int]:
        return parse_ids(call.param("masterids"), "masterids")

    def run_ldeps(core: SimCore, call: Call, masters: list[int]) -> Reply:
        return Reply(200, core.visible(call.session, entity_type, table_of(core).ldeps(masters)))

    def deps_accounts(core: SimCore, masters: list[int]) -> Sequence[int]:
        return _master_accounts(core, entity_type, masters)

    routes = {
        "list": Route("GET", run_list, accounts=list_accounts),
        "item": Route("GET", run_item, parse_item, item_accounts),
        "items": Route("GET", run_items, parse_items, items_accounts),
        "deps": Route("GET", run_ldeps, parse_deps, deps_accounts),
        "ldeps": Route("GET", run_ldeps, parse_ldeps, deps_accounts),
    }
    if entity_type in NAMED:
        routes["find"] = Route(
            "GET", _find_runner(entity_type), _parse_find, _find_accounts(entity_type)
        )
    if entity_type in SUGGESTIBLE:
        routes["suggest"] = Route("GET", _suggest_runner(entity_type), _parse_suggest)
    return routes


def _parse_find(core: SimCore, call: Call) -> str:
    name = call.param("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("Missing name")
    return name


def _find_runner(entity_type: str) -> Callable[[SimCore, Call, str], Reply]:
    def run(core: SimCore, call: Call, name: str) -> Reply:
        entity = core.store.table(entity_type).find(name)
        if entity is None or not core.visible(call.session, entity_type, [entity]):
            raise NotFound(f"{entity_type} {name} could not be found")
        return Reply(200, entity)

    return run


def _find_accounts(entity_type: str) -> Callable[[SimCore, str], Sequence[int]]:
    def accounts(core: SimCore, name: str) -> Sequence[int]:
        if entity_type != "account":
            return NO_ACCOUNTS
        entity = core.store.accounts.find(name)
        return NO_ACCOUNTS if entity is None else [entity["id"]]

    return accounts


def _parse_suggest(core: SimCore, call: Call) -> tuple[str, int]:
    text = call.param("t")
    if not isinstance(text, str):
        raise BadRequest("Missing t")
    raw_limit = call.param("l")
    limit = 10 if raw_limit is None else parse_int(raw_limit, "l")
    return text, limit


def _suggest_runner(entity_type: str) -> Callable[[SimCore, Call, tuple[str, int]], Reply]:
    def run(core: SimCore, call: Call, params: tuple[str, int]) -> Reply:
        text, limit = params
        prefix = text.upper()
        found = [
            e
            for e in core.store.table(entity_type).values()
            if str(e.get("name", "")).upper().startswith(prefix)
        ]
        return Reply(200, found[: max(0, limit)])

    return run


def entity_routes() -> dict[str, Route]:
    """Every `entityType/op` endpoint, keyed by its lowercase path."""
    routes: dict[str, Route] = {}
    for entity_type in COLLECTIONS:
        for op, route in _routes_for(entity_type).items():
            routes[f"{entity_type.lower()}/{op}"] = route
    return routes
