"""Injected latency and faults. Rules name an endpoint in normalized form ("position/ldeps");
a rule without an endpoint applies to every endpoint except auth/* (so a global error rate
does not stop logins unless asked to). 429 bursts and penalties may also name one user (by
user id), so a test can break one login of a several-user simulator and leave the others be;
a rule without a user applies to every user."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True, frozen=True)
class Latency:
    ms: float
    jitter_ms: float = 0.0

    def sample(self, rng: random.Random) -> float:
        jitter = rng.uniform(0.0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return max(0.0, (self.ms + jitter) / 1000.0)


@dataclass(slots=True)
class TimeoutRule:
    endpoint: str | None
    account_id: int | None
    remaining: int | None


@dataclass(slots=True, frozen=True)
class Fault:
    """What to do instead of answering: kind is "hang", "429", "penalty" or "error"."""

    kind: str
    status: int = 0
    p_time: float = 0.0
    captcha: bool = False


HANG = Fault("hang")
TOO_MANY = Fault("429", status=429)

# A counted rule's key: (endpoint or None for "any but auth/*", user id or None for "anyone").
RuleKey = tuple[str | None, int | None]


class Faults:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.latency: Latency | None = None
        self.endpoint_latency: dict[str, Latency] = {}
        self.account_latency: dict[int, Latency] = {}
        self.error_rates: dict[str | None, tuple[float, int]] = {}
        self.failing_accounts: dict[int, int] = {}
        self.timeouts: list[TimeoutRule] = []
        self.bursts: dict[RuleKey, int] = {}
        self.penalties: dict[RuleKey, tuple[int, float, bool]] = {}
        self.release = asyncio.Event()

    # ---- latency ----------------------------------------------------------------------------

    def set_latency(
        self, ms: float, jitter_ms: float, endpoint: str | None, account_id: int | None
    ) -> None:
        rule = Latency(ms, jitter_ms) if ms > 0 or jitter_ms > 0 else None
        if account_id is not None:
            _assign(self.account_latency, account_id, rule)
        elif endpoint is not None:
            _assign(self.endpoint_latency, endpoint, rule)
        else:
            self.latency = rule

    def clear_latency(self) -> None:
        self.latency = None
        self.endpoint_latency.clear()
        self.account_latency.clear()

    def delay(self, endpoint: str, accounts: Sequence[int]) -> float:
        """Seconds to wait: the endpoint's rule (else the global one), or the slowest account."""
        rule = self.endpoint_latency.get(endpoint, self.latency)
        delay = rule.sample(self._rng) if rule is not None else 0.0
        if self.account_latency and accounts:
            for account_id in accounts:
                slow = self.account_latency.get(account_id)
                if slow is not None:
                    delay = max(delay, slow.sample(self._rng))
        return delay

    # ---- faults -----------------------------------------------------------------------------

    def clear(self) -> None:
        self.error_rates.clear()
        self.failing_accounts.clear()
        self.timeouts.clear()
        self.bursts.clear()
        self.penalties.clear()
        self.release.set()
        self.release = asyncio.Event()

    def decide(
        self,
        endpoint: str,
        accounts: Sequence[int],
        allow_penalty: bool = True,
        user_id: int | None = None,
    ) -> Fault | None:
        """The fault this call (by user `user_id`, None when unknown) meets, if any. Counted
        rules are used up here."""
        is_auth = endpoint.startswith("auth/")
        if self.timeouts and self._take_timeout(endpoint, accounts, is_auth):
            return HANG
        if self.bursts:
            key = _matching(self.bursts, endpoint, is_auth, user_id, lambda n: n > 0)
            if key is not None:
                self.bursts[key] -= 1
                return TOO_MANY
        if self.penalties and allow_penalty:
            key = _matching(self.penalties, endpoint, is_auth, user_id, lambda p: p[0] > 0)
            if key is not None:
                remaining, p_time, captcha = self.penalties[key]
                self.penalties[key] = (remaining - 1, p_time, captcha)
                return Fault("penalty", p_time=p_time, captcha=captcha)
        if self.failing_accounts and accounts:
            for account_id in accounts:
                status = self.failing_accounts.get(account_id)
                if status is not None:
                    return Fault("error", status=status)
        if self.error_rates:
            rule = self.error_rates.get(endpoint)
            if rule is None and not is_auth:
                rule = self.error_rates.get(None)
            if rule is not None and self._rng.random() < rule[0]:
                return Fault("error", status=rule[1])
        return None

    def _take_timeout(self, endpoint: str, accounts: Sequence[int], is_auth: bool) -> bool:
        for rule in self.timeouts:
            if rule.remaining is not None and rule.remaining <= 0:
                continue
            if rule.endpoint is None and is_auth:
                continue
            if rule.endpoint is not None and rule.endpoint != endpoint:
                continue
            if rule.account_id is not None and rule.account_id not in accounts:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            return True
        return False

    async def hang(self, limit: float) -> None:
        """Wait until faults are cleared (or `limit` seconds pass)."""
        release = self.release
        try:
            async with asyncio.timeout(limit):
                await release.wait()
        except TimeoutError:
            pass


def _matching(
    rules: dict[RuleKey, V],
    endpoint: str,
    is_auth: bool,
    user_id: int | None,
    live: Callable[[V], bool],
) -> RuleKey | None:
    """The most specific live rule for this call: its endpoint before any endpoint, its user
    before anyone. An endpoint-less rule never touches auth/*; a user's rule never touches a
    call whose user is unknown."""
    endpoints: tuple[str | None, ...] = (endpoint,) if is_auth else (endpoint, None)
    users: tuple[int | None, ...] = (None,) if user_id is None else (user_id, None)
    for rule_endpoint in endpoints:
        for rule_user in users:
            key = (rule_endpoint, rule_user)
            rule = rules.get(key)
            if rule is not None and live(rule):
                return key
    return None


def _assign(table: dict[K, V], key: K, value: V | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
