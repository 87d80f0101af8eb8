"""One table-driven refresh for the entity views (positions, orders, accounts).

Each kind of entity is a row of ``EntityKind``: its update kind, its field in the
``StreamUpdate`` payload, the field that holds its own time, and how its inputs become
field dicts and a proto (server/convert/). ``EntityViews`` keeps one kind's current
views by entity id and publishes what really changed: a view whose inputs compare equal
publishes nothing; a gone entity publishes DELETED with its last proto.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import convert
from trading_gateway.server.broker.schemas import Account, Position
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.reads.records import ContractRef, OrderDetail

Inputs = TypeVar("Inputs")
Proto = TypeVar("Proto", bound=Message)


#: server/live/views.py ``LiveViews._publish``: (kind, account id, entity id, payload,
#: received_ns, event_ns).
Publish = Callable[[UpdateKind, int, int, convert.Fields, int, int], None]


@dataclass(frozen=True, slots=True)
class EntityKind(Generic[Inputs, Proto]):
    """One row of the table: what differs between the kinds of entity view."""

    kind: UpdateKind
    #: The StreamUpdate payload field, and the entity's field inside it.
    field: str
    #: The entity's own time (a Timestamp field of its fields and proto).
    time_field: str
    account_of: Callable[[Inputs], int]
    fields_of: Callable[[Inputs], convert.Fields]
    proto_of: Callable[[Inputs], Proto]


@dataclass(slots=True)
class View(Generic[Inputs, Proto]):
    account_id: int
    inputs: Inputs
    proto: Proto | None = None


class EntityViews(Generic[Inputs, Proto]):
    """The current views of one kind of entity, by entity id."""

    def __init__(
        self,
        row: EntityKind[Inputs, Proto],
        inputs_of: Callable[[int], Inputs | None],
        publish: Publish,
        *,
        extra_fields: Callable[[Inputs], convert.Fields] | None = None,
    ) -> None:
        self.row = row
        self.views: dict[int, View[Inputs, Proto]] = {}
        self._inputs_of = inputs_of
        self._publish = publish
        self._extra_fields = extra_fields

    def __contains__(self, entity_id: int) -> bool:
        return entity_id in self.views

    def refresh(self, entity_id: int, received_ns: int) -> bool:
        """Recompute the entity's view; True when a delta was published."""
        row = self.row
        inputs = self._inputs_of(entity_id)
        old = self.views.get(entity_id)
        if inputs is None:
            if old is None:
                return False
            del self.views[entity_id]
            gone = self.proto(old)
            payload = {row.field: {"change": pb.CHANGE_TYPE_DELETED, row.field: gone}}
            event_ns = _stamp_ns(gone, row.time_field)
            self._publish(row.kind, old.account_id, entity_id, payload, received_ns, event_ns)
            return True
        if old is not None and old.inputs == inputs:
            return False
        account_id = row.account_of(inputs)
        self.views[entity_id] = View(account_id, inputs)
        change = pb.CHANGE_TYPE_CREATED if old is None else pb.CHANGE_TYPE_UPDATED
        # Published from field dicts in one constructor call; the view's own proto (for
        # reads and snapshots) is made when first asked for.
        fields = row.fields_of(inputs)
        if self._extra_fields is not None:
            fields.update(self._extra_fields(inputs))
        payload = {row.field: {"change": change, row.field: fields}}
        event_ns = convert.fields_ns(fields[row.time_field])
        self._publish(row.kind, account_id, entity_id, payload, received_ns, event_ns)
        return True

    def proto(self, view: View[Inputs, Proto]) -> Proto:
        if view.proto is None:
            view.proto = self.row.proto_of(view.inputs)
        return view.proto

    def get(self, entity_id: int) -> Proto | None:
        view = self.views.get(entity_id)
        return self.proto(view) if view is not None else None


PositionInputs = tuple[Position, str, ContractRef | None]
OrderInputs = tuple[OrderDetail, str, ContractRef | None]


#: The table: one row per kind of entity view.
POSITION_VIEWS: EntityKind[PositionInputs, pb.Position] = EntityKind(
    UpdateKind.POSITIONS,
    "position",
    "timestamp",
    account_of=lambda inputs: inputs[0].account_id,
    fields_of=lambda inputs: convert.position_fields(*inputs),
    proto_of=lambda inputs: convert.position(*inputs),
)
ORDER_VIEWS: EntityKind[OrderInputs, pb.Order] = EntityKind(
    UpdateKind.ORDERS,
    "order",
    "updated_time",
    account_of=lambda inputs: inputs[0].order.account_id,
    fields_of=lambda inputs: convert.order_fields(*inputs),
    proto_of=lambda inputs: convert.order(*inputs),
)
ACCOUNT_VIEWS: EntityKind[Account, pb.Account] = EntityKind(
    UpdateKind.ACCOUNTS,
    "account",
    "timestamp",
    account_of=lambda account: account.id,
    fields_of=convert.account_fields,
    proto_of=convert.account,
)


def _stamp_ns(message: Message, field: str) -> int:
    """A Timestamp field's epoch nanoseconds; 0 when unset."""
    return int(getattr(message, field).ToNanoseconds()) if message.HasField(field) else 0
