"""PNG plots from a result document (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

logger = logging.getLogger(__name__)

PATH_STYLE = {
    "before": ("tab:red", "o"),
    "after": ("tab:orange", "s"),
    "upstream": ("tab:blue", "^"),
    "cache": ("tab:green", "D"),
    "live": ("tab:purple", "v"),
}


def latency_vs_accounts(data: dict[str, Any], path: Path) -> Path | None:
    """p50 latency (markers) and p99 (thin line) against accounts, log-log, one panel per
    (latency profile, RPC); the dashed line is the median ideal of the upstream path."""
    rows = data.get("scenarios", {}).get("fresh", {}).get("rows", [])
    if not rows:
        return None
    panels: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        panels[(row["profile"], row["rpc"])].append(row)
    keys = sorted(panels)
    seen: list[str] = []
    for row in rows:
        if row["profile"] not in seen:
            seen.append(row["profile"])
    # Upstream profiles in run order, the no-upstream (cache/live) panel last.
    profiles = sorted(seen, key=lambda p: (p.startswith("none"), seen.index(p)))
    rpcs = sorted({k[1] for k in keys})
    fig, axes = plt.subplots(
        len(profiles), len(rpcs), figsize=(5 * len(rpcs), 4 * len(profiles)), squeeze=False
    )
    for i, profile in enumerate(profiles):
        for j, rpc in enumerate(rpcs):
            ax = axes[i][j]
            by_path: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in panels.get((profile, rpc), []):
                by_path[row["path"]].append(row)
            for name, items in by_path.items():
                items.sort(key=lambda r: r["accounts"])
                xs = [r["accounts"] for r in items]
                color, marker = PATH_STYLE.get(name, ("black", "x"))
                p50 = [r["p50_ms"] for r in items]
                p99 = [r["p99_ms"] for r in items]
                ax.plot(xs, p50, marker=marker, color=color, label=f"{name} p50")
                ax.plot(xs, p99, color=color, linewidth=0.8, alpha=0.6)
            floor = sorted(
                (r["accounts"], r["floor_p50_ms"])
                for r in by_path.get("live", [])
                if r.get("floor_p50_ms")
            )
            if floor:
                ax.plot(*zip(*floor, strict=True), "k:", linewidth=1, label="bare grpc.aio p50")
            ideal = sorted(
                (r["accounts"], r["ideal_p50_ms"])
                for r in by_path.get("upstream", [])
                if r.get("ideal_p50_ms")
            )
            if ideal:
                ax.plot(*zip(*ideal, strict=True), "k--", linewidth=1, label="ideal (upstream)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{rpc}, upstream {profile}")
            ax.set_xlabel("accounts")
            ax.set_ylabel("latency ms (p50 markers, p99 thin)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def streaming_cdf(data: dict[str, Any], path: Path) -> Path | None:
    """CDF of event → subscriber latency, gateway (solid) against the bare fan-out (dashed)."""
    samples = data.get("scenarios", {}).get("streaming", {}).get("samples", {})
    if not samples:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = ["tab:blue", "tab:green", "tab:red", "tab:purple", "tab:orange"]
    subs = sorted({int(k.split(":")[1]) for k in samples})
    for idx, n in enumerate(subs):
        color = colors[idx % len(colors)]
        for target, style in (("gateway", "-"), ("floor", "--")):
            values = samples.get(f"{target}:{n}")
            if not values:
                continue
            ms = sorted(v / 1e6 for v in values)
            ys = [(k + 1) / len(ms) for k in range(len(ms))]
            label = f"{target}, {n} subscriber{'s' if n != 1 else ''}"
            ax.plot(ms, ys, style, color=color, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("event → subscriber receipt, ms (log)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("Streaming latency CDF: gateway (solid) vs bare grpc.aio fan-out (dashed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_all(data: dict[str, Any], directory: Path, stem: str) -> list[Path]:
    """Every plot this result supports, as ``directory/<stem>-<plot>.png``."""
    directory.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for name, fn in (("latency", latency_vs_accounts), ("stream-cdf", streaming_cdf)):
        try:
            out = fn(data, directory / f"{stem}-{name}.png")
        except Exception:
            logger.exception("plot %s failed", name)
            continue
        if out is not None:
            made.append(out)
    return made
