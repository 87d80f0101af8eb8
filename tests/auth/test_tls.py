"""TLS and mutual TLS with certificates generated for the test: real handshakes on 127.0.0.1,
the typed client and the CLI end to end, with API keys on top."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.auth.certs import Pki
from tests.auth.conftest import IDS, IN_SCOPE, Keys
from tests.support.secret_scan import register_secret
from tests.support.stack import running_stack
from trading_gateway.client.channel import TlsConfig
from trading_gateway.client.cli import main as client_main
from trading_gateway.client.client import TradingClient
from trading_gateway.client.errors import ClientError
from trading_gateway.client.healthcheck import probe
from trading_gateway.server.auth.keys import generate_key


def tls_settings(pki: Pki, *, mutual: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "tls_cert_file": str(pki.server_cert),
        "tls_key_file": str(pki.server_key),
    }
    if mutual:
        settings["tls_client_ca_file"] = str(pki.ca)
    return settings


def stack_credentials(pki: Pki, *, mutual: bool = False) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes() if mutual else None,
        certificate_chain=pki.client_cert.read_bytes() if mutual else None,
    )


async def call_fails(
    address: str, tls: TlsConfig | None, api_key: str | None = None
) -> ClientError:
    async with TradingClient(address, tls=tls, api_key=api_key, retries=0, timeout=3) as client:
        with pytest.raises(ClientError) as caught:
            await client.list_accounts()
    return caught.value


async def test_tls_serves_verified_clients_and_refuses_plaintext_and_strangers(
    pki: Pki, keys: Keys
) -> None:
    async with running_stack(
        accounts=4,
        api_keys_file=str(keys.file),
        channel_credentials=stack_credentials(pki),
        **tls_settings(pki),
    ) as stack:
        address = stack.address
        # The certificate is checked against the address dialled (127.0.0.1, an IP SAN).
        tls = TlsConfig(ca_file=str(pki.ca))
        async with TradingClient(address, tls=tls, api_key=keys.scoped_key, retries=0) as client:
            reply = await client.list_accounts()
        assert [a.id for a in reply.accounts] == IN_SCOPE
        # ... and against a name when asked to.
        named = TlsConfig(ca_file=str(pki.ca), server_name="localhost")
        async with TradingClient(address, tls=named, api_key=keys.all_key, retries=0) as client:
            assert [a.id for a in (await client.list_accounts()).accounts] == IDS
        # TLS alone does not replace the key.
        error = await call_fails(address, tls)
        assert error.code is grpc.StatusCode.UNAUTHENTICATED
        assert error.reason == "API_KEY_MISSING"
        # Plaintext to a TLS port, and a client trusting another CA: no handshake.
        assert (await call_fails(address, None, keys.all_key)).code is grpc.StatusCode.UNAVAILABLE
        stranger = TlsConfig(ca_file=str(pki.rogue_ca))
        assert (await call_fails(address, stranger, keys.all_key)).code is (
            grpc.StatusCode.UNAVAILABLE
        )
        # The stack's own TLS channel (health without a key) works too.
        assert await stack.health_status() == 1
        assert await probe(address, tls=tls) == "SERVING"


async def test_mutual_tls_requires_a_client_certificate_from_the_configured_ca(
    pki: Pki, keys: Keys
) -> None:
    async with running_stack(
        accounts=4,
        api_keys_file=str(keys.file),
        channel_credentials=stack_credentials(pki, mutual=True),
        **tls_settings(pki, mutual=True),
    ) as stack:
        address = stack.address
        mutual = TlsConfig(
            ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
        )
        async with TradingClient(address, tls=mutual, api_key=keys.all_key, retries=0) as client:
            reply = await client.get_balances()
        assert sorted(b.meta.account_id for b in reply.accounts) == IDS
        no_cert = TlsConfig(ca_file=str(pki.ca))
        assert (await call_fails(address, no_cert, keys.all_key)).code is (
            grpc.StatusCode.UNAVAILABLE
        )
        rogue = TlsConfig(
            ca_file=str(pki.ca),
            cert_file=str(pki.rogue_client_cert),
            key_file=str(pki.rogue_client_key),
        )
        assert (await call_fails(address, rogue, keys.all_key)).code is (
            grpc.StatusCode.UNAVAILABLE
        )
        reply_health = await stack.health.Check(
            health_pb2.HealthCheckRequest(),
            timeout=5,
        )
        assert reply_health.status == 1
        # The container's health probe speaks mutual TLS too.
        assert await probe(address, tls=mutual) == "SERVING"
        assert await probe(address, tls=no_cert) == "UNAVAILABLE"


async def test_the_cli_speaks_mutual_tls_with_an_api_key_from_the_environment(
    pki: Pki,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_stack(
        accounts=4,
        api_keys_file=str(keys.file),
        channel_credentials=stack_credentials(pki, mutual=True),
        **tls_settings(pki, mutual=True),
    ) as stack:
        tls_flags = [
            "--address",
            stack.address,
            "--tls-ca",
            str(pki.ca),
            "--tls-cert",
            str(pki.client_cert),
            "--tls-key",
            str(pki.client_key),
            "--retries",
            "0",
        ]
        monkeypatch.setenv("TRADING_GATEWAY_API_KEY", keys.scoped_key)
        code = await asyncio.to_thread(client_main, ["accounts", *tls_flags, "--json"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert [int(a["id"]) for a in json.loads(out)["accounts"]] == IN_SCOPE
        # Denied by scope: one actionable line naming the account, exit 1.
        code = await asyncio.to_thread(
            client_main, ["positions", *tls_flags, "--accounts", str(IDS[3])]
        )
        captured = capsys.readouterr()
        assert code == 1
        assert "PERMISSION_DENIED" in captured.err and str(IDS[3]) in captured.err
        # A wrong key from the flag: UNAUTHENTICATED, and the key is not echoed.
        wrong = generate_key()
        register_secret(wrong)
        code = await asyncio.to_thread(client_main, ["balances", *tls_flags, "--api-key", wrong])
        captured = capsys.readouterr()
        assert code == 1
        assert "UNAUTHENTICATED" in captured.err and "API_KEY_UNKNOWN" in captured.err
        assert wrong not in captured.err + captured.out
        # No client certificate: grpc only says the socket closed; the CLI points at TLS.
        code = await asyncio.to_thread(
            client_main,
            ["accounts", "--address", stack.address, "--tls-ca", str(pki.ca), "--retries", "0"],
        )
        captured = capsys.readouterr()
        assert code == 1
        assert "TLS with the gateway" in captured.err and "--tls-cert" in captured.err


async def test_a_plaintext_stack_channel_cannot_reach_a_tls_gateway(pki: Pki) -> None:
    # Guards the test above: without credentials the same gateway is unreachable.
    async with running_stack(
        accounts=2, channel_credentials=stack_credentials(pki), **tls_settings(pki)
    ) as stack:
        async with grpc.aio.insecure_channel(stack.address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListAccounts(pb.ListAccountsRequest(), timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
