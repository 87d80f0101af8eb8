"""Reflection v1 and v1alpha, with the proto comments, against the real gateway.

grpcurl from the venv (1.8.6, the newest on PyPI) speaks v1alpha only; buf curl (npm,
package-lock.json) is forced onto v1 with --reflect-protocol. A raw stream on each
reflection path checks that the descriptors served carry the comments (source info).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from tests.api.test_grpcurl import SERVICE, grpcurl
from tests.contract.node_tools import buf
from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(60)

VERSIONS = ("grpc.reflection.v1", "grpc.reflection.v1alpha")
FRESH_COMMENT = "As fresh as upstream: the live synced state when it is healthy"


async def reflect(address: str, version: str, request: rpb.ServerReflectionRequest) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(
            f"/{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        replies = [reply async for reply in call(iter([request]), timeout=10)]
    [reply] = replies
    return reply


async def test_grpcurl_describe_shows_the_comments(api_stack: Stack) -> None:
    code, out, err = await grpcurl(
        "-plaintext", api_stack.address, "describe", "tradovate_gateway.v1.ReadPolicy"
    )
    assert code == 0, err
    assert FRESH_COMMENT in out
    code, out, err = await grpcurl("-plaintext", api_stack.address, "describe", SERVICE)
    assert code == 0, err
    assert "Default read policy: FRESH." in out


async def test_list_shows_both_reflection_versions(api_stack: Stack) -> None:
    code, out, err = await grpcurl("-plaintext", api_stack.address, "list")
    assert code == 0, err
    for version in VERSIONS:
        assert f"{version}.ServerReflection" in out.split()


@pytest.mark.parametrize("version", VERSIONS)
async def test_descriptors_keep_the_comments(api_stack: Stack, version: str) -> None:
    reply = await reflect(
        api_stack.address,
        version,
        rpb.ServerReflectionRequest(file_containing_symbol="tradovate_gateway.v1.ReadPolicy"),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    assert files[0].name == "tradovate_gateway/v1/trading.proto"
    assert {"google/rpc/code.proto", "google/protobuf/duration.proto"} <= {f.name for f in files}
    comments = [loc.leading_comments for loc in files[0].source_code_info.location]
    assert any(FRESH_COMMENT in comment for comment in comments)


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_symbol_is_not_found(api_stack: Stack, version: str) -> None:
    reply = await reflect(
        api_stack.address, version, rpb.ServerReflectionRequest(file_containing_symbol="no.Such")
    )
    assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no.Such" in reply.error_response.error_message


async def test_buf_curl_over_reflection_v1(api_stack: Stack) -> None:
    """An independent v1-only client lists the methods and calls health through v1."""
    url = f"http://{api_stack.address}"
    common = ("curl", "--protocol", "grpc", "--http2-prior-knowledge")
    proc = await asyncio.create_subprocess_exec(
        buf(),
        *common,
        "--reflect-protocol",
        "grpc-v1",
        "--list-methods",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert f"{SERVICE}/GetPositions" in out.decode().split()
    proc = await asyncio.create_subprocess_exec(
        buf(),
        *common,
        "--reflect-protocol",
        "grpc-v1",
        "-d",
        '{"service": ""}',
        f"{url}/grpc.health.v1.Health/Check",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert '"SERVING"' in out.decode()
