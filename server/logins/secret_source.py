"""Where one login's password or API secret is kept: an environment variable or a file.

The logins file only ever names the place (``password_env = "DESK_A_PASSWORD"``,
``secret_file = "/run/secrets/desk-a"``); the value is read at start-up and never shown.
A file's value is its text without one trailing newline; a relative path is taken from
the logins file's own folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trading_gateway.server.logins.problem import FileProblem

Kind = Literal["env", "file"]


@dataclass(frozen=True, slots=True)
class SecretSource:
    """``what`` ("password" or "secret") is read from ``where``, a variable or a path."""

    what: str
    kind: Kind
    where: str

    @property
    def key(self) -> str:
        """The file's key that named it: ``password_env``, ``secret_file``, ..."""
        return f"{self.what}_{self.kind}"

    def describe(self) -> str:
        """``env DESK_A_PASSWORD`` or ``file /run/secrets/desk-a`` (never the value)."""
        return f"{self.kind} {self.where}"

    def read(self, environ: Mapping[str, str], base: Path, label: str) -> str:
        """The value, or a FileProblem naming ``label`` (the entry) and what to do."""
        if self.kind == "env":
            return self._from_environ(environ, label)
        return self._from_file(base, label)

    def _from_environ(self, environ: Mapping[str, str], label: str) -> str:
        other = f"{self.what}_file"
        value = environ.get(self.where)
        if value is None:
            raise FileProblem(
                f"{label}: {self.key} {self.where} is not set",
                f"export it or use {other}",
            )
        if not value:
            raise FileProblem(
                f"{label}: {self.key} {self.where} is empty",
                f"export the {self.what} in it or use {other}",
            )
        return value

    def _from_file(self, base: Path, label: str) -> str:
        other = f"{self.what}_env"
        path = base / self.where
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FileProblem(
                f"{label}: {self.key} {self.where} cannot be read ({exc.strerror})",
                f"check the path (relative paths start at the logins file's folder) and its "
                f"permissions, or use {other}",
            ) from None
        except UnicodeDecodeError:
            raise FileProblem(
                f"{label}: {self.key} {self.where} is not UTF-8 text",
                f"write the {self.what} alone in it, as text",
            ) from None
        value = text.removesuffix("\n").removesuffix("\r")
        if not value:
            raise FileProblem(
                f"{label}: {self.key} {self.where} is empty",
                f"write the {self.what} in it or use {other}",
            )
        return value
