"""A problem found in a model's answer, located by table, row key and field (and the part of a phase
that wrote it), as the model reads it.

Problems travel as data from where they are found (the saver's checks, the catalog's rules, an
outline's check, PostgreSQL's rejection) to where they are used (the repair message of the part that
wrote the row, the error's text, ``phase_runs.dropped_rows``); nothing re-reads their text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_QUOTED_CHARS = 120
# What a problem list may cost: the repair prompt and the error in the Step Functions payload
# (256 KB) list at most this many problems, each in at most MAX_PROBLEM_CHARS.
MAX_PROBLEMS_LISTED = 50
MAX_PROBLEM_CHARS = 400


def clip(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class Problem:
    """A problem located at a row (``key``, else ``index``) of a table; str() is what the model reads.

    ``part``: the part of a phase in parts whose answer holds the row (None: the phase's one call, or
    not known yet). A problem with no ``table`` is about the answer as a whole (no tool call)."""

    table: str
    problem: str
    index: int | None = None
    key: str | None = None
    column: str | None = None
    part: int | None = None

    def __str__(self) -> str:
        if not self.table:
            return self.problem
        where = self.table
        if self.key is not None:
            where += f"[key={clip(self.key)}]"  # a 1 MB key must not crowd out what is wrong with it
        elif self.index is not None:
            where += f"[{self.index}]"
        if self.column:
            where += f".{self.column}"
        return f"{where}: {self.problem}"


def as_problem(problem: Problem | str) -> Problem:
    """``problem`` as data; a text that no check located is about the answer as a whole."""
    return problem if isinstance(problem, Problem) else Problem("", problem)


def listing(problems: Sequence[Problem | str], count: int | None = None, limit: int = MAX_PROBLEMS_LISTED) -> list[str]:
    """At most ``limit`` problems as the model reads them, each clipped, and a line counting the others
    (``count``: how many there are in all, when more were found than kept)."""
    count = len(problems) if count is None else count
    listed = [clip(str(p), MAX_PROBLEM_CHARS) for p in problems[:limit]]
    if count > len(listed):
        listed.append(f"... and {count - len(listed)} more problem(s) of the same kinds")
    return listed
