"""Regenerate the Python code for the gateway contract.

Run with `make proto` (or `python protos/generate.py`). The output is checked in
beside the .proto files; tests/test_generated_code.py fails when it is stale.
"""

from __future__ import annotations

import os
import pathlib
import sys

import google.rpc
import grpc_tools
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_FILES = sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*.proto"))


def _include_dirs() -> list[str]:
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    googleapis = pathlib.Path(next(iter(google.rpc.__path__))).parent.parent
    return [str(HERE), str(well_known), str(googleapis)]


def generate(out_dir: pathlib.Path = HERE) -> None:
    bin_dir = pathlib.Path(sys.executable).parent
    args = ["grpc_tools.protoc"]
    args += [f"-I{d}" for d in _include_dirs()]
    args += [
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
    ]
    args += PROTO_FILES
    os.chdir(HERE)
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    generate(target.resolve())
