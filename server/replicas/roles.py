"""ReplicaRoles: this process's role for every login under GATEWAY_REPLICAS=redis.

It owns the Redis client of the replica wiring (bounded calls, connection.py), the fenced
token store (token_store.py) and one ``LoginRole`` per login (login_role.py). When a role
changes, ``rebuild(login)`` (the gateway's) runs in one task per login, after the change
and again for any change that came meanwhile, so a login is never rebuilt twice at once
and the last change always wins. ``aclose()`` stops those tasks first, then every keeper
(each releases its lease), then the Redis client.

Every replica serves LIVE reads and StreamUpdates: a follower mirrors the holder's live
state through the login's delta log (replicated_live.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.login_role import MAX_OP_TIMEOUT_S, LoginRole
from trading_gateway.server.replicas.token_errors import TokenKeyMissing
from trading_gateway.server.replicas.token_store import TokenStore
from trading_gateway.server.setting_error import SettingError

logger = logging.getLogger(__name__)

Rebuild = Callable[[str], Awaitable[object]]
Resolve = Callable[[Sequence[str], Deadline], Awaitable[list[LoginAccount]]]


class _Runtime(Protocol):
    @property
    def follower(self) -> bool: ...


def new_replica_id() -> str:
    """Unique per process: host, pid and a random part (a reused pid is not the same)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class ReplicaRoles:
    """Every login's role on this replica (see the module docstring)."""

    def __init__(self, settings: GatewaySettings, rebuild: Rebuild) -> None:
        if not settings.redis_url:
            raise SettingError(
                "REDIS_URL", "unset", "GATEWAY_REPLICAS=redis needs Redis", "set REDIS_URL"
            )
        self.replica_id = new_replica_id()
        self._settings = settings
        self._rebuild = rebuild
        self._redis = bounded_redis(
            settings.redis_url,
            timeout=min(MAX_OP_TIMEOUT_S, settings.lease_ttl_s / 4),
            name=f"trading-gateway-replica:{self.replica_id}",
        )
        try:
            self._store = TokenStore.from_settings(
                self._redis, settings, settings.deployment, fenced=True
            )
        except TokenKeyMissing as exc:
            raise SettingError(
                "GATEWAY_TOKEN_KEY",
                "unset",
                f"GATEWAY_REPLICAS=redis shares each login's Tradovate token through Redis ({exc})",
                "set GATEWAY_TOKEN_KEY (the same on every replica), or "
                "GATEWAY_TOKEN_PLAINTEXT=true for a private, trusted Redis",
            ) from None
        self._roles: dict[str, LoginRole] = {}
        self._dirty: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        self._closed = False

    def role(self, login: str) -> LoginRole:
        """``login``'s role, made (and started, once the roles are) on first use."""
        role = self._roles.get(login)
        if role is None:
            role = LoginRole(
                login,
                redis=self._redis,
                store=self._store,
                deployment=self._settings.deployment,
                replica_id=self.replica_id,
                ttl=self._settings.lease_ttl_s,
                poll=self._settings.lease_poll_s,
                on_change=self._changed,
            )
            self._roles[login] = role
            if self._started:
                role.start()
        return role

    async def forget(self, login: str) -> None:
        """``login`` left the deployment: stop its keeper and release its lease, so that a
        replica that still runs it can hold it."""
        role = self._roles.pop(login, None)
        task = self._tasks.pop(login, None)
        self._dirty.discard(login)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if role is not None:
            await role.aclose()

    def start(self) -> None:
        self._started = True
        logger.info(
            "replicas over Redis: this replica is %s (deployment %r); a login's session is "
            "taken over within %.1f s of its holder's death",
            self.replica_id,
            self._settings.deployment,
            self._settings.lease_ttl_s + self._settings.lease_poll_s,
        )
        for role in self._roles.values():
            role.start()

    def _changed(self, login: str) -> None:
        if self._closed:
            return
        self._dirty.add(login)
        task = self._tasks.get(login)
        if task is None or task.done():
            self._tasks[login] = asyncio.get_running_loop().create_task(
                self._settle(login), name=f"replica-role:{login}"
            )

    async def _settle(self, login: str) -> None:
        while login in self._dirty and not self._closed:
            self._dirty.discard(login)
            try:
                await self._rebuild(login)
            except Exception:
                logger.exception("login %r: rebuilding it for its new role failed", login)

    async def stop_changes(self) -> None:
        """No more rebuilds: the gateway is stopping (a rebuild under way is cancelled)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.stop_changes()
        for role in self._roles.values():
            await role.aclose()
        await self._redis.aclose()
