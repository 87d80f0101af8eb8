"""The replicas section's console output: plain aligned tables, printed as measured."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

Column = tuple[str, str, str]  # heading, row key, format ("ms", "s", "x", "n", "text")


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "ms":
        return f"{float(value):.2f}"
    if kind == "s":
        return f"{float(value):.2f}"
    if kind == "x":
        return f"{float(value):.2f}x"
    if kind == "n":
        return f"{float(value):,.0f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[str]:
    cells = [[cell(row.get(key), kind) for _, key, kind in columns] for row in rows]
    widths = [
        max([len(head)] + [len(line[i]) for line in cells])
        for i, (head, _, _) in enumerate(columns)
    ]

    def line(parts: Sequence[str]) -> str:
        first, *rest = parts
        return "  ".join(
            [first.ljust(widths[0])] + [p.rjust(w) for p, w in zip(rest, widths[1:], strict=True)]
        )

    return [line([c[0] for c in columns])] + [line(c) for c in cells]


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    say()
    say(title)
    for text in table(rows, columns):
        say("  " + text)
