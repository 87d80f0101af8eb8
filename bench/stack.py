"""The processes a run measures: the simulator, the gateways and the bare grpc.aio server,
each in its own process, started once per run and stopped at the end."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import BenchConfig
from bench.gateway_proc import GatewayHandle, start_gateway, start_one
from bench.procs import Child, start_child
from bench.sim_proc import SimHandle, start_sim

logger = logging.getLogger(__name__)


class SkipScenario(Exception):
    """A scenario cannot run in this checkout (a component it measures is missing)."""


@dataclass
class Stack:
    config: BenchConfig
    workdir: Path
    floor: Child
    sim: SimHandle | None = None
    gateway: GatewayHandle | None = None
    missing: dict[str, str] = field(default_factory=dict)
    restarts: int = 0

    @property
    def floor_target(self) -> str:
        return f"127.0.0.1:{self.floor.ready['port']}"

    def children(self) -> list[Child]:
        found = [self.floor]
        if self.sim is not None:
            found.append(self.sim.child)
        if self.gateway is not None:
            found += [self.gateway.child, self.gateway.cache_child]
        return found

    def dead(self) -> list[str]:
        """Long-lived processes that have exited (they should run for the whole bench)."""
        return [
            f"{c.name} (exit {c.proc.returncode})"
            for c in self.children()
            if c.proc.returncode is not None
        ]

    async def revive(self) -> list[str]:
        """Restart any gateway or floor process that died, so later scenarios still measure
        something; returns what was restarted. A dead simulator is not revived."""
        restarted: list[str] = []
        if self.floor.proc.returncode is not None:
            self.floor = await start_child("floor", "bench.floors.server", [])
            restarted.append("floor")
        gateway, sim = self.gateway, self.sim
        if gateway is not None and sim is not None and sim.child.proc.returncode is None:
            if gateway.child.proc.returncode is not None:
                gateway.child = await start_one("gateway", sim, self.workdir, live=True)
                gateway.target = gateway.child.ready["address"]
                restarted.append("gateway")
            if gateway.cache_child.proc.returncode is not None:
                gateway.cache_child = await start_one(
                    "gateway-cache", sim, self.workdir, live=False
                )
                gateway.cache_target = gateway.cache_child.ready["address"]
                restarted.append("gateway-cache")
        self.restarts += len(restarted)
        return restarted

    def require_sim(self) -> SimHandle:
        if self.sim is None:
            raise SkipScenario(f"simulator not available: {self.missing.get('simulator')}")
        return self.sim

    def require_gateway(self) -> GatewayHandle:
        if self.gateway is None:
            raise SkipScenario(f"gateway not available: {self.missing.get('gateway')}")
        return self.gateway

    async def aclose(self) -> None:
        for c in reversed(self.children()):
            await c.stop()
        if self.sim is not None:
            await self.sim.aclose()

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, config: BenchConfig, workdir: Path) -> AsyncIterator[Stack]:
        floor = await start_child("floor", "bench.floors.server", [])
        stack = cls(config=config, workdir=workdir, floor=floor)
        try:
            sim = await start_sim(config, stack.missing)
            if sim is not None:
                stack.sim = sim
                stack.gateway = await start_gateway(config, sim, workdir, stack.missing)
            else:
                stack.missing["gateway"] = "it needs the simulator"
            yield stack
        finally:
            await stack.aclose()
