"""Replicas over Redis (issue 19): what lets several gateway processes share one login.

Each module is one concern with its contract in its docstring; docs/REPLICAS.md gives the
overview. Nothing here knows gRPC or protos.
"""
