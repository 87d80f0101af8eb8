"""grpcurl over mutual TLS with an API key: what docs/SECURITY.md tells operators to run."""

from __future__ import annotations

import json

import pytest

from tests.api.test_grpcurl import grpcurl
from tests.auth.certs import Pki
from tests.auth.conftest import IN_SCOPE, Keys
from tests.auth.test_tls import stack_credentials, tls_settings
from tests.support.stack import running_stack

pytestmark = pytest.mark.timeout(60)

METHOD = "tradovate_gateway.v1.TradingService/ListAccounts"


async def test_grpcurl_lists_without_a_key_and_calls_with_one(pki: Pki, keys: Keys) -> None:
    async with running_stack(
        accounts=4,
        api_keys_file=str(keys.file),
        channel_credentials=stack_credentials(pki, mutual=True),
        **tls_settings(pki, mutual=True),
    ) as stack:
        tls = ["-cacert", str(pki.ca), "-cert", str(pki.client_cert), "-key", str(pki.client_key)]
        code, out, err = await grpcurl(*tls, stack.address, "list")
        assert code == 0, err
        assert "tradovate_gateway.v1.TradingService" in out.split()

        code, out, err = await grpcurl(*tls, "-d", "{}", stack.address, METHOD)
        assert code != 0
        assert "Unauthenticated" in err and "requires an API key" in err
        assert keys.scoped_key not in err

        header = f"authorization: Bearer {keys.scoped_key}"
        code, out, err = await grpcurl(*tls, "-H", header, "-d", "{}", stack.address, METHOD)
        assert code == 0, err
        assert [int(a["id"]) for a in json.loads(out)["accounts"]] == IN_SCOPE

        # Without the client certificate the handshake fails.
        code, out, err = await grpcurl(
            "-connect-timeout", "3", "-cacert", str(pki.ca), stack.address, "list"
        )
        assert code != 0
