"""One StreamUpdates call: subscription status, snapshot, completion marker, deltas, heartbeats.

``LiveStreams.open`` does everything that must be consistent in one synchronous step:
it registers the subscriber with the hub, replays a covered resume (or takes the
snapshot) and notes the sequence the deltas start after. Nothing can be published in
between, so a subscriber sees each change exactly once: in the snapshot or as a delta.

A session yields serialized ``StreamUpdate`` bytes. Deltas are serialized once by the hub,
with ``previous_sequence`` one below their own: a stream that receives every delta sends
them as they are, and only a filtered stream appends its own ``previous_sequence``. It
ends by raising a typed error from server/live/errors.py that names the resume point.

An account that is not plainly OK in the subscription status is described by a typed
condition (server/live/errors.py ``AccountCondition``); the injected ``status_of``
(server/api/status.account_status, the one status table) turns it into AccountStatus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import timestamp_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.convert import Fields, StatusOf, epoch_ns_fields
from trading_gateway.server.errors import InvalidRequest
from trading_gateway.server.live.errors import (
    AccountCondition,
    AccountNotInLiveSync,
    LiveNotReady,
    LiveSyncDisconnected,
    SlowConsumer,
    StreamDrained,
    UpstreamLost,
)
from trading_gateway.server.live.hub import EndReason, StreamHub, Subscription
from trading_gateway.server.live.kinds import UpdateKind, from_wire, unknown_kinds
from trading_gateway.server.live.queue import chained, marked

logger = logging.getLogger(__name__)

#: Distinct account sets whose shared heartbeat part is kept (cleared when full).
HEARTBEAT_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class StreamSettings:
    heartbeat_default: float = 5.0
    heartbeat_min: float = 0.1
    heartbeat_max: float = 120.0


@dataclass(frozen=True, slots=True)
class StreamAccount:
    """An account the caller's selector resolved to."""

    account_id: int
    account_name: str


class SnapshotViews(Protocol):
    """What a stream needs from the live views (server/live/views.py)."""

    @property
    def synced(self) -> bool: ...

    @property
    def healthy(self) -> bool: ...

    def has_account(self, account_id: int) -> bool: ...

    def account_snapshot(
        self, account_id: int, kinds: frozenset[UpdateKind]
    ) -> pb.AccountSnapshot: ...


class LiveStreams:
    """Opens StreamUpdates sessions over one hub and one set of live views."""

    def __init__(
        self,
        hub: StreamHub,
        views: SnapshotViews,
        settings: StreamSettings | None = None,
        *,
        status_of: StatusOf,
    ) -> None:
        self.hub = hub
        self.views = views
        self.settings = settings or StreamSettings()
        #: Turns an account's condition (None: OK) into its AccountStatus: the status table.
        self.status_of = status_of
        # Per set of accounts: (hub sequence, upstream health) → the serialized part of a
        # heartbeat that every stream over those accounts shares.
        self._heartbeats: dict[tuple[int, ...], tuple[tuple[int, bool], bytes]] = {}

    def heartbeat_body(self, account_ids: tuple[int, ...]) -> bytes:
        """``epoch`` and the ``heartbeat`` (each account's last event, upstream health) of a
        StreamUpdate, serialized. Built once for all the streams over the same accounts
        until something is published or health changes: with 1000 streams over 1000
        accounts, a million AccountActivity messages per interval otherwise."""
        version = (self.hub.sequence, self.views.healthy)
        cached = self._heartbeats.get(account_ids)
        if cached is not None and cached[0] == version:
            return cached[1]
        last_event = self.hub.last_event_ns
        activity = []
        for account_id in account_ids:
            last = last_event.get(account_id)
            activity.append(
                {
                    "account_id": account_id,
                    "last_event_time": None if last is None else epoch_ns_fields(last),
                }
            )
        fields: Fields = {
            "epoch": self.hub.epoch,
            "login": self.hub.login,
            "heartbeat": {"accounts": activity, "upstream_healthy": version[1]},
        }
        body = pb.StreamUpdate(**fields).SerializeToString()
        if len(self._heartbeats) >= HEARTBEAT_CACHE_SIZE:
            self._heartbeats.clear()
        self._heartbeats[account_ids] = (version, body)
        return body

    def open(
        self,
        request: pb.StreamUpdatesRequest,
        accounts: Sequence[StreamAccount],
        *,
        follow_new_accounts: bool = False,
        announce: bool = True,
    ) -> StreamSession:
        """Start a session; raises StreamLimitReached, StreamDrained or LiveNotReady.

        ``follow_new_accounts`` (an empty selector) also streams accounts created later.
        ``announce=False`` leaves out the opening SubscriptionStatus: a stream over many
        logins sends one for all of them (``StreamSession.subscriptions``).
        """
        kinds = _kinds(request)
        heartbeat = self._heartbeat_interval(request)
        if not self.views.synced:
            raise LiveNotReady()
        wanted = None if follow_new_accounts else [a.account_id for a in accounts]
        sub = self.hub.subscribe(wanted, kinds)
        try:
            return StreamSession(self, request, accounts, sub, heartbeat, announce=announce)
        except BaseException:
            sub.close()
            raise

    async def reach(self, epoch: str, sequence: int, within: float) -> None:
        """Until the hub of ``epoch`` has sent ``sequence``, or ``within`` seconds passed.

        A subscriber resuming on a replica that mirrors another's hub may have seen a
        delta this replica has not read from the log yet (milliseconds behind): waiting a
        moment serves the resume from the replay ring instead of a resync."""
        await self.hub.reached(epoch, sequence, within)

    async def settle(self, within: float) -> None:
        """Until the hub has sent every delta it numbered (or ``within`` s): on a replica
        that holds the login, a delta is sent once the delta log holds it, and the state
        may be that far ahead; a snapshot taken after this matches its sequence."""
        await self.hub.settled(within)

    def _heartbeat_interval(self, request: pb.StreamUpdatesRequest) -> float:
        s = self.settings
        if not request.HasField("heartbeat_interval"):
            return s.heartbeat_default
        asked = request.heartbeat_interval.ToNanoseconds() / 1e9
        if asked <= 0:
            raise InvalidRequest("heartbeat_interval must be positive", field="heartbeat_interval")
        return min(max(asked, s.heartbeat_min), s.heartbeat_max)


