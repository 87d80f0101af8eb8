"""sim.control: the Python control API for tests, the demo and benchmarks.

Every method is synchronous and returns JSON-ready values, so /_sim/<method> exposes the very
same operations over HTTP. Unknown ids raise KeyError; bad arguments raise ValueError.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from trading_gateway.simulator.activity import Drivers, market_step, move_price
from trading_gateway.simulator.catalog import ContractSpec
from trading_gateway.simulator.config import EndpointLimit, SimUser
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.faults import TimeoutRule
from trading_gateway.simulator.frames import event, normalize_endpoint
from trading_gateway.simulator.ledger import account_ledger
from trading_gateway.simulator.orders import EngineError
from trading_gateway.simulator.sessions import Session
from trading_gateway.simulator.sockets import Conn
from trading_gateway.simulator.trading_routes import parse_price

logger = logging.getLogger(__name__)

SOCKET_KINDS = ("all", "user", "md")


def _endpoint(endpoint: str | None) -> str | None:
    return None if endpoint is None else normalize_endpoint(endpoint)


class Control:
    def __init__(self, core: SimCore, drivers: Drivers) -> None:
        self._core = core
        self._drivers = drivers

    # ---- latency ----------------------------------------------------------------------------

    def set_latency(
        self,
        ms: float = 0.0,
        jitter_ms: float = 0.0,
        endpoint: str | None = None,
        account_id: int | None = None,
    ) -> None:
        """Delay answers by ms (+ uniform jitter): globally, for one endpoint, or for every call
        touching one account (a multi-account call waits for its slowest account). 0 removes."""
        if ms < 0 or jitter_ms < 0:
            raise ValueError("latency must not be negative")
        self._core.faults.set_latency(ms, jitter_ms, _endpoint(endpoint), account_id)

    def clear_latency(self) -> None:
        self._core.faults.clear_latency()

    # ---- faults -----------------------------------------------------------------------------

    def set_error_rate(self, rate: float, status: int = 500, endpoint: str | None = None) -> None:
        """Fail this fraction of calls (to one endpoint, or to all but auth/*) with `status`."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        rates = self._core.faults.error_rates
        if rate == 0:
            rates.pop(_endpoint(endpoint), None)
        else:
            rates[_endpoint(endpoint)] = (rate, int(status))

    def fail_account(self, account_id: int, status: int = 500) -> None:
        """Every call touching this account (deps, ldeps, item, list, snapshot, orders) fails."""
        self._require_account(account_id)
        self._core.faults.failing_accounts[account_id] = int(status)

    def restore_account(self, account_id: int) -> None:
        self._core.faults.failing_accounts.pop(account_id, None)

    def set_timeout(
        self, endpoint: str | None = None, account_id: int | None = None, count: int | None = None
    ) -> None:
        """Matching calls hang (no answer) until clear_faults() or the client gives up."""
        self._core.faults.timeouts.append(TimeoutRule(_endpoint(endpoint), account_id, count))

    def burst_429(
        self, count: int, endpoint: str | None = None, user: str | SimUser | None = None
    ) -> None:
        """The next `count` calls (to one endpoint, or any but auth/*; by one user, or anyone)
        get an empty 429."""
        key = (_endpoint(endpoint), self._user_id(user))
        self._core.faults.bursts[key] = int(count)

    def penalize(
        self,
        endpoint: str,
        count: int = 1,
        p_time: float = 1.0,
        captcha: bool = False,
        user: str | SimUser | None = None,
    ) -> None:
        """The next `count` calls to `endpoint` (by one user, or anyone) get a p-ticket penalty
        of p_time seconds."""
        key = (_endpoint(endpoint), self._user_id(user))
        self._core.faults.penalties[key] = (int(count), float(p_time), captcha)

    def clear_faults(self) -> None:
        """Remove error rates, failing accounts, timeouts (releasing hung calls), 429 bursts and
        pending penalties. Latency stays (see clear_latency)."""
        self._core.faults.clear()

    # ---- rate limits ------------------------------------------------------------------------

    def set_endpoint_limit(
        self,
        endpoint: str,
        limit: int,
        window_s: float = 3600.0,
        p_time: float = 15.0,
        failures_only: bool = False,
        captcha: bool = False,
    ) -> None:
        """A rolling-window endpoint limit; overuse gets a p-ticket penalty."""
        self._core.endpoint_limits.limits[normalize_endpoint(endpoint)] = EndpointLimit(
            limit=int(limit),
            window_s=float(window_s),
            p_time=float(p_time),
            failures_only=failures_only,
            captcha=captcha,
        )

    def clear_endpoint_limit(self, endpoint: str) -> None:
        self._core.endpoint_limits.limits.pop(normalize_endpoint(endpoint), None)

    def set_user_limits(self, limits: list[list[float]]) -> None:
        """User-level limits as [[count, window_s], ...]; overuse gets 429 with an empty body."""
        pairs = tuple((int(count), float(window)) for count, window in limits)
        self._core.user_limits.limits = pairs
        self._core.user_limits.reset()

    def set_ip_limits(self, limits: list[list[float]]) -> None:
        """Per-IP limits as [[count, window_s], ...], one budget over every user's calls from a
        client subnet; overuse gets 429 with an empty body. [] turns them off."""
        pairs = tuple((int(count), float(window)) for count, window in limits)
        self._core.ip_limits.limits = pairs
        self._core.ip_limits.reset()

    def reset_limits(self) -> None:
        """Forget every rate-limit window and outstanding p-ticket."""
        self._core.endpoint_limits.reset()
        self._core.user_limits.reset()
        self._core.ip_limits.reset()

    # ---- sockets and sessions ---------------------------------------------------------------

    def _conns(self, kind: str, user: str | SimUser | None = None) -> list[Conn]:
        if kind not in SOCKET_KINDS:
            raise ValueError(f"kind must be one of {SOCKET_KINDS}")
        conns: list[Conn] = []
        if kind in ("all", "user"):
            conns.extend(self._core.user_conns)
        if kind in ("all", "md"):
            conns.extend(self._core.md_conns)
        user_id = self._user_id(user)
        if user_id is None:
            return conns
        return [c for c in conns if c.session is not None and c.session.user_id == user_id]

    def drop_sockets(
        self, kind: str = "all", abrupt: bool = True, user: str | SimUser | None = None
    ) -> int:
        """Close every socket (of one user, or everyone's): abruptly (TCP reset, no frame) or
        with a c frame and close."""
        conns = self._conns(kind, user)
        for conn in conns:
            if abrupt:
                conn.abort()
            else:
                conn.request_close(1000, "Closed by simulator")
        return len(conns)

    def send_shutdown(
        self,
        reason: str = "Maintenance",
        kind: str = "all",
        close: bool = True,
        user: str | SimUser | None = None,
    ) -> int:
        """Send {"e":"shutdown","d":{"reasonCode":reason,...}} (to one user's sockets, or
        everyone's), then (by default) close."""
        message = event("shutdown", {"reasonCode": reason, "reason": f"Server shutdown: {reason}"})
        conns = self._conns(kind, user)
        for conn in conns:
            conn.push(message)
            if close:
                conn.request_close(1000, reason)
        return len(conns)

    def close_session_sockets(self, session: Session) -> None:
        for conn in self._conns("all"):
            if conn.session is session:
                conn.request_close(1000, "Session closed")

    def expire_tokens(self, user: str | SimUser | None = None) -> int:
        """Every token (of one user, or everyone's) expires now: REST calls get 401 and renewal
        fails until a new login."""
        return self._core.sessions.expire_all(self._user_id(user))

    def revoke_sessions(self, user: str | SimUser | None = None) -> int:
        """Revoke every live session (of one user, or everyone's); their sockets close."""
        user_id = self._user_id(user)
        sessions = [
            s for s in self._core.sessions.active() if user_id is None or s.user_id == user_id
        ]
        for session in sessions:
            self._core.sessions.revoke(session)
        return len(sessions)

    def _user_id(self, user: str | SimUser | None) -> int | None:
        """The id of a user named by its login name or its SimUser; None stays None (anyone)."""
        if user is None:
            return None
        name = user.name if isinstance(user, SimUser) else user
        if not isinstance(name, str):
            raise ValueError("user must be a user name or a SimUser")
        known = self._core.world.passwords.get(name)
        if known is None:
            raise KeyError(f"unknown user {name}")
        return known[1]

    # ---- activity ---------------------------------------------------------------------------

    def _contract(self, symbol_or_contract_id: str | int) -> ContractSpec:
        contract = self._core.market.resolve(symbol_or_contract_id)
        if contract is None:
            raise KeyError(f"unknown symbol {symbol_or_contract_id}")
        return contract

    def _require_account(self, account_id: int) -> None:
        if account_id not in self._core.engine.positions:
            raise KeyError(f"unknown account {account_id}")

    def place_order(
        self,
        account_id: int,
        symbol: str | int,
        action: str = "Buy",
        qty: int = 1,
        order_type: str | None = None,
        price: float | str | None = None,
        stop_price: float | str | None = None,
    ) -> int:
        """Place an order for an account (Market when no price, else Limit); returns its id."""
        self._require_account(account_id)
        contract = self._contract(symbol)
        kind = order_type or ("Market" if price is None else "Limit")
        try:
            return self._core.engine.place_order(
                account_id,
                contract,
                action,
                int(qty),
                kind,
                price=parse_price(price, "price"),
                stop_price=parse_price(stop_price, "stop_price"),
            )
        except EngineError as exc:
            raise ValueError(f"{exc.reason}: {exc.text}") from exc

    def fill_order(
        self, order_id: int, price: float | str | None = None, qty: int | None = None
    ) -> int:
        """Fill a working order (all, or `qty`) at `price` (default: its limit, or the touch)."""
        try:
            return self._core.engine.fill(order_id, qty, parse_price(price, "price"))
        except EngineError as exc:
            raise ValueError(f"{exc.reason}: {exc.text}") from exc

    def cancel_order(self, order_id: int) -> int:
        """Cancel a working order; returns the cancel command id."""
        try:
            return self._core.engine.cancel(order_id)
        except EngineError as exc:
            raise ValueError(f"{exc.reason}: {exc.text}") from exc

    def move_price(self, symbol_or_contract_id: str | int, price: float | str) -> float:
        """Trade the contract at `price` (snapped to the tick grid); working orders it crosses
        fill; md subscribers get a quote. Returns the new last price."""
        contract = self._contract(symbol_or_contract_id)
        value = parse_price(price, "price")
        if value is None or value <= 0:
            raise ValueError("price must be positive")
        return float(move_price(self._core, contract.contract_id, value))

    def price(self, symbol_or_contract_id: str | int) -> float:
        return float(self._core.market.last(self._contract(symbol_or_contract_id).contract_id))

    def set_activity(self, rate_per_s: float) -> None:
        """Random orders/fills/cancels per second across all accounts; 0 stops."""
        self._drivers.set_rate(float(rate_per_s))

    def random_activity(self, count: int = 1) -> dict[str, int]:
        """Run `count` random actions now (deterministic for a seed); returns counts by kind."""
        return self._drivers.step(int(count))

    def set_price_interval(self, seconds: float) -> None:
        """Seconds between random-walk steps; 0 freezes prices."""
        self._drivers.set_price_interval(float(seconds))

    def market_step(self, count: int = 1) -> list[int]:
        """Run `count` random-walk steps now; returns the contract ids that moved."""
        moved: set[int] = set()
        for _ in range(int(count)):
            moved.update(market_step(self._core))
        return sorted(moved)

    def delete_entity(self, entity_type: str, entity_id: int) -> None:
        """Remove an entity and publish Deleted (refused for working orders, open positions)."""
        if entity_type not in self._core.store.tables:
            raise KeyError(f"unknown entity type {entity_type}")
        self._core.engine.delete(entity_type, int(entity_id))

    # ---- reads ------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        core = self._core
        calls = dict(sorted(core.calls.items()))
        return {
            "calls": calls,
            "total": sum(calls.values()),
            "sessions": core.sessions.count(),
            "users": self.user_counters(),
            "sockets": {"user": len(core.user_conns), "md": len(core.md_conns)},
            "synced_sockets": len(core.hub.subscribers),
            "md_subscriptions": sum(len(s) for s in core.md_subscribers.values()),
            "events": core.hub.seq,
            "activity_actions": self._drivers.actions,
        }

    def user_counters(self) -> dict[str, dict[str, int]]:
        """Per user name: live sessions, successful logins (since the last reset) and accounts."""
        core = self._core
        active: Counter[int] = Counter(s.user_id for s in core.sessions.active())
        return {
            str(user["name"]): {
                "user_id": int(user_id),
                "sessions": active[user_id],
                "logins": core.logins[user_id],
                "accounts": len(core.accounts_of(user_id)),
            }
            for user_id, user in core.world.users.items()
        }

    def users(self) -> list[dict[str, Any]]:
        """Every user: id, name and its account ids (passwords stay in the config)."""
        core = self._core
        return [
            {"id": user_id, "name": user["name"], "accountIds": core.accounts_of(user_id)}
            for user_id, user in core.world.users.items()
        ]

    def reset_counters(self) -> None:
        self._core.calls.clear()
        self._core.logins.clear()

    def event_log(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Published props events with seq > since, oldest first."""
        return [e.as_dict() for e in self._core.hub.entries(int(since), limit)]

    def last_seq(self) -> int:
        return self._core.hub.seq

    def ledger(self, account_id: int | None = None) -> list[dict[str, Any]]:
        """The engine's true figures per account (all accounts, or one): cash, realized, open
        PnL at the mark, net liq, total PnL, margins (``reported`` doubles and ``exact``
        text), positions with netPos and netPrice, and orders with status and fills."""
        engine = self._core.engine
        if account_id is None:
            return [account_ledger(engine, a) for a in self._core.store.account_ids()]
        self._require_account(int(account_id))
        return [account_ledger(engine, int(account_id))]

    def account_ids(self) -> list[int]:
        return self._core.store.account_ids()

    def accounts(self) -> list[dict[str, Any]]:
        """The stored account records. Read them only: use set_account_active to change one."""
        return self._core.store.accounts.values()

    def set_account_active(self, account_id: int, active: bool) -> None:
        """Open or close an account upstream: account/list shows it, and props publish it."""
        self._require_account(account_id)
        self._core.engine.set_account_active(account_id, bool(active))

    def contracts(self) -> list[dict[str, Any]]:
        market = self._core.market
        return [
            {
                "id": c.contract_id,
                "name": c.name,
                "product": c.spec.root,
                "valuePerPoint": float(c.value_per_point),
                "tickSize": float(c.tick),
                "isFront": c.is_front,
                "price": float(market.last(c.contract_id)),
                "mark": float(market.mark(c.contract_id)),
            }
            for c in market.contracts.values()
        ]
