"""The session-wide log scan for secrets (tests/conftest.py) is installed and can fail."""

from __future__ import annotations

import logging

from tradovate_gateway.v1 import trading_pb2 as pb

from tests.auth.conftest import Keys
from tests.support.secret_scan import SCAN, SecretScan
from tests.support.stack import running_stack


def test_the_scan_finds_secrets_in_messages_arguments_extras_and_tracebacks() -> None:
    scan = SecretScan()
    log = logging.getLogger("tests.auth.scan-probe")
    log.addHandler(scan)
    log.propagate = False
    try:
        scan.register(["hunter2-secret", None, "abc"])  # too short / empty ones are ignored
        assert scan.secrets == frozenset({"hunter2-secret"})
        log.warning("clean line")
        assert scan.leaks == []
        log.warning("login with %s", "hunter2-secret")
        log.warning("clean", extra={"password": "hunter2-secret"})
        try:
            raise ValueError("bad hunter2-secret")
        except ValueError:
            log.exception("failed")
        assert len(scan.leaks) == 3
        # Logged before the test knew it: caught when it is registered.
        log.warning("token %s issued", "late-token-123")
        scan.register(["late-token-123"])
        assert len(scan.leaks) == 4
        report = scan.report()
        assert "hunter2-secret" not in report and "late-token-123" not in report
        assert "hun…(14 chars)" in report
    finally:
        log.removeHandler(scan)
        log.propagate = True


def test_the_session_scan_is_installed_and_knows_this_runs_secrets(keys: Keys) -> None:
    assert SCAN in logging.getLogger().handlers
    assert logging.getLogger().level == logging.DEBUG
    assert {keys.all_key, keys.scoped_key, "sim-pass", "sim-secret"} <= SCAN.secrets
    seen = SCAN.records_seen
    logging.getLogger("server.probe").debug("a debug line reaches the scan")
    assert SCAN.records_seen == seen + 1


async def test_a_gateway_run_registers_its_access_tokens() -> None:
    async with running_stack(accounts=1, live_enabled=False) as stack:
        token = stack.gateway.broker.token_manager.current
        assert token is not None
        assert token.access_token in SCAN.secrets
        await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
