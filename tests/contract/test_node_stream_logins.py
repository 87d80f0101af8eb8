"""A Node client reads StreamUpdate.login and resumes a stream over several logins with
resume_from (the contract from protos/ alone, against real logins over the simulator)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.contract.node_tools import PROTOS, node, require_module
from tests.live.logins_stack import running_logins

pytestmark = pytest.mark.timeout(90)

SCRIPT = PROTOS.parent / "tests" / "contract" / "stream_logins.cjs"


async def subscribe(address: str, logins: int, resume_from: list[dict[str, Any]]) -> Any:
    require_module("@grpc/proto-loader")
    require_module("@grpc/grpc-js")
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(SCRIPT),
        str(PROTOS),
        address,
        str(logins),
        json.dumps(resume_from),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_a_node_client_reads_each_login_and_resumes_with_resume_from() -> None:
    async with running_logins(users=3) as logins:
        first = await subscribe(logins.address, 3, [])
        assert first["status_login"] == ""
        assert sorted(first["complete"]) == sorted(logins.names)
        for login, done in first["complete"].items():
            assert done["epoch"] == logins.live(login).hub.epoch
            assert first["chunks"][login] == len(logins.accounts(login))
        positions = [
            {"login": login, "epoch": done["epoch"], "sequence": done["sequence"]}
            for login, done in first["complete"].items()
        ]
        resumed = await subscribe(logins.address, 3, positions)
        for position in positions:
            done = resumed["complete"][position["login"]]
            # Resumed where it was (the replay covers it): no resync snapshot.
            assert (done["sequence"], done["resync"]) == (position["sequence"], False)
        assert resumed["chunks"] == {}  # resumed: no snapshot
