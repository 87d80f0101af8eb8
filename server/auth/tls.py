"""Server TLS credentials from PEM files: TLS, or mutual TLS when a client CA is given."""

from __future__ import annotations

import logging
import pathlib

import grpc

logger = logging.getLogger(__name__)


class TlsFileError(ValueError):
    """A TLS file cannot be read; names the setting and the path, never the contents."""


def _read(path: str, setting: str) -> bytes:
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise TlsFileError(f"cannot read {setting} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"{setting} {path} is not a PEM file")
    return data


def server_credentials(
    cert_file: str, key_file: str, client_ca_file: str | None = None
) -> grpc.ServerCredentials:
    """Credentials for ``add_secure_port``; with ``client_ca_file`` clients must present a
    certificate signed by that CA (mutual TLS)."""
    cert = _read(cert_file, "GATEWAY_TLS_CERT_FILE")
    key = _read(key_file, "GATEWAY_TLS_KEY_FILE")
    client_ca = _read(client_ca_file, "GATEWAY_TLS_CLIENT_CA_FILE") if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
