"""Pure decoding of user-sync payloads: the syncrequest snapshot and ``props`` events.

Lenient in what it accepts: a collection may be missing or null, ``entity`` may be one
object or an array, ``d`` itself may be an array of props. A bad entity is reported in
``problems`` and skipped; its neighbours are kept. Entity types we do not use are ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Final, Union

import msgspec

from trading_gateway.server.broker.errors import ProtocolError
from trading_gateway.server.broker.events import (
    ChangeType,
    Entity,
    EntityChange,
    EntityRef,
    SyncSnapshot,
)
from trading_gateway.server.broker.frames import snippet
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalance,
    Contract,
    ContractMaturity,
    Fill,
    MarginSnapshot,
    Order,
    OrderVersion,
    Position,
    Product,
)

logger = logging.getLogger(__name__)

#: entityType (camelCase singular) → struct. Also the entityTypes we ask syncrequest for.
ENTITY_STRUCTS: Final[Mapping[str, type[Entity]]] = {
    "account": Account,
    "position": Position,
    "order": Order,
    "orderVersion": OrderVersion,
    "fill": Fill,
    "cashBalance": CashBalance,
    "marginSnapshot": MarginSnapshot,
    "contract": Contract,
    "contractMaturity": ContractMaturity,
    "product": Product,
}
SYNC_ENTITY_TYPES: Final = tuple(ENTITY_STRUCTS)

#: snapshot key → (entityType, SyncSnapshot field)
SNAPSHOT_COLLECTIONS: Final[Mapping[str, tuple[str, str]]] = {
    "accounts": ("account", "accounts"),
    "positions": ("position", "positions"),
    "orders": ("order", "orders"),
    "orderVersions": ("orderVersion", "order_versions"),
    "fills": ("fill", "fills"),
    "cashBalances": ("cashBalance", "cash_balances"),
    "marginSnapshots": ("marginSnapshot", "margin_snapshots"),
    "contracts": ("contract", "contracts"),
    "contractMaturities": ("contractMaturity", "contract_maturities"),
    "products": ("product", "products"),
}

CHANGE_TYPES: Final[Mapping[str, ChangeType]] = {c.value.lower(): c for c in ChangeType}


class _UserRef(msgspec.Struct, frozen=True):
    id: int


class _Props(msgspec.Struct, frozen=True, rename="camel"):
    entity_type: str
    event_type: str
    entity: msgspec.Raw


_one: Final = {name: msgspec.json.Decoder(t, strict=False) for name, t in ENTITY_STRUCTS.items()}
_many: Final = {
    name: msgspec.json.Decoder(list[t], strict=False)  # type: ignore[valid-type]
    for name, t in ENTITY_STRUCTS.items()
}
_object_decoder: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw] | None)
_users_decoder: Final = msgspec.json.Decoder(list[_UserRef] | None, strict=False)
_props_decoder: Final = msgspec.json.Decoder(_Props)
_ref_decoder: Final = msgspec.json.Decoder(_UserRef, strict=False)

_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


def _typed_props(entity_type: str, struct: type[Entity]) -> type[msgspec.Struct]:
    """One props object of one entity type, its entity (one or an array) decoded in place."""
    return msgspec.defstruct(
        f"_{entity_type}_props",
        [("event_type", str), ("entity", struct | list[struct])],  # type: ignore[valid-type]
        tag_field="entityType",
        tag=entity_type,
        rename="camel",
        frozen=True,
    )


_TYPED_PROPS: Final = {_typed_props(name, t): name for name, t in ENTITY_STRUCTS.items()}
# The common case in one pass: a single props object of a known type whose entities all
# decode. Anything else (an array of props, an unknown type, a bad or partial entity)
# fails it and goes the lenient way below, which keeps what it can and says why.
_typed_props_decoder: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(
    Union[tuple(_TYPED_PROPS)],  # noqa: UP007 - built at run time
    strict=False,
)


def _is_array(raw: msgspec.Raw | bytes) -> bool:
    return bytes(raw).lstrip()[:1] == b"["


def _elements(
    raw: msgspec.Raw | bytes, what: str, problems: list[str]
) -> list[msgspec.Raw | bytes]:
    """One JSON value, or each element of an array (none, noted, if the array is bad)."""
    if not _is_array(raw):
        return [raw]
    try:
        return list(_raw_list_decoder.decode(raw) or [])
    except _DECODE_ERRORS as exc:
        problems.append(f"bad {what} array: {exc}")
        return []


def decode_entities(
    entity_type: str, raw: msgspec.Raw | bytes, problems: list[str]
) -> list[Entity]:
    """One entity or an array of them; bad ones are skipped and noted in ``problems``."""
    if not _is_array(raw):
        try:
            return [_one[entity_type].decode(raw)]
        except _DECODE_ERRORS as exc:
            problems.append(f"bad {entity_type}: {exc}: {snippet(bytes(raw))}")
            return []
    try:
        entities: list[Entity] = _many[entity_type].decode(raw)
        return entities
    except _DECODE_ERRORS:
        pass  # keep the good ones
    try:
        elements = _raw_list_decoder.decode(raw) or []
    except _DECODE_ERRORS as exc:
        problems.append(f"bad {entity_type} array: {exc}")
        return []
    out: list[Entity] = []
    for element in elements:
        out.extend(decode_entities(entity_type, element, problems))
    return out


def decode_snapshot(
    data: msgspec.Raw | bytes,
    *,
    received_at: dt.datetime,
    reconnect: bool,
    problems: list[str],
) -> SyncSnapshot:
    """A syncrequest response ``d`` → SyncSnapshot. Raises ProtocolError if ``d`` is no object."""
    try:
        collections = _object_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"syncrequest answer is not an object: {exc}") from None
    fields: dict[str, Any] = {}
    for key, (entity_type, field_name) in SNAPSHOT_COLLECTIONS.items():
        raw = collections.get(key)
        if raw is None or bytes(raw).strip() == b"null":
            continue
        if not _is_array(raw):
            problems.append(f"snapshot {key} is not an array")
            continue
        fields[field_name] = tuple(decode_entities(entity_type, raw, problems))
    user_ids: tuple[int, ...] = ()
    if "users" in collections:
        try:
            user_ids = tuple(u.id for u in _users_decoder.decode(collections["users"]) or [])
        except _DECODE_ERRORS as exc:
            problems.append(f"snapshot users: {exc}")
    return SyncSnapshot(**fields, user_ids=user_ids, received_at=received_at, reconnect=reconnect)


def decode_props(
    data: msgspec.Raw | bytes, *, received_at: dt.datetime, problems: list[str]
) -> list[EntityChange]:
    """A ``props`` event's ``d`` (one props object or an array of them) → entity changes."""
    try:
        typed = _typed_props_decoder.decode(data)
    except _DECODE_ERRORS:
        return _decode_props_leniently(data, received_at=received_at, problems=problems)
    change = CHANGE_TYPES.get(typed.event_type.lower())
    if change is None:
        return _decode_props_leniently(data, received_at=received_at, problems=problems)
    entity_type = _TYPED_PROPS[type(typed)]
    entities = typed.entity if isinstance(typed.entity, list) else (typed.entity,)
    return [EntityChange(entity_type, change, entity, received_at) for entity in entities]


