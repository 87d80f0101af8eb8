"""What every scenario gets: the configuration, a scratch folder, and the running processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config import BenchConfig
from bench.results import RunResult

if TYPE_CHECKING:
    from bench.stack import Stack


@dataclass
class Context:
    config: BenchConfig
    workdir: Path
    stack: Stack
    run: RunResult
    # Responses captured from the gateway, shared between scenarios (e.g. for the floors).
    shared: dict[str, Any] = field(default_factory=dict)
