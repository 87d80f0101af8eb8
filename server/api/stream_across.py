"""StreamUpdates over the deployment's logins: resolve, split by login, write the messages.

The selector resolves across every login (the injected ``resolve``, h-core's directory).
A stream whose accounts are all under one login is that login's single-login stream,
exactly as before (server/live/streams.py); a stream over several logins merges their
per-login sessions (server/live/across.py). Either way the end status names the resume
position of every login of the stream in its ``resume_from`` metadata.

Resume positions: ``resume_from`` names one position per login; the legacy
``resume_after_sequence``/``resume_epoch`` name the position of a stream over one login
only (a stream over several refuses them: INVALID_ARGUMENT). Positions of logins the
stream does not cover are ignored (a removed login's, say).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.api.stream_handler import Context
from trading_gateway.server.auth.scoping import follows_new_accounts, visible_logins
from trading_gateway.server.convert import StatusOf
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import InvalidRequest
from trading_gateway.server.live.across import (
    CHECK_INTERVAL,
    LoginPart,
    LoginSession,
    LoginSources,
    MergedStream,
)
from trading_gateway.server.live.errors import (
    LiveNotReady,
    LoginRemoved,
    StreamError,
    with_positions,
)
from trading_gateway.server.live.streams import StreamAccount
from trading_gateway.server.logins.account import LoginAccount

LoginResolver = Callable[[Sequence[str], Deadline], Awaitable[Sequence[LoginAccount]]]
"""Selector entries to accounts across every login (unknown or ambiguous ones raise)."""

Position = tuple[str, int]
#: How long a resume waits for a replica's live state to reach the position it names.
RESUME_REACH_S = 1.0


def asked_positions(request: pb.StreamUpdatesRequest, logins: Sequence[str]) -> dict[str, Position]:
    """The resume position the request names for each login of the stream."""
    positions: dict[str, Position] = {}
    for entry in request.resume_from:
        if not entry.login:
            raise InvalidRequest(
                "each resume_from entry must name its login (StreamUpdate.login)",
                field="resume_from",
            )
        if entry.login in positions:
            raise InvalidRequest(
                f"resume_from names login {entry.login!r} twice; give one position per login",
                field="resume_from",
            )
        positions[entry.login] = (entry.epoch, entry.sequence)
    legacy = (request.resume_epoch, request.resume_after_sequence)
    if (request.resume_after_sequence > 0 or request.resume_epoch) and legacy not in (
        positions.values()
    ):
        # (A client that also repeats its one resume_from position there, for servers from
        # before resume_from, says nothing new: only a position of its own is checked.)
        if len(logins) > 1:
            raise InvalidRequest(
                "resume_after_sequence/resume_epoch name one login's position, but this "
                f"stream covers logins {', '.join(logins)}: resume with resume_from, "
                "one StreamPosition per login",
                field="resume_after_sequence",
            )
        if logins and logins[0] not in positions:
            positions[logins[0]] = (request.resume_epoch, request.resume_after_sequence)
    return {login: positions[login] for login in logins if login in positions}


def login_request(
    request: pb.StreamUpdatesRequest, position: Position | None
) -> pb.StreamUpdatesRequest:
    """``request`` for one login's session: its position in the legacy fields."""
    own = pb.StreamUpdatesRequest()
    own.CopyFrom(request)
    own.ClearField("resume_from")
    epoch, sequence = position or ("", 0)
    own.resume_epoch = epoch
    own.resume_after_sequence = sequence
    return own


