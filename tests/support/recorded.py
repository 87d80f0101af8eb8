"""Recorded Tradovate messages under tests/data/tradovate/, loaded by name.

Each file holds one message as it crosses the wire, built from the shapes documented in
shared/reference/tradovate-api.md (tests/data/tradovate/README.md names the section each
one follows): ``rest/*.json`` are HTTP response bodies, ``ws/*.txt`` are WebSocket text
frames (``o``, ``h``, ``a[...]``, ``c[...]``) exactly as the socket delivers them. Tests
decode them through the broker's own codecs, so a codec change that stops reading a
documented shape fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

DATA_DIR: Final = Path(__file__).resolve().parents[1] / "data" / "tradovate"


def _path(folder: str, name: str) -> Path:
    path = DATA_DIR / folder / name
    if not path.is_file():
        known = sorted(p.name for p in (DATA_DIR / folder).iterdir())
        raise FileNotFoundError(f"no recorded message {folder}/{name}; recorded: {known}")
    return path


def rest_body(name: str) -> bytes:
    """A recorded REST response body (``rest/<name>``), byte for byte."""
    return _path("rest", name).read_bytes()


def ws_frame(name: str) -> str:
    """A recorded WebSocket text frame (``ws/<name>``), as the socket hands it over."""
    return _path("ws", name).read_text(encoding="utf-8")


def recorded_names(folder: str) -> list[str]:
    """Every recorded file in ``rest`` or ``ws``, sorted (for tests that cover them all)."""
    return sorted(p.name for p in (DATA_DIR / folder).iterdir() if p.is_file())
