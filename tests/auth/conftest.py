"""Fixtures for the auth tests: API keys in a key file, a test PKI, and helpers."""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.auth.certs import Pki, make_pki
from tests.support.secret_scan import register_secret
from trading_gateway.server.auth.keys import generate_key, make_entry
from trading_gateway.simulator.world import ACCOUNT_ID_BASE

# The simulator's accounts (SimConfig(accounts=4)): ids 101001..101004, names DEMO<id>.
IDS = [ACCOUNT_ID_BASE + i for i in range(1, 5)]
NAMES = [f"DEMO{i}" for i in IDS]
# The scoped key may see account 1 (by name), account 2 (by id), and an account that
# does not exist (so "in scope but unknown" is NOT_FOUND, not PERMISSION_DENIED).
SCOPE = [NAMES[0], str(IDS[1]), "DEMO999999"]
IN_SCOPE = IDS[:2]


@dataclass(frozen=True)
class Keys:
    all_key: str
    scoped_key: str
    file: pathlib.Path

    def metadata(self, key: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key}"),)


def write_key_file(
    path: pathlib.Path, entries: Sequence[tuple[str, str, list[str] | None]]
) -> None:
    document = {"keys": [make_entry(name, key, scope).as_json() for name, key, scope in entries]}
    path.write_text(json.dumps(document, indent=2))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """In-process `trading-gateway serve|demo` calls configure_logging: undo it afterwards."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    noisy = {name: logging.getLogger(name).level for name in ("aiohttp.access", "asyncio", "grpc")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def keys(tmp_path: pathlib.Path) -> Keys:
    all_key, scoped_key = generate_key(), generate_key()
    register_secret(all_key, scoped_key)
    file = tmp_path / "api-keys.json"
    write_key_file(file, [("ops-all", all_key, None), ("risk-scoped", scoped_key, SCOPE)])
    return Keys(all_key, scoped_key, file)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The one ErrorInfo in a rich status (fails the test when there is none)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


def retry_info(error: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None
