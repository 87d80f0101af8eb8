"""A live service's state as records and dumps (server/live/records.py), both ways.

``dump(service)`` is the holder's whole live state at the last delta it numbered;
``load(service, dump)`` makes a follower's service that state; ``replay(service, record)``
applies one of the holder's records exactly as the holder applied it (the same code:
``handle_all``, ``on_quote``, ``figures_changed``, ``refresh``), so the two states agree
and the follower's hub sends the holder's deltas, byte for byte, under the same numbers.

A follower's hub is in ``follow`` mode: its own views compute the same changes but
publish nothing (server/live/hub.py), and ``DeltaRecord`` commits the holder's delta.
"""

from __future__ import annotations

import datetime as dt

from trading_gateway.server.broker.events import SyncSnapshot
from trading_gateway.server.live.records import (
    DeltaRecord,
    EpochRecord,
    FiguresRecord,
    FrameRecord,
    InfosRecord,
    LiveDump,
    QuoteRecord,
    Record,
)
from trading_gateway.server.live.service import LiveService


class NewSequenceSpace(Exception):
    """A new holder's hub does not continue where this replica's is: reload its dump.
    ``at_step``: the new holder's first step, whose snapshot it stores (None: unknown)."""

    def __init__(self, message: str, at_step: int | None = None) -> None:
        super().__init__(message)
        self.at_step = at_step


def dump(service: LiveService) -> LiveDump:
    """The service's whole state, including every delta it numbered."""
    state = service.state
    hub = service.hub
    prices = service.views.prices
    figures = service.figures
    return LiveDump(
        sync=SyncSnapshot(
            accounts=tuple(state.accounts.values()),
            positions=tuple(state.positions.values()),
            orders=tuple(state.orders.values()),
            order_versions=tuple(state.versions.values()),
            fills=tuple(state.fills.values()),
            cash_balances=tuple(state.cash_balances.values()),
            margin_snapshots=tuple(state.margins.values()),
            contracts=tuple(state.contracts.values()),
            contract_maturities=tuple(state.maturities.values()),
            products=tuple(state.products.values()),
            user_ids=state.user_ids,
            received_at=dt.datetime.fromtimestamp(service.reads.synced_at, dt.UTC),
        ),
        synced=state.synced,
        contract_infos=tuple(state.contract_infos.values()),
        prices=tuple((c, p, prices.changed_at.get(c, 0.0)) for c, p in prices.last.items()),
        figures=tuple(figures.figures.items()) if figures is not None else (),
        upstream_up=service.upstream_up,
        down_reason=service.down_reason,
        synced_at=service.reads.synced_at,
        last_change_ns=service.views.last_change_ns,
        epoch=hub.epoch,
        sequence=hub.numbered,
        last_events=tuple(
            (a, ns, hub.last_sequence_of.get(a, 0)) for a, ns in hub.last_event_ns.items()
        ),
    )


def load(service: LiveService, loaded: LiveDump, why: str) -> None:
    """Make a following service's state ``loaded``. Its open streams go on when its hub is
    exactly where the dump's is; otherwise they end resumably (``StreamHub.adopt``)."""
    views = service.views
    if loaded.synced:
        views.apply(loaded.sync)
        service.reads.synced_at = loaded.synced_at
    views.refresh(service.state.add_contract_infos(loaded.contract_infos), 0)
    for contract_id, price, at in loaded.prices:
        if views.prices.last.get(contract_id) != price:
            views.prices.put(contract_id, price, at)
    if service.figures is not None and loaded.figures:
        service.figures.figures.update(loaded.figures)
        views.figures_changed([a for a, _ in loaded.figures])
    views.last_change_ns = loaded.last_change_ns
    hub = service.hub
    hub.adopt(loaded.epoch, loaded.sequence, why)
    for account_id, ns, sequence in loaded.last_events:
        hub.last_event_ns[account_id] = ns
        hub.last_sequence_of[account_id] = sequence
    service.set_upstream(loaded.upstream_up, loaded.down_reason)
    if loaded.synced:
        service.mark_synced()


def replay(service: LiveService, record: Record, step: int | None = None) -> None:
    """Apply one of the holder's records (``SequenceGap`` if a delta does not continue the
    hub; ``NewSequenceSpace`` when a new holder starts where this hub is not)."""
    match record:
        case DeltaRecord(delta, now_ns):
            service.hub.commit(delta, now_ns)
        case FrameRecord(events):
            # A failure here raises: the mirror reloads from a snapshot (the holder, which
            # applied the same frame, need not resync at all).
            service.handle_all(events)
        case QuoteRecord(quote, at):
            service.views.on_quote(quote, at)
        case FiguresRecord(figures, changed):
            if service.figures is not None:
                service.figures.figures.update(figures)
            if changed:
                service.views.figures_changed(list(changed))
        case InfosRecord(infos, at_ns):
            service.views.refresh(service.state.add_contract_infos(infos), at_ns)
        case EpochRecord(epoch, sequence):
            hub = service.hub
            if (epoch, sequence) != (hub.epoch, hub.sequence):
                raise NewSequenceSpace(
                    f"the new holder continues {epoch}:{sequence}; this replica is at "
                    f"{hub.epoch}:{hub.sequence}",
                    at_step=step,
                )
