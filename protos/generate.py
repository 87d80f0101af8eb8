"""Regenerate the Python code for the gateway contract.

Run with `make proto` (or `python protos/generate.py`). The output is checked in
beside the .proto files; tests/test_generated_code.py fails when it is stale.

Only `protos/` (the contract and the vendored google/rpc files) and the protobuf
well-known types that ship with protoc are on the include path, so the contract
compiles from the repository alone. Python is generated for tradovate_gateway/ only:
`googleapis-common-protos` provides google.rpc at run time.

Besides the Python modules, `trading.binpb` is written: a FileDescriptorSet of
trading.proto and its imports that keeps the source info (the comments), which the
generated modules drop. Server reflection serves it (server/api/reflection.py), so
`grpcurl describe` shows the comments.
"""

from __future__ import annotations

import os
import pathlib
import sys

import grpc_tools
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
CONTRACT = HERE / "tradovate_gateway"
PROTO_FILES = sorted(str(p.relative_to(HERE)) for p in CONTRACT.rglob("*.proto"))
DESCRIPTOR_SET = "tradovate_gateway/v1/trading.binpb"


def _include_dirs() -> list[str]:
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    return [str(HERE), str(well_known)]


def _protoc(args: list[str]) -> None:
    if protoc.main(["grpc_tools.protoc", *(f"-I{d}" for d in _include_dirs()), *args]) != 0:
        raise SystemExit("protoc failed")


def generate(out_dir: pathlib.Path = HERE) -> None:
    bin_dir = pathlib.Path(sys.executable).parent
    os.chdir(HERE)
    _protoc(
        [
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={out_dir}",
            f"--mypy_grpc_out={out_dir}",
            *PROTO_FILES,
        ]
    )
    (out_dir / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    _protoc(
        [
            f"--descriptor_set_out={out_dir / DESCRIPTOR_SET}",
            "--include_imports",
            "--include_source_info",
            "tradovate_gateway/v1/trading.proto",
            # The error details the gateway puts in its statuses (ErrorInfo, BadRequest,
            # RetryInfo): served by reflection too, so grpcurl decodes them.
            "google/rpc/error_details.proto",
            "google/rpc/status.proto",
        ]
    )


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    generate(target.resolve())
