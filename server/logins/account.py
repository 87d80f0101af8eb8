"""An account as the deployment sees it: which login sees it, and Tradovate's record."""

from __future__ import annotations

from dataclasses import dataclass

from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.logins.spec import NAME_PATTERN


@dataclass(frozen=True, slots=True)
class LoginAccount:
    """``account`` as seen by the login named ``login`` (an account id is unique within a
    login; two logins may both see the same account)."""

    login: str
    account: Account

    @property
    def id(self) -> int:
        return self.account.id

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def qualified(self) -> str:
        """The unambiguous selector entry for it: ``login/name``."""
        return f"{self.login}/{self.account.name}"


def split_entry(text: str) -> tuple[str | None, str]:
    """``"login/rest"`` → ``(login, rest)`` when the part before the first ``/`` is a login
    name (NAME_PATTERN); otherwise ``(None, text)``: a bare account name or id. The one
    reading of the ``login/name`` and ``login/id`` form (the inverse of ``qualified``)."""
    login, slash, rest = text.partition("/")
    if slash and rest and NAME_PATTERN.fullmatch(login):
        return login, rest
    return None, text
