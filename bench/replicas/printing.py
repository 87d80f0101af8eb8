"""The replicas section's console output: the report's tables (bench/report_md.py columns,
one definition for both), as plain aligned text, printed as measured."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from bench.report_md import Column


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[str]:
    cells = [[fmt(row.get(key)) for _, key, fmt in columns] for row in rows]
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
