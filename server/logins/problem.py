"""What is wrong with one part of the logins file, before it becomes a ``SettingError``.

The loader (server/logins/load.py) adds the setting and the file's path in front, so the
start-up line reads ``GATEWAY_LOGINS_FILE=PATH: {problem}; {fix}``. Neither part ever
holds a secret.
"""

from __future__ import annotations


class FileProblem(Exception):
    """``problem`` names the entry and what is wrong; ``fix`` says what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix
