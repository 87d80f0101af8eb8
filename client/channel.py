"""Channel construction: plaintext or TLS (mTLS with a client certificate), and call metadata."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Final

import grpc

USER_AGENT: Final = "trading-gateway-client/0.1"
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

ChannelOptions = list[tuple[str, str | int]]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server verification (and optionally a client certificate for mTLS).

    `ca_file` is the PEM bundle that signs the gateway's certificate (None: grpc's default
    roots). `cert_file` and `key_file` go together and enable mutual TLS. `server_name`
    overrides the name checked against the certificate (e.g. when dialling an IP address).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TLS client certificate and key must be given together")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA"),
            private_key=_read(self.key_file, "client key"),
            certificate_chain=_read(self.cert_file, "client certificate"),
        )


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the TLS {what} file {path}: {exc.strerror}") from None


#: The watch channel's fixed HTTP/2 receive window per stream: at most this many bytes
#: (about 50 deltas) wait in it ahead of a slow reader, so an end status the server
#: writes reaches the reader within that many messages. Measured on loopback, grpc's
#: default window let 4 MiB (about 14,000 deltas of 300 bytes) run ahead.
DEFAULT_STREAM_WINDOW = 16 * 1024


def channel_options(
    tls: TlsConfig | None = None, *, stream_window: int | None = None
) -> ChannelOptions:
    """`stream_window`: a fixed HTTP/2 receive window per stream, in bytes. By default
    grpc grows the window with the measured bandwidth (BDP probing) up to megabytes,
    and a server's messages then queue in it ahead of a slow reader: a stream the
    server ends reaches the reader only after all of them (see README, Streams)."""
    options: ChannelOptions = [
        ("grpc.primary_user_agent", USER_AGENT),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    if stream_window is not None:
        options.append(("grpc.http2.bdp_probe", 0))
        options.append(("grpc.http2.lookahead_bytes", stream_window))
    return options


def open_channel(
    address: str, tls: TlsConfig | None = None, *, stream_window: int | None = None
) -> grpc.aio.Channel:
    """A grpc.aio channel to `address` (call from inside a running event loop)."""
    options = channel_options(tls, stream_window=stream_window)
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.credentials(), options=options)


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """`authorization: Bearer <key>` when a key is set. The key never appears in errors."""
    if api_key is None:
        return ()
    if not api_key or not api_key.isascii() or not api_key.isprintable() or " " in api_key:
        raise ValueError("the API key must be non-empty printable ASCII without spaces")
    return (("authorization", f"Bearer {api_key}"),)
