"""A problem found in a phase's rows, located by table, row key and field, as the model reads it.

Shared by validation (``db/validation.py``) and the saver (``db/save.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_QUOTED_CHARS = 120


def clip(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class Problem:
    """A problem located at a row (``key``, else ``index``) of a table; str() is what the model reads."""

    table: str
    problem: str
    index: int | None = None
    key: str | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.table
        if self.key is not None:
            where += f"[key={clip(self.key)}]"  # a 1 MB key must not crowd out what is wrong with it
        elif self.index is not None:
            where += f"[{self.index}]"
        if self.column:
            where += f".{self.column}"
        return f"{where}: {self.problem}"