def _decode_props_leniently(
    data: msgspec.Raw | bytes, *, received_at: dt.datetime, problems: list[str]
) -> list[EntityChange]:
    changes: list[EntityChange] = []
    for item in _elements(data, "props", problems):
        try:
            props = _props_decoder.decode(item)
        except _DECODE_ERRORS as exc:
            problems.append(f"bad props: {exc}: {snippet(bytes(item))}")
            continue
        if props.entity_type not in ENTITY_STRUCTS:
            logger.debug("ignoring props for entity type %s", props.entity_type)
            continue
        change = CHANGE_TYPES.get(props.event_type.lower())
        if change is None:
            problems.append(f"unknown props eventType {props.event_type!r}")
            continue
        if change is ChangeType.DELETED:
            entities = _decode_deleted(props.entity_type, props.entity, problems)
        else:
            entities = decode_entities(props.entity_type, props.entity, problems)
        for entity in entities:
            changes.append(EntityChange(props.entity_type, change, entity, received_at))
    return changes


def _decode_deleted(
    entity_type: str, raw: msgspec.Raw | bytes, problems: list[str]
) -> list[Entity]:
    """A Deleted event's entities. The reference does not say what a Deleted entity carries,
    so one that does not decode in full is accepted with just its id (an EntityRef)."""
    out: list[Entity] = []
    for element in _elements(raw, entity_type, problems):
        full: list[str] = []
        decoded = decode_entities(entity_type, element, full)
        if decoded:
            out.extend(decoded)
            continue
        try:
            out.append(EntityRef(_ref_decoder.decode(element).id))
        except _DECODE_ERRORS:
            problems.extend(full)
    return out


def decode_sync_part(
    data: msgspec.Raw | bytes, *, received_at: dt.datetime, problems: list[str]
) -> list[EntityChange] | None:
    """A further syncrequest response (``splitResponses``) → upserts; None if ``d`` is not a
    SyncMessage-shaped object (no known collection key and no ``users``)."""
    try:
        keys = _object_decoder.decode(data).keys()
    except _DECODE_ERRORS:
        return None
    if "users" not in keys and not keys & SNAPSHOT_COLLECTIONS.keys():
        return None
    part = decode_snapshot(data, received_at=received_at, reconnect=False, problems=problems)
    return [
        EntityChange(entity_type, ChangeType.UPDATED, entity, received_at)
        for entity_type, field_name in SNAPSHOT_COLLECTIONS.values()
        for entity in getattr(part, field_name)
    ]
