"""The deployment's logins: one ``LoginRuntime`` per spec, in order, and reloads.

``apply(specs)`` makes the running set equal to ``specs``: a login whose spec is gone is
taken out of the mapping first (so its ending streams can tell it was removed), drained
and closed; a changed spec's runtime stays in the mapping, unavailable ("being
replaced"), while it drains and closes, and its successor takes its place in one step;
a new one is started; the others are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from trading_gateway.server.logins.health import DeploymentHealth
from trading_gateway.server.logins.runtime import LoginRuntime
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.setting_error import SettingError


@dataclass(frozen=True, slots=True)
class LoginChanges:
    """What a reload did, by login name."""

    added: list[str]
    removed: list[str]
    replaced: list[str]

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("replaced", self.replaced),
            )
            if names
        ]
        return "; ".join(parts) or "no change"


def plan_changes(current: Mapping[str, LoginRuntime], specs: Sequence[LoginSpec]) -> LoginChanges:
    wanted = {spec.name: spec for spec in specs}
    return LoginChanges(
        added=[s.name for s in specs if s.name not in current],
        removed=[name for name in current if name not in wanted],
        replaced=[
            name for name, rt in current.items() if name in wanted and rt.spec != wanted[name]
        ],
    )


class Deployment:
    """The running logins by name; ``build`` makes one runtime from a spec."""

    def __init__(
        self,
        specs: Sequence[LoginSpec],
        build: Callable[[LoginSpec], LoginRuntime],
        health: DeploymentHealth,
    ) -> None:
        self._build = build
        self._health = health
        self._runtimes: dict[str, LoginRuntime] = {spec.name: build(spec) for spec in specs}

    @property
    def logins(self) -> Mapping[str, LoginRuntime]:
        """The logins now, by name, in order (a read-only view that follows reloads)."""
        return MappingProxyType(self._runtimes)

    @property
    def first(self) -> LoginRuntime:
        return next(iter(self._runtimes.values()))

    def __iter__(self) -> Iterator[LoginRuntime]:
        return iter(list(self._runtimes.values()))

    async def start(self) -> None:
        for runtime in self:
            await runtime.start()

    async def rebuild(self, name: str) -> LoginRuntime | None:
        """Close login ``name``'s runtime and build it again from the same spec, in the same
        place (a replica's role changed). A follower's live state and streams pass to the new
        runtime; a holder's streams end with a resumable status. Until the new runtime is
        in, its reads refuse as closing. None if the login is gone."""
        old = self._runtimes.get(name)
        if old is None:
            return None
        old.hand_over()
        await old.drain()
        await old.aclose()
        if self._runtimes.get(name) is not old:
            return None  # a reload replaced or removed it meanwhile
        runtime = self._build(old.spec)
        self._runtimes[name] = runtime
        await runtime.start()
        return runtime

    async def apply(self, specs: Sequence[LoginSpec]) -> LoginChanges:
        if not specs:
            raise SettingError(
                "logins", "none", "a reload would leave the gateway without a login", "keep one"
            )
        changes = plan_changes(self._runtimes, specs)
        for name in changes.removed:
            runtime = self._runtimes.pop(name)  # out of the deployment before it drains
            await runtime.drain()
            await runtime.aclose()
            await self._health.login_gone(name)
        wanted = {spec.name: spec for spec in specs}
        for name in changes.replaced:
            # It stays listed, answering "being replaced" (unavailable_logins), until its
            # successor takes its place in one step: never silently absent from a read.
            old = self._runtimes[name]
            old.mark_replacing()
            await old.drain()
            await old.aclose()
            runtime = self._build(wanted[name])
            self._runtimes[name] = runtime
            await runtime.start()
        for spec in specs:
            if spec.name not in self._runtimes:
                runtime = self._build(spec)
                self._runtimes[spec.name] = runtime
                await runtime.start()
        order = {spec.name: index for index, spec in enumerate(specs)}
        items = sorted(self._runtimes.items(), key=lambda item: order[item[0]])
        self._runtimes.clear()
        self._runtimes.update(items)
        return changes