class AcrossLoginsStreamHandler:
    """Runs StreamUpdates calls over the logins ``sources()`` names now."""

    def __init__(
        self,
        resolve: LoginResolver,
        sources: LoginSources,
        *,
        status_of: StatusOf,
        resolve_timeout: float = 5.0,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self._resolve = resolve
        self._sources = sources
        self._status_of = status_of
        self._resolve_timeout = resolve_timeout
        self._check_interval = check_interval

    async def stream(self, request: pb.StreamUpdatesRequest, context: Context) -> None:
        entries = list(request.selector.accounts)
        left = context.time_remaining()
        budget = self._resolve_timeout if left is None else min(left, self._resolve_timeout)
        selected = await self._resolve(entries, Deadline.after(budget))
        by_login: dict[str, list[StreamAccount]] = {}
        for account in selected:
            by_login.setdefault(account.login, []).append(StreamAccount(account.id, account.name))
        # "All accounts" follows the accounts a login gains later only where every one of
        # them is in the key's scope (server/auth/scoping.py); elsewhere the scope as
        # resolved now.
        follows = {
            login for login in self._sources() if not entries and follows_new_accounts(login)
        }
        for login in follows:
            by_login.setdefault(login, [])
        if not by_login:
            # Nothing selected (a key whose scope holds no account here): an empty
            # stream, over a login the key may hear about so that heartbeats flow, or over
            # none at all (its SubscriptionStatus, then nothing).
            sources = self._sources()
            if not sources:
                raise LiveNotReady("no login is configured: there is nothing to stream")
            for login in visible_logins(sources)[:1]:
                by_login[login] = []
        logins = list(by_login)
        asked = asked_positions(request, logins)
        await self._ready(by_login, asked, context)
        parts = [
            LoginPart(
                login,
                by_login[login],
                login_request(request, asked.get(login)),
                asked=asked.get(login),
                follow=login in follows,
            )
            for login in logins
        ]
        if len(parts) == 1:
            session = self._open_one(parts[0])
            context.add_done_callback(cast(Any, lambda _context: session.close()))
            messages = self._one_login(parts[0], session)
        else:
            merged = MergedStream(
                parts,
                self._sources,
                status_of=self._status_of,
                check_interval=self._check_interval,
            )
            merged.open()
            context.add_done_callback(cast(Any, lambda _context: merged.close()))
            messages = merged.messages()
        write = context.write
        try:
            async for message in messages:
                await write(message)
        except grpc.aio.AbortError:
            raise
        except (StreamError, grpc.aio.BaseError):
            if context.cancelled() or context.done():
                return  # the caller is gone: there is nobody to tell why
            raise
        finally:
            await messages.aclose()  # the sessions close now, not when collected

    async def _ready(
        self, logins: Iterable[str], asked: Mapping[str, Position], context: Context
    ) -> None:
        """Let each login's live state reach the position a resume names (a replica that
        mirrors the holder may be a few milliseconds behind what the subscriber saw), and
        send what it numbered (a holder's state may be one delta-log append ahead of what
        it sent), so that the stream opens exactly where its snapshot is."""
        left = context.time_remaining()
        within = RESUME_REACH_S if left is None else min(RESUME_REACH_S, left / 2)
        sources = self._sources()
        waits = [
            source.streams.reach(epoch, sequence, within)
            for login, (epoch, sequence) in asked.items()
            if (source := sources.get(login)) is not None
        ]
        waits += [
            source.streams.settle(within)
            for login in logins
            if (source := sources.get(login)) is not None
        ]
        await asyncio.gather(*waits)

    def _open_one(self, part: LoginPart) -> LoginSession:
        source = self._sources().get(part.login)
        if source is None:
            raise LoginRemoved(part.login)
        part.session = source.streams.open(
            part.request, part.accounts, follow_new_accounts=part.follow
        )
        return part.session

    async def _one_login(
        self, part: LoginPart, session: LoginSession
    ) -> AsyncGenerator[bytes, None]:
        """A stream over one login: that login's stream as it always was, with
        ``resume_from`` and ``login`` added to its end status."""
        try:
            async for message in session.messages():
                yield message
        except StreamError as error:
            if part.login not in self._sources() and not isinstance(error, LoginRemoved):
                error = LoginRemoved(part.login)
            # Everything the session yielded was written: it raises only when resumed.
            sent = session.resume_point_after(session.last_sequence)
            position = (session.epoch, sent) if session.opened else part.asked
            positions: Mapping[str, Position] = {part.login: position} if position else {}
            raise with_positions(error, part.login, positions) from None
        finally:
            session.close()
