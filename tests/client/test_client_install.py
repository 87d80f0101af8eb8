"""The client-only install: the built wheel, in a fresh venv, calls the gateway on the simulator.

The plain install (no extras) must carry trading_gateway.client and tradovate_gateway.v1,
declare grpcio, grpcio-status, grpcio-health-checking and protobuf, and nothing of the
server's (aiohttp, redis, pydantic-settings). The wheel is built here from a copy of the
sources (pip wheel, no build isolation: setuptools from this venv, nothing downloaded).

Two ways into a fresh venv (made with ``--without-pip``, system site-packages off), run
isolated (``python -I``, from a scratch folder) so that the repository's own folders are
not on its path:
- the default test installs the wheel with ``--no-deps`` and links in only the files of the
  client's declared dependencies, taken from this venv's installed distributions: no
  network, and the server's packages are provably absent;
- the slow test lets pip resolve the wheel's dependencies from the configured index, pinned
  by constraints.txt (``pytest -m slow tests/client/test_client_install.py``).
"""

from __future__ import annotations

import asyncio
import email
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "server", "client", "simulator", "protos")
CLIENT_DEPENDENCIES = {"grpcio", "grpcio-status", "grpcio-health-checking", "protobuf"}
SERVER_ONLY = ("aiohttp", "redis", "pydantic_settings", "msgspec")

# Runs inside the fresh venv: the server's packages are absent, then one real call.
PROBE = """
import asyncio, importlib.util, json, sys
from trading_gateway.client import TradingClient

absent = [m for m in {server_only!r} if importlib.util.find_spec(m) is None]

async def main():
    async with TradingClient(sys.argv[1], timeout=10.0) as gw:
        reply = await gw.list_accounts()
    return [a.name for a in reply.accounts]

print(json.dumps({{"absent": absent, "accounts": asyncio.run(main())}}))
"""


def run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain (client-only) wheel, built from a copy of the sources."""
    base = tmp_path_factory.mktemp("client-wheel")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, src / name)
    out = base / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    run(*pip, "--wheel-dir", out, src, cwd=base)
    (built,) = out.glob("trading_gateway-*.whl")
    return built


def fresh_venv(where: Path) -> Path:
    """A venv with no pip and no system site-packages: only what the test puts there."""
    run(sys.executable, "-m", "venv", "--without-pip", where, cwd=where.parent)
    return where / "bin" / "python"


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(run(python, "-I", "-c", code, cwd=python.parent).strip())


def link_distribution(name: str, target: Path) -> None:
    """This venv's installed files of one distribution, linked into ``target``."""
    dist = metadata.distribution(name)
    for file in dist.files or []:
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue  # console scripts, byte code
        source = Path(str(dist.locate_file(file)))
        dest = target / file
        if dest.exists() or not source.is_file():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(source)


def requirement_closure(names: set[str]) -> set[str]:
    """The declared dependencies and theirs, as installed in this venv."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(req.name)
    return seen


def wheel_requirements(wheel: Path) -> tuple[set[str], set[str]]:
    """(names required by the plain install, names only an extra asks for)."""
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(archive.read(meta))
    plain: set[str] = set()
    extra: set[str] = set()
    for text in message.get_all("Requires-Dist") or []:
        req = Requirement(text)
        key = canonicalize_name(req.name)
        if req.marker is not None and "extra" in str(req.marker):
            extra.add(key)
        else:
            plain.add(key)
    return plain, extra


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(accounts=2) as running:
        yield running


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "elsewhere"  # not the repository: its folders must not be importable
    folder.mkdir()
    yield folder


def test_the_plain_install_declares_only_the_clients_dependencies(wheel: Path) -> None:
    plain, extra = wheel_requirements(wheel)
    assert plain == CLIENT_DEPENDENCIES
    assert {"aiohttp", "redis", "pydantic-settings"} <= extra
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "trading_gateway/client/client.py" in names
    assert "tradovate_gateway/v1/trading_pb2.py" in names


async def call_from(python: Path, stack: Stack, cwd: Path) -> dict[str, list[str]]:
    probe = PROBE.format(server_only=SERVER_ONLY)
    out = await asyncio.to_thread(run, python, "-I", "-c", probe, stack.address, cwd=cwd)
    result: dict[str, list[str]] = json.loads(out)
    return result


async def test_the_client_wheel_alone_calls_the_gateway(
    wheel: Path, stack: Stack, scratch: Path, tmp_path: Path
) -> None:
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")
    target = await asyncio.to_thread(site_packages, python)
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    await asyncio.to_thread(run, *pip, "--no-deps", "--no-index", wheel, cwd=scratch)
    for name in requirement_closure(CLIENT_DEPENDENCIES):
        link_distribution(name, target)

    result = await call_from(python, stack, scratch)

    assert result["absent"] == list(SERVER_ONLY)
    direct = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=10)
    assert result["accounts"] == [a.name for a in direct.accounts]
    assert len(result["accounts"]) == 2

    # The client's command reads; the server's says which install it needs, in one line.
    bin_dir = python.parent
    argv: list[str | Path] = [
        bin_dir / "trading-gateway-client",
        "accounts",
        "--address",
        stack.address,
    ]
    table = await asyncio.to_thread(run, *argv, cwd=scratch)
    assert all(name in table for name in result["accounts"])
    server = await asyncio.to_thread(
        subprocess.run,
        [str(bin_dir / "trading-gateway"), "serve"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 2
    assert "pip install 'trading-gateway[server]'" in server.stderr
    assert "Traceback" not in server.stderr


@pytest.mark.slow
async def test_pip_install_of_the_client_wheel_resolves_and_calls_the_gateway(
    wheel: Path, stack: Stack, scratch: Path, tmp_path: Path
) -> None:
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    await asyncio.to_thread(run, *pip, "-c", ROOT / "constraints.txt", wheel, cwd=scratch)

    result = await call_from(python, stack, scratch)

    assert result["absent"] == list(SERVER_ONLY)
    assert len(result["accounts"]) == 2
