"""The benchmark command line: ``python -m bench [--quick] [--only NAME ...]``.

Runs every scenario in order, writes ``bench/results/<date>.json``, the PNG plots beside it,
and (for full runs, or when ``--docs`` is given) regenerates docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import plots, report_md, results
from bench.config import MODES, BenchConfig, with_overrides
from bench.context import Context
from bench.machine import describe
from bench.results import ScenarioResult
from bench.stack import SkipScenario, Stack

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
Scenario = Callable[[Context, ScenarioResult], Awaitable[None]]


def scenarios() -> dict[str, Scenario]:
    from bench.scenarios import (
        economy,
        fresh,
        logins,
        memory,
        replicas,
        snapshot,
        streaming,
        throughput,
    )

    return {
        "fresh": fresh.run,
        "snapshot": snapshot.run,
        "logins": logins.run,
        "streaming": streaming.run,
        "throughput": throughput.run,
        "economy": economy.run,
        "memory": memory.run,
        "replicas": replicas.run,
    }


async def run_all(
    config: BenchConfig, only: list[str], run: results.RunResult, workdir: Path
) -> None:
    table = scenarios()
    names = only or [name for name in table if name not in config.left_out]
    async with Stack.start(config, workdir) as stack:
        ctx = Context(config=config, workdir=workdir, stack=stack, run=run)
        for name in names:
            out = run.scenario(name)
            started = time.monotonic()
            logger.info("scenario %s: start", name)
            try:
                await table[name](ctx, out)
            except SkipScenario as exc:
                run.skipped[name] = str(exc)
                logger.warning("scenario %s skipped: %s", name, exc)
            except Exception:
                run.errors[name] = traceback.format_exc()
                logger.exception("scenario %s failed", name)
            out.elapsed_s = time.monotonic() - started
            dead = stack.dead()
            if dead:
                # The system under test failing is a result, not a harness error: record it,
                # restart what died, and keep measuring.
                restarted = await stack.revive()
                run.incidents.append(
                    f"during {name}: {', '.join(dead)} exited; restarted {restarted or 'nothing'}"
                )
                logger.error("during %s: %s exited; restarted %s", name, dead, restarted)
            logger.info("scenario %s: %.1f s", name, out.elapsed_s)
        # The stream-rate table is produced by the streaming scenario.
        if "stream_rate" in run.scenarios and not run.scenarios["stream_rate"].rows:
            del run.scenarios["stream_rate"]


def render(result_file: Path, doc_path: Path | None) -> list[Path]:
    data = results.load(result_file)
    made = plots.render_all(data, result_file.parent, result_file.stem)
    if doc_path is not None:
        report_md.write(data, made, doc_path, result_file)
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="smoke run (≤ 60 s)")
    group.add_argument("--tiny", action="store_true", help="CI harness check (< 30 s)")
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one size of bench/config.py for this run (e.g. replicas_workers=1,2,4,8)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="where to write BENCHMARKS.md (default: docs/BENCHMARKS.md for full runs only)",
    )
    parser.add_argument("--render", type=Path, default=None, help="re-render a result file")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the scratch folder (process logs)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or not args.tiny else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.render is not None:
        render(args.render, args.docs or REPO / "docs" / "BENCHMARKS.md")
        return
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    try:
        config = with_overrides(MODES[mode], args.set)
    except ValueError as exc:
        parser.error(str(exc))
    unknown = set(args.only) - set(scenarios())
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    command = "python -m bench" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    run = results.RunResult(
        mode=mode, command=command, machine=describe(REPO), config=config.to_json()
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp,
        contextlib.suppress(KeyboardInterrupt),
    ):
        workdir = Path(tempfile.mkdtemp(prefix="tg-bench-")) if args.keep_workdir else Path(tmp)
        if args.keep_workdir:
            print(f"workdir (kept): {workdir}", flush=True)
        asyncio.run(run_all(config, list(args.only), run, workdir))
    run.elapsed_s = time.monotonic() - started
    run.finished = results.utc_now().isoformat(timespec="seconds")
    path = results.write(run, args.out)
    doc = args.docs if args.docs is not None else (REPO / "docs" / "BENCHMARKS.md")
    made = render(path, doc if (mode == "full" or args.docs is not None) else None)
    print(f"results: {path}")
    for plot in made:
        print(f"plot: {plot}")
    if mode == "full" or args.docs is not None:
        print(f"docs: {doc}")
    for name, reason in run.skipped.items():
        print(f"skipped {name}: {reason}")
    for incident in run.incidents:
        print(f"INCIDENT {incident}")
    for name in run.errors:
        print(f"FAILED {name} (traceback in the result file)")
    if run.errors:
        sys.exit(1)
