"""Small helpers shared by the ``memzoo`` CLI modules."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["print_result", "table"]


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text table."""
    cells = [header, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def print_result(data: Any, as_json: bool, text: str) -> None:
    """Print JSON (machine-readable) or the human-readable text."""
    print(json.dumps(data, indent=2, sort_keys=True) if as_json else text)
