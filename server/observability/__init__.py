"""Metrics and logging for the gateway."""
