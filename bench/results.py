"""The result document: one JSON file per run, ``bench/results/<date>.json``.

Schema (version 1)::

    {"schema": 1, "mode", "command", "started", "finished", "elapsed_s",
     "machine": {...}, "config": {...},
     "scenarios": {"<name>": {"rows": [...], "notes": [...], "elapsed_s": float}},
     "skipped": {"<name>": "reason"}, "errors": {"<name>": "traceback text"},
     "incidents": ["a process of the system under test died during <scenario>", ...]}

Rows are flat JSON objects; docs/BENCHMARKS.md and the plots are generated from this file
alone, so a result can be re-rendered later with ``python -m bench --render FILE``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1


@dataclass
class ScenarioResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    # Raw samples for plots (kept out of the tables).
    samples: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "notes": self.notes,
            "elapsed_s": self.elapsed_s,
            "samples": self.samples,
        }


@dataclass
class RunResult:
    mode: str
    command: str
    machine: dict[str, Any]
    config: dict[str, Any]
    started: str = field(default_factory=lambda: utc_now().isoformat(timespec="seconds"))
    finished: str = ""
    elapsed_s: float = 0.0
    scenarios: dict[str, ScenarioResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Processes of the system under test that died mid-run (and were restarted).
    incidents: list[str] = field(default_factory=list)

    def scenario(self, name: str) -> ScenarioResult:
        return self.scenarios.setdefault(name, ScenarioResult())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "mode": self.mode,
            "command": self.command,
            "started": self.started,
            "finished": self.finished,
            "elapsed_s": self.elapsed_s,
            "machine": self.machine,
            "config": self.config,
            "scenarios": {k: v.to_json() for k, v in self.scenarios.items()},
            "skipped": self.skipped,
            "errors": self.errors,
            "incidents": self.incidents,
        }


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _clean(value: Any) -> Any:
    """NaN and infinities become null: the file stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def result_path(directory: Path, mode: str, when: dt.datetime) -> Path:
    suffix = "" if mode == "full" else f"-{mode}"
    return directory / f"{when.date().isoformat()}{suffix}.json"


def write(result: RunResult, directory: Path) -> Path:
    """Write the run atomically to ``directory/<date>[-mode].json`` and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = result_path(directory, result.mode, dt.datetime.fromisoformat(result.started))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean(result.to_json()), indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: unknown schema {data.get('schema')!r}")
    return data
