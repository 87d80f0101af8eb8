"""The checked-in protobuf code must match what `make proto` generates from the .proto files."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "protos" / "tradovate_gateway"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi", ".binpb")


def _generated_files(base: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in base.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def test_checked_in_generated_code_is_fresh(tmp_path: pathlib.Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = _generated_files(tmp_path / "tradovate_gateway")
    checked_in = _generated_files(PACKAGE)
    assert fresh, "protos/generate.py produced nothing"
    assert sorted(fresh) == sorted(checked_in), "generated file set differs: run `make proto`"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale generated code (run `make proto`): {stale}"


def test_generated_package_imports_without_path_tricks() -> None:
    code = (
        "from tradovate_gateway.v1 import trading_pb2, trading_pb2_grpc;"
        "print(trading_pb2.DESCRIPTOR.services_by_name['TradingService'].full_name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
    )
    assert out.stdout.strip() == "tradovate_gateway.v1.TradingService"
