"""Fixtures of the replicas tests."""

from tests.replicas.lease_support import settled_redis  # noqa: F401