def _kinds(request: pb.StreamUpdatesRequest) -> frozenset[UpdateKind]:
    unknown = unknown_kinds(request.kinds)
    if unknown:
        raise InvalidRequest(
            f"unknown update kinds: {unknown}", field="kinds", reason="INVALID_KIND"
        )
    return from_wire(request.kinds)


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


class StreamSession:
    """One subscriber's stream; iterate ``messages()`` and call ``close()`` when done."""

    def __init__(
        self,
        streams: LiveStreams,
        request: pb.StreamUpdatesRequest,
        accounts: Sequence[StreamAccount],
        sub: Subscription,
        heartbeat: float,
        *,
        announce: bool = True,
    ) -> None:
        self._hub = streams.hub
        self._views = streams.views
        self._heartbeat_body = streams.heartbeat_body
        self._status_of = streams.status_of
        self._sub = sub
        self._accounts = list(accounts)
        self._account_ids = tuple(a.account_id for a in self._accounts)
        self._heartbeat = heartbeat
        self._heartbeat_due = False
        self._told_healthy = streams.views.healthy
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: True from the last opening message (SnapshotComplete) on: once the writer took
        #: it, ``resume_point`` stands for what the subscriber has.
        self.opened = False
        #: The last sequence of the batch in hand (see ``ready``).
        self._batch_end = 0
        # Decide resume or snapshot now, in the same synchronous step as subscribe().
        resume_asked = request.resume_after_sequence > 0 or bool(request.resume_epoch)
        self.resumed = resume_asked and self._hub.replay(
            sub, request.resume_after_sequence, request.resume_epoch
        )
        self.resync = resume_asked and not self.resumed
        with_snapshot = self.resync or (
            not resume_asked
            and (request.with_snapshot if request.HasField("with_snapshot") else True)
        )
        self.start_sequence = request.resume_after_sequence if self.resumed else self._hub.sequence
        #: The sequence of the last delta this stream sent (or where it started).
        self.last_sequence = self.start_sequence
        self._opening = self._opening_messages(with_snapshot, sub.kinds, announce=announce)

    # ------------------------------------------------------------------ opening
    @property
    def login(self) -> str:
        return self._hub.login

    @property
    def epoch(self) -> str:
        return self._hub.epoch

    def subscriptions(self) -> list[pb.AccountSubscription]:
        """Each selected account as the opening SubscriptionStatus names it."""
        return [pb.AccountSubscription(meta=self._meta(a)) for a in self._accounts]

    def _opening_messages(
        self, with_snapshot: bool, kinds: frozenset[UpdateKind], *, announce: bool
    ) -> list[bytes]:
        now = _timestamp(time.time_ns())
        epoch = self._hub.epoch
        login = self._hub.login
        seq = self.start_sequence
        out: list[bytes] = []
        if announce:
            # The one stream-wide message: its login stays empty (it names every account's).
            status = pb.SubscriptionStatus(accounts=self.subscriptions())
            out.append(
                pb.StreamUpdate(
                    sequence=seq, epoch=epoch, server_time=now, subscription=status
                ).SerializeToString()
            )
        if with_snapshot:
            for account in self._accounts:
                if not self._views.has_account(account.account_id):
                    continue
                chunk = pb.SnapshotChunk(
                    account=self._views.account_snapshot(account.account_id, kinds),
                    resync=self.resync,
                )
                out.append(
                    pb.StreamUpdate(
                        sequence=seq,
                        epoch=epoch,
                        login=login,
                        server_time=now,
                        account_id=account.account_id,
                        snapshot=chunk,
                    ).SerializeToString()
                )
        complete = pb.SnapshotComplete(sequence=seq, resync=self.resync)
        out.append(
            pb.StreamUpdate(
                sequence=seq,
                epoch=epoch,
                login=login,
                server_time=now,
                snapshot_complete=complete,
            ).SerializeToString()
        )
        return out

    def _meta(self, account: StreamAccount) -> pb.AccountMeta:
        meta = pb.AccountMeta(
            account_id=account.account_id,
            account_name=account.account_name,
            login=self._hub.login,
            source=pb.SOURCE_LIVE,
            status=self._status_of(self._condition(account)),
        )
        last = self._hub.last_event_ns.get(account.account_id)
        if last is not None:
            meta.as_of.FromNanoseconds(last)
        return meta

    def _condition(self, account: StreamAccount) -> AccountCondition | None:
        """What keeps this account from being plainly OK now; None when nothing does."""
        if not self._views.has_account(account.account_id):
            return AccountNotInLiveSync()
        if not self._views.healthy:
            return LiveSyncDisconnected()
        return None

    # ------------------------------------------------------------------ running
    async def messages(self) -> AsyncGenerator[bytes, None]:
        """The stream's serialized StreamUpdate messages, until the server ends it."""
        sub = self._sub
        try:
            opening, self._opening = self._opening, []
            last = len(opening) - 1
            for n, message in enumerate(opening):
                self.opened = n == last
                yield message
            self._schedule_heartbeat()
            previous = self.start_sequence
            while True:
                self._raise_if_ended()
                # On schedule, and at once when the upstream's health changes.
                if self._heartbeat_due or self._views.healthy != self._told_healthy:
                    self._heartbeat_due = False
                    self._told_healthy = self._views.healthy
                    yield self._heartbeat_message()
                    self._reschedule_heartbeat()
                # ``sub.end()`` empties this list: the rest of it is dropped at once.
                batch = sub.take()
                if not batch:
                    await sub.wait()
                    continue
                self._batch_end = batch[-1].sequence
                merges = sub.merges_in_hand
                if merges:
                    # A stream that fell behind: mark what each delta stands for.
                    for delta in batch:
                        body = (
                            delta.body
                            if delta.sequence == previous + 1
                            else chained(delta.body, previous)
                        )
                        merge = merges.get(delta.sequence)
                        # Set before the yield: a message in hand counts as sent.
                        previous = self.last_sequence = delta.sequence
                        yield body if merge is None else marked(body, merge)
                    continue
                for delta in batch:
                    # The body already names the delta just before it; a filtered
                    # stream, which skipped some, appends its own previous.
                    body = (
                        delta.body
                        if delta.sequence == previous + 1
                        else chained(delta.body, previous)
                    )
                    previous = self.last_sequence = delta.sequence
                    yield body
        finally:
            self.close()

    @property
    def ready(self) -> bool:
        """True when the next step of ``messages()`` yields (or raises) without waiting:
        an opening message, the rest of the batch in hand, a queued delta, a heartbeat
        due, or the end. A stream over several logins steps only ready sessions."""
        sub = self._sub
        return (
            not self.opened
            or self.last_sequence < self._batch_end
            or len(sub.queue) > 0
            or sub.ended is not None
            or self._heartbeat_due
            or self._views.healthy != self._told_healthy
        )

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this session may have become ``ready``."""
        self._sub.on_wake = callback

    def _schedule_heartbeat(self) -> None:
        if not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._heartbeat, self._heartbeat_tick)

    def _reschedule_heartbeat(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._schedule_heartbeat()

    def _heartbeat_tick(self) -> None:
        self._timer = None
        self._heartbeat_due = True
        self._sub.wake()

    def _heartbeat_message(self) -> bytes:
        # The shared part, then this stream's own fields (concatenated messages merge).
        own: Fields = {
            "sequence": self.last_sequence,
            "server_time": epoch_ns_fields(time.time_ns()),
        }
        shared = self._heartbeat_body(self._account_ids)
        return shared + pb.StreamUpdate(**own).SerializeToString()

    def _raise_if_ended(self) -> None:
        if self._sub.ended is not None:
            raise self._end_error(self._sub.ended, self._sub.end_detail)

    @property
    def resume_point(self) -> int:
        """The sequence to resume after: the last delta sent, or just below the earliest
        delta merged into one that the stream ended before sending (in its queue, or in
        the batch in hand), since resuming must not pass a delta that was never sent."""
        return self.resume_point_after(self.last_sequence)

    def resume_point_after(self, sent: int) -> int:
        """``resume_point`` for a writer that took the deltas up to ``sent`` only (a
        stream over several logins may hold this login's last message unwritten)."""
        floors = [m.first for seq, m in self._sub.merges_in_hand.items() if seq > sent]
        if self._sub.unsent_floor is not None:
            floors.append(self._sub.unsent_floor)
        return min(sent, min(floors) - 1) if floors else sent

    def _end_error(self, reason: EndReason, detail: str) -> Exception:
        seq, epoch = self.resume_point, self._hub.epoch
        if reason is EndReason.SLOW_CONSUMER:
            return SlowConsumer(sequence=seq, epoch=epoch)
        if reason is EndReason.DRAIN:
            return StreamDrained(sequence=seq, epoch=epoch)
        return UpstreamLost(sequence=seq, epoch=epoch, detail=detail or "disconnected")

    def close(self) -> None:
        """Unsubscribe at once (idempotent); a cancelled stream frees its slot here."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sub.close()
