"""The entity store: one table per Tradovate entity type, indexed by id and by master id.

Entities are plain JSON-ready dicts that are never mutated after they are stored: a change
replaces the dict. So a dict handed to the event log or a socket stays as it was published.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Entity = dict[str, Any]

# SyncMessage collection name for every entity type (tradovate-api.md section 4.4).
COLLECTIONS: dict[str, str] = {
    "user": "users",
    "account": "accounts",
    "accountRiskStatus": "accountRiskStatuses",
    "marginSnapshot": "marginSnapshots",
    "userAccountAutoLiq": "userAccountAutoLiqs",
    "cashBalance": "cashBalances",
    "currency": "currencies",
    "position": "positions",
    "fillPair": "fillPairs",
    "order": "orders",
    "contract": "contracts",
    "contractMaturity": "contractMaturities",
    "product": "products",
    "exchange": "exchanges",
    "spreadDefinition": "spreadDefinitions",
    "command": "commands",
    "commandReport": "commandReports",
    "executionReport": "executionReports",
    "orderVersion": "orderVersions",
    "fill": "fills",
    "fillFee": "fillFees",
    "orderStrategy": "orderStrategies",
    "orderStrategyLink": "orderStrategyLinks",
    "orderStrategyType": "orderStrategyTypes",
    "userProperty": "userProperties",
    "property": "properties",
    "userPlugin": "userPlugins",
    "contractGroup": "contractGroups",
    "userReadStatus": "userReadStatuses",
    "annualReview": "annualReviews",
    "userPromoCode": "userPromoCodes",
}

# The field that holds each type's master id (the `masterid` of /deps).
MASTER_FIELDS: dict[str, str] = {
    "account": "userId",
    "accountRiskStatus": "id",
    "marginSnapshot": "id",
    "userAccountAutoLiq": "id",
    "cashBalance": "accountId",
    "position": "accountId",
    "order": "accountId",
    "orderVersion": "orderId",
    "fill": "orderId",
    "command": "orderId",
    "executionReport": "commandId",
    "commandReport": "commandId",
    "fillPair": "positionId",
    "contract": "contractMaturityId",
    "contractMaturity": "productId",
}

# Types that belong to one account; everything else (contracts, products...) is global.
ACCOUNT_KEYED = frozenset({"account", "accountRiskStatus", "marginSnapshot", "userAccountAutoLiq"})
ACCOUNT_FIELD = frozenset({"cashBalance", "position", "order", "executionReport"})
ORDER_CHILD = frozenset({"orderVersion", "fill", "command"})
ACCOUNT_SCOPED = ACCOUNT_KEYED | ACCOUNT_FIELD | ORDER_CHILD | {"commandReport", "fillPair"}

# Types that have a `name` and so support /find.
NAMED = frozenset(
    {"account", "contract", "product", "currency", "exchange", "contractGroup", "user"}
)


class Table:
    """Entities of one type: by id, and by master id in insertion order."""

    __slots__ = ("_by_id", "_by_master", "entity_type", "master_field")

    def __init__(self, entity_type: str, master_field: str | None) -> None:
        self.entity_type = entity_type
        self.master_field = master_field
        self._by_id: dict[int, Entity] = {}
        self._by_master: dict[int, dict[int, Entity]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def put(self, entity: Entity) -> bool:
        """Insert or replace; True when the entity is new."""
        eid: int = entity["id"]
        old = self._by_id.get(eid)
        self._by_id[eid] = entity
        if self.master_field is not None:
            master: int = entity[self.master_field]
            if old is not None and old[self.master_field] != master:
                self._by_master.get(old[self.master_field], {}).pop(eid, None)
            self._by_master.setdefault(master, {})[eid] = entity
        return old is None

    def remove(self, eid: int) -> Entity | None:
        old = self._by_id.pop(eid, None)
        if old is not None and self.master_field is not None:
            self._by_master.get(old[self.master_field], {}).pop(eid, None)
        return old

    def get(self, eid: int) -> Entity | None:
        return self._by_id.get(eid)

    def items(self, ids: Iterable[int]) -> list[Entity]:
        """Found entities in the order asked; unknown ids are skipped."""
        by_id = self._by_id
        return [by_id[i] for i in ids if i in by_id]

    def deps(self, master_id: int) -> list[Entity]:
        return list(self._by_master.get(master_id, {}).values())

    def ldeps(self, master_ids: Iterable[int]) -> list[Entity]:
        out: list[Entity] = []
        by_master = self._by_master
        for master in master_ids:
            children = by_master.get(master)
            if children:
                out.extend(children.values())
        return out

    def values(self) -> list[Entity]:
        return list(self._by_id.values())

    def find(self, name: str) -> Entity | None:
        for entity in self._by_id.values():
            if entity.get("name") == name:
                return entity
        return None


class Store:
    """Every table, plus the account an entity belongs to."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {t: Table(t, MASTER_FIELDS.get(t)) for t in COLLECTIONS}
        self.orders = self.tables["order"]
        self.accounts = self.tables["account"]
        self.commands = self.tables["command"]
        self.positions = self.tables["position"]

    def table(self, entity_type: str) -> Table:
        return self.tables[entity_type]

    def account_ids(self) -> list[int]:
        return [a["id"] for a in self.accounts.values()]

    def account_of(self, entity_type: str, entity: Entity) -> int | None:
        """The account an entity belongs to, or None for global entities."""
        if entity_type in ACCOUNT_FIELD:
            return int(entity["accountId"])
        if entity_type in ACCOUNT_KEYED:
            return int(entity["id"])
        if entity_type in ORDER_CHILD:
            return self.account_of_order(entity["orderId"])
        if entity_type == "commandReport":
            command = self.commands.get(entity["commandId"])
            return None if command is None else self.account_of_order(command["orderId"])
        if entity_type == "fillPair":
            position = self.positions.get(entity["positionId"])
            return None if position is None else int(position["accountId"])
        return None

    def account_of_order(self, order_id: int) -> int | None:
        order = self.orders.get(order_id)
        return None if order is None else int(order["accountId"])
