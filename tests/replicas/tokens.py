"""Helpers for the shared-token tests: keys, tokens and sealers (registered as secrets)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets

from tests.support.secret_scan import register_secret
from trading_gateway.server.broker.token_source import SharedToken
from trading_gateway.server.replicas.token_seal import TokenSealer


def new_key() -> bytes:
    key = os.urandom(32)
    register_secret(base64.b64encode(key).decode())
    return key


def key_text(key: bytes) -> str:
    return base64.b64encode(key).decode()


def token(seconds: float = 600.0, *, user_id: int = 42) -> SharedToken:
    access, md = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    register_secret(access, md)
    return SharedToken(
        access_token=access,
        md_access_token=md,
        user_id=user_id,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds),
    )


def sealer(key: bytes | None = None, *old: bytes) -> TokenSealer:
    return TokenSealer(key if key is not None else new_key(), old)
