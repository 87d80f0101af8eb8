"""Shared test support: a running simulator + gateway + channel (see stack.py)."""

from tests.support.stack import Stack, running_gateway, running_stack, settings_for

__all__ = ["Stack", "running_gateway", "running_stack", "settings_for"]
