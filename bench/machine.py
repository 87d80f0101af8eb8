"""What the numbers were measured on: host, CPU, kernel, Python and library versions,
plus /proc-based CPU and memory accounting for the processes a scenario starts."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

_PACKAGES = ("grpcio", "protobuf", "aiohttp", "uvloop", "msgspec", "redis", "matplotlib")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def git_revision(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        rev = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return f"{rev}{'+dirty' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def protobuf_backend() -> str:
    try:
        from google.protobuf.internal import api_implementation

        return str(api_implementation.Type())
    except ImportError:
        return "unknown"


def describe(repo: Path) -> dict[str, Any]:
    """A JSON-ready description of this machine and software stack."""
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    versions["protobuf_backend"] = protobuf_backend()
    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "executable": sys.executable,
        "git": git_revision(repo),
        "versions": versions,
        "load_average": list(os.getloadavg()),
    }


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far, from /proc/PID/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def cpu_seconds_when_quiet(
    pid: int, *, step_s: float = 0.2, quiet_ticks: int = 1, limit_s: float = 60.0
) -> float:
    """``cpu_seconds(pid)`` once a ``step_s`` slice used at most ``quiet_ticks`` clock ticks
    of CPU: the server has sent what it had to. Both sides of a comparison keep their
    streams open for a second of silence after the last message, so closing them stays out
    of a per-message figure."""
    quiet_s = (quiet_ticks + 0.5) / _TICKS  # whole ticks; the half absorbs float error
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    before = cpu_seconds(pid)
    while loop.time() < end:
        await asyncio.sleep(step_s)
        now = cpu_seconds(pid)
        if now - before <= quiet_s:
            return now
        before = now
    return before


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of ``pid`` in MiB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mib(pid: int) -> float:
    """VmRSS (current resident set) of ``pid`` in MiB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
