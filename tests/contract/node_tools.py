"""The Node tools the contract tests use (buf, @grpc/proto-loader), from `npm ci`.

package.json and package-lock.json at the repository root pin them; `make test` runs
`npm ci` first. Node itself is a machine prerequisite (node 20 in CI): without it the
Node tests skip, saying so. With Node but without node_modules they fail, naming the
command that installs them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
NODE_MODULES = ROOT / "node_modules"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed (CI has node 20); the Node contract checks need it")
    return found


def buf() -> str:
    node()  # the npm buf package is a Node launcher
    path = NODE_MODULES / ".bin" / "buf"
    if not path.exists():
        pytest.fail("buf is not installed: run `npm ci` at the repository root (make test does)")
    return str(path)


def require_module(name: str) -> Path:
    path = NODE_MODULES / name
    if not path.is_dir():
        pytest.fail(
            f"{name} is not installed: run `npm ci` in the repository root (make test does)"
        )
    return path
