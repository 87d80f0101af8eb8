"""Caller authentication and account scoping: API keys, scopes, brute-force limits, TLS.

- ``principal``: the calling key (name + scope) in a ContextVar, read by account selection.
- ``keys``: key generation, hashing, the JSON key file, constant-time checks.
- ``limiter``: per-peer lockout after repeated failures.
- ``tls``: server credentials from PEM files (mTLS with a client CA).
- ``policy``: when listening beyond loopback is allowed.
The gRPC interceptor lives in server/api/auth.py; see docs/SECURITY.md.
"""
