"""Server reflection, v1 and v1alpha, answering with descriptors that keep the comments.

grpcio-reflection 1.85 serves only ``grpc.reflection.v1alpha`` and copies descriptors
from the generated modules, which drop the proto comments. This servicer answers both
``grpc.reflection.v1.ServerReflection`` and ``grpc.reflection.v1alpha.ServerReflection``
(their messages are identical on the wire, so the v1alpha classes encode both) from
``trading.binpb``: the FileDescriptorSet `make proto` writes with source info, so
``grpcurl describe`` shows what FRESH and CACHED mean. Health and reflection itself are
served from their generated descriptors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from importlib import resources
from typing import Any, Final, Protocol

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

V1ALPHA_SERVICE: Final = "grpc.reflection.v1alpha.ServerReflection"
V1_SERVICE: Final = "grpc.reflection.v1.ServerReflection"
METHOD: Final = "ServerReflectionInfo"
CONTRACT_PACKAGE: Final = "tradovate_gateway.v1"
DESCRIPTOR_SET: Final = "trading.binpb"


def contract_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """trading.proto and its imports, with source info, in dependency order.

    protoc fills in every field's ``json_name``; the generated modules' descriptors
    (served before) do not, and with it grpcurl prints camelCase names instead of the
    proto field names it always printed. It is cleared, so grpcurl output is unchanged.
    """
    data = resources.files(CONTRACT_PACKAGE).joinpath(DESCRIPTOR_SET).read_bytes()
    files = list(descriptor_pb2.FileDescriptorSet.FromString(data).file)
    for proto in files:
        _clear_json_names(proto.message_type)
    return files


def _clear_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _clear_json_names(message.nested_type)


def _as_proto(descriptor: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


def v1_reflection_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, derived from v1alpha (same messages)."""
    proto = _as_proto(rpb.DESCRIPTOR)
    old, new = f".{rpb.DESCRIPTOR.package}.", ".grpc.reflection.v1."
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name.removeprefix(old)
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type.removeprefix(old)
            method.output_type = new + method.output_type.removeprefix(old)
    return proto


class DescriptorIndex:
    """Serialized file descriptors by name, and a pool to find the file of a symbol."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self._pool = descriptor_pool.DescriptorPool()
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._serialized: dict[str, bytes] = {}
        for proto in files:
            if proto.name in self._files:
                continue
            self._files[proto.name] = proto
            self._serialized[proto.name] = proto.SerializeToString()
            self._pool.AddSerializedFile(self._serialized[proto.name])

    def with_dependencies(self, name: str) -> list[bytes]:
        """The file first, then everything it imports (transitively), each once."""
        order: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop()
            if current in order:
                continue
            order.append(current)
            pending.extend(reversed(self._files[current].dependency))
        return [self._serialized[n] for n in order]

    def file_by_name(self, name: str) -> list[bytes] | None:
        return self.with_dependencies(name) if name in self._files else None

    def file_containing_symbol(self, symbol: str) -> list[bytes] | None:
        try:
            found = self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            return None
        return self.with_dependencies(found.name)

    def file_containing_extension(self, type_name: str, number: int) -> list[bytes] | None:
        try:
            message = self._pool.FindMessageTypeByName(type_name)
            extension = self._pool.FindExtensionByNumber(message, number)
            found = self._pool.FindFileContainingSymbol(extension.full_name)
        except KeyError:
            return None
        return self.with_dependencies(found.name)

    def extension_numbers(self, type_name: str) -> list[int] | None:
        try:
            message = self._pool.FindMessageTypeByName(type_name)
        except KeyError:
            return None
        return sorted(ext.number for ext in self._pool.FindAllExtensions(message))


def gateway_index() -> DescriptorIndex:
    """The contract (with comments), health, and both reflection versions."""
    files = contract_files()
    files += [_as_proto(health_pb2.DESCRIPTOR), _as_proto(rpb.DESCRIPTOR), v1_reflection_file()]
    return DescriptorIndex(files)


def _error(request: rpb.ServerReflectionRequest, code: grpc.StatusCode, message: str) -> Any:
    return rpb.ServerReflectionResponse(
        original_request=request,
        error_response=rpb.ErrorResponse(error_code=code.value[0], error_message=message),
    )


class ReflectionServicer:
    """Answers ServerReflectionInfo for either reflection version."""

    def __init__(self, index: DescriptorIndex, service_names: Iterable[str]) -> None:
        self._index = index
        self._services = sorted(set(service_names) | {V1_SERVICE, V1ALPHA_SERVICE})

    def answer(self, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
        kind = request.WhichOneof("message_request")
        files: list[bytes] | None
        if kind == "list_services":
            return rpb.ServerReflectionResponse(
                original_request=request,
                list_services_response=rpb.ListServiceResponse(
                    service=[rpb.ServiceResponse(name=name) for name in self._services]
                ),
            )
        if kind == "all_extension_numbers_of_type":
            type_name = request.all_extension_numbers_of_type
            numbers = self._index.extension_numbers(type_name)
            if numbers is None:
                return _error(request, grpc.StatusCode.NOT_FOUND, f"no type {type_name}")
            return rpb.ServerReflectionResponse(
                original_request=request,
                all_extension_numbers_response=rpb.ExtensionNumberResponse(
                    base_type_name=type_name, extension_number=numbers
                ),
            )
        if kind == "file_by_filename":
            wanted = request.file_by_filename
            files = self._index.file_by_name(wanted)
        elif kind == "file_containing_symbol":
            wanted = request.file_containing_symbol
            files = self._index.file_containing_symbol(wanted)
        elif kind == "file_containing_extension":
            ext = request.file_containing_extension
            wanted = f"{ext.containing_type} extension {ext.extension_number}"
            files = self._index.file_containing_extension(ext.containing_type, ext.extension_number)
        else:
            return _error(request, grpc.StatusCode.INVALID_ARGUMENT, "empty reflection request")
        if files is None:
            return _error(request, grpc.StatusCode.NOT_FOUND, f"{wanted} not found")
        return rpb.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=files),
        )

    async def reflection_info(
        self, requests: AsyncIterator[rpb.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        async for request in requests:
            yield self.answer(request)


class MethodRegistry(Protocol):
    """A server, or the registrar standing in for it (server/api/wrapping.py)."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None: ...


def add_reflection(servicer: ReflectionServicer, server: MethodRegistry) -> None:
    """Register ``servicer`` under both reflection service names."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.reflection_info,
        request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString,
    )
    for service in (V1_SERVICE, V1ALPHA_SERVICE):
        server.add_registered_method_handlers(service, {METHOD: handler})
