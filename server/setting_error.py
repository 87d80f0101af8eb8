"""A setting the gateway cannot start with, told in one line a person can act on.

``trading-gateway serve`` prints ``str(error)`` as its only stderr line and exits 2: the
environment variable (and flag) to change, the value it has (never a secret: passwords in
URLs are masked), what is wrong with it, and what to do.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class SettingError(Exception):
    """``setting`` (an environment variable) has ``value``, which cannot work."""

    def __init__(self, setting: str, value: str, problem: str, fix: str) -> None:
        super().__init__(f"{setting}={value}: {problem}; {fix}")
        self.setting = setting
        self.value = value
        self.problem = problem
        self.fix = fix


def masked_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (``redis://:***@host:6379/0``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
