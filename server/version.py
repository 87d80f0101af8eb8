"""The gateway's version and, when it can be known, the git commit it was built from.

The version is the installed package's. The commit comes from ``TRADING_GATEWAY_GIT_SHA`` (an
image build can set it) or, for a source checkout, from its ``.git`` directory, read as
files (no subprocess). Unknown is ``"unknown"``.
"""

from __future__ import annotations

import functools
import os
import pathlib
from importlib import metadata
from typing import Final

PACKAGE: Final = "trading-gateway"
UNKNOWN: Final = "unknown"


@functools.cache
def version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return UNKNOWN


@functools.cache
def git_sha() -> str:
    given = os.environ.get("TRADING_GATEWAY_GIT_SHA", "").strip()
    if given:
        return given[:40]
    try:
        return _sha_from_checkout(pathlib.Path(__file__).resolve().parent.parent) or UNKNOWN
    except (OSError, ValueError):
        return UNKNOWN


def _sha_from_checkout(root: pathlib.Path) -> str | None:
    git = root / ".git"
    if git.is_file():  # a worktree: "gitdir: /path/to/repo/.git/worktrees/name"
        git = pathlib.Path(git.read_text().split(":", 1)[1].strip())
    if not git.is_dir():
        return None
    head = (git / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head[:12] or None
    ref = head.split(":", 1)[1].strip()
    for base in (git, _common_dir(git)):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip()[:12]
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha[:12]
    return None


def _common_dir(git: pathlib.Path) -> pathlib.Path:
    common = git / "commondir"
    return (git / common.read_text().strip()).resolve() if common.is_file() else git
