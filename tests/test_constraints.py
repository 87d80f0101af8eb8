"""constraints.txt pins every Python package the gateway and its server/dev/bench extras install.

make (venv), the Dockerfile and CI install with `-c constraints.txt`. A dependency added
to pyproject.toml without re-pinning (`make constraints`) fails here, naming it.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)$")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"constraints.txt: {line!r} is not an exact NAME==VERSION pin"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def installed_closure(name: str, extras: frozenset[str]) -> set[str]:
    """Every distribution ``name[extras]`` pulls in, by canonical name (this platform)."""
    seen: set[str] = set()
    pending = [(name, extras)]
    while pending:
        current, wanted = pending.pop()
        for text in metadata.requires(current) or []:
            req = Requirement(text)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if req.marker and not any(req.marker.evaluate(env) for env in environments):
                continue
            key = canonicalize_name(req.name)
            if key not in seen:
                seen.add(key)
                pending.append((req.name, frozenset(req.extras)))
    return seen


def test_every_dependency_is_pinned() -> None:
    needed = installed_closure("trading-gateway", frozenset({"server", "dev", "bench"}))
    assert "grpcio" in needed and "pytest" in needed and "matplotlib" in needed
    unpinned = sorted(needed - set(pins()))
    assert not unpinned, f"not in constraints.txt (run `make constraints`): {unpinned}"


def test_the_environment_runs_the_pinned_versions() -> None:
    """The venv was installed with the constraints (make venv re-installs when they change)."""
    needed = installed_closure("trading-gateway", frozenset({"server", "dev", "bench"}))
    wrong = {
        name: (metadata.version(name), version)
        for name, version in pins().items()
        if name in needed and metadata.version(name) != version
    }
    assert not wrong, f"installed != pinned (run `make venv`): {wrong}"
