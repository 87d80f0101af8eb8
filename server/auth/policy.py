"""The rule for listening beyond loopback: with API keys or TLS, or only when told to.

``serve`` (and ``demo``) refuse a non-loopback listen address when neither API keys nor
TLS is configured, unless ``--allow-insecure`` / ``GATEWAY_ALLOW_INSECURE=1`` says so.
Keys without TLS are allowed but warned about: the keys then cross the network in clear.
"""

from __future__ import annotations

import ipaddress
import logging

from trading_gateway.server.config import GatewaySettings, split_address

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; everything else (0.0.0.0, ::, names) is not."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_refusal(settings: GatewaySettings) -> str | None:
    """Why the gateway must not listen as configured, or None when it may."""
    host, _ = split_address(settings.listen)
    if is_loopback(host) or settings.allow_insecure:
        return None
    if settings.auth_configured or settings.tls_enabled:
        return None
    return (
        f"refusing to listen on {settings.listen} (not loopback) without API keys or TLS: "
        "configure GATEWAY_API_KEYS_FILE and/or GATEWAY_TLS_CERT_FILE/GATEWAY_TLS_KEY_FILE "
        "(see docs/SECURITY.md), listen on 127.0.0.1, or pass --allow-insecure "
        "(GATEWAY_ALLOW_INSECURE=1) to accept unauthenticated plaintext access"
    )


def listen_warnings(settings: GatewaySettings) -> list[str]:
    """Configurations that are allowed but weaker than they look."""
    host, _ = split_address(settings.listen)
    warnings: list[str] = []
    if is_loopback(host):
        return warnings
    if settings.auth_configured and not settings.tls_enabled:
        warnings.append(
            f"API keys are on but TLS is off: keys cross the network in clear on {settings.listen}"
        )
    if not settings.auth_configured and settings.allow_insecure:
        warnings.append(
            f"listening on {settings.listen} without API keys (allowed explicitly): "
            "any caller that can reach it sees every account"
        )
    return warnings


def config_problem(settings: GatewaySettings) -> str | None:
    """Load the key file and TLS files once, so a bad path or entry fails before serving."""
    from trading_gateway.server.auth.errors import KeyFileError
    from trading_gateway.server.auth.keys import load_keyring
    from trading_gateway.server.auth.tls import TlsFileError, server_credentials

    try:
        load_keyring(settings.api_keys_file, settings.api_keys)
        if settings.tls_cert_file and settings.tls_key_file:
            server_credentials(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
    except (KeyFileError, TlsFileError) as exc:
        return str(exc)
    return None
