"""An account as the deployment sees it: which login sees it, and Tradovate's record."""

from __future__ import annotations

from dataclasses import dataclass

from trading_gateway.server.broker.schemas import Account


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
