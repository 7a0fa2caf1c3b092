"""Who an export is for: the game master (everything) or the players (nothing they must not know).

A players export is the world document with every ``gm_notes`` and every ``is_secret`` flag taken
out, every secret link (a relationship row marked ``is_secret``) left out, and every row that only a
secret link ties to the rest of the world (a cult known to nobody, met only through a spy's secret
membership) left out with it. Every format renders from that document, so none can show what it
does not hold, and none says what was left out.

Before a players export is written, ``leaks`` reads what remains against what was taken out: a
sentence of a row's gm_notes (8 words or more, compared without case) found in any player-visible
text, or the other end of a secret link named in the player-visible text of a row it ties (when
nothing public ties the two), refuses the export, naming the row and the column.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from worldgen.contracts import GM_AUDIENCE as GM
from worldgen.contracts import GM_NOTES_COLUMN, SECRET_LINK_COLUMN
from worldgen.contracts import PLAYERS_AUDIENCE as PLAYERS
from worldgen.tools.export.world import AUDIENCE_FIELD, PC_TABLE, reference_fields

# A gm_notes sentence this long is the model's own words, not a common phrase.
LEAK_SENTENCE_WORDS = 8
_NOT_WORLD = frozenset({"generations"})
_AUDIT = ("phase_runs", "model_calls")

Row = tuple[str, str]  # (table, key)


@dataclass(frozen=True)
class Leak:
    """Where a players export would show a secret: the row and column that show it, and why."""

    table: str
    key: str
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table}[key={self.key}].{self.column} {self.reason}"


class SecretLeak(Exception):
    """A players export that would show a secret; ``leaks`` lists every place."""

    def __init__(self, leaks: list[Leak]) -> None:
        more = f" (and {len(leaks) - 1} more)" if len(leaks) > 1 else ""
        super().__init__(f"{leaks[0]}{more}")
        self.leaks = leaks


def for_audience(document: Mapping[str, Any], schema: Mapping[str, Any], audience: str) -> dict[str, Any]:
    """The document an export for ``audience`` renders; a players one only if nothing leaks."""
    if audience == GM:
        return {**document, AUDIENCE_FIELD: GM}
    if audience != PLAYERS:
        raise ValueError(f"unknown audience {audience!r}")
    players = players_document(document, schema)
    found = leaks(document, players, schema)
    if found:
        raise SecretLeak(found)
    return {**players, AUDIENCE_FIELD: PLAYERS}


def secret_link_tables(schema: Mapping[str, Any]) -> list[str]:
    tables = schema["properties"]["world"]["properties"]
    return [t for t, s in tables.items() if SECRET_LINK_COLUMN in s["items"]["properties"]]


def _is_secret(row: Mapping[str, Any]) -> bool:
    return bool(row.get(SECRET_LINK_COLUMN))


def _references(schema: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {
        table: {f: t for f, t in fields.items() if t not in _NOT_WORLD}
        for table, fields in reference_fields(schema).items()
    }


def _ends(table: str, row: Mapping[str, Any], references: Mapping[str, Mapping[str, str]]) -> list[Row]:
    return [(target, row[f]) for f, target in references[table].items() if row.get(f) is not None]


def _public_ties(
    document: Mapping[str, Any], references: Mapping[str, Mapping[str, str]], links: set[str]
) -> dict[Row, set[Row]]:
    """row -> the rows a player can see it tied to: its references, the rows referring to it, and the
    other ends of its public links (a public link row ties its ends to each other and to itself)."""
    ties: dict[Row, set[Row]] = {}

    def tie(a: Row, b: Row) -> None:
        ties.setdefault(a, set()).add(b)
        ties.setdefault(b, set()).add(a)

    for table, rows in document["world"].items():
        for row in rows:
            if table in links and _is_secret(row):
                continue
            ends = _ends(table, row, references)
            for end in ends:
                tie((table, row["key"]), end)
            if table in links:
                for i, a in enumerate(ends):
                    for b in ends[i + 1 :]:
                        tie(a, b)
    return ties


def players_document(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The document without gm_notes, secret flags, secret links and rows known only through them."""
    references = _references(schema)
    links = set(secret_link_tables(schema))
    hidden = _known_only_secretly(document, references, links)
    players = copy.deepcopy(dict(document))
    players["world"] = {
        table: [
            {k: v for k, v in row.items() if k not in (GM_NOTES_COLUMN, SECRET_LINK_COLUMN)}
            for row in rows
            if not (table in links and _is_secret(row)) and (table, row["key"]) not in hidden
        ]
        for table, rows in document["world"].items()
    }
    # The audit counts rows per table (the secret ones too) and names the calls: the game master's.
    for generation in players["generations"]:
        for table in _AUDIT:
            generation[table] = []
        generation["summary"] = None
    return players


def _known_only_secretly(
    document: Mapping[str, Any], references: Mapping[str, Mapping[str, str]], links: set[str]
) -> set[Row]:
    """The rows a secret link ties and nothing a player sees points at. A row is met through what
    refers to it (a place's ruler, a public membership), not through what it refers to itself; a row
    that only hidden rows refer to is hidden too."""
    secretly = {
        end
        for table in links
        for row in document["world"].get(table, [])
        if _is_secret(row)
        for end in _ends(table, row, references)
        if end[0] != PC_TABLE
    }
    hidden: set[Row] = set()
    while True:
        pointed_at = {
            end
            for table, rows in document["world"].items()
            for row in rows
            if not (table in links and _is_secret(row)) and (table, row["key"]) not in hidden
            for end in _ends(table, row, references)
        }
        found = secretly - pointed_at
        if found == hidden:
            return hidden
        hidden = found


# ---------------------------------------------------------------- the leak check


def _words(text: str) -> list[str]:
    """Words without case or punctuation: a sentence is found whatever quotes or commas surround it."""
    return re.findall(r"\w+", text.lower())


def _sentences(text: str) -> list[str]:
    """gm_notes sentences long enough to be the writer's own, normalized for comparison."""
    found = []
    for sentence in re.split(r"(?<=[.!?;])\s+|\n+", text):
        words = _words(sentence)
        if len(words) >= LEAK_SENTENCE_WORDS:
            found.append(" ".join(words))
    return found


def _visible_texts(players: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(table, key, column, normalized text) of every string a player reads."""

    def texts(table: str, key: str, row: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
        for column, value in row.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and item:
                    yield table, key, column, f" {' '.join(_words(item))} "

    yield from texts("campaigns", str(players["campaign"].get("name")), players["campaign"])
    for pc in players["player_characters"]:
        yield from texts(PC_TABLE, pc["key"], pc)
    for table, rows in players["world"].items():
        for row in rows:
            yield from texts(table, row["key"], row)


def _names(document: Mapping[str, Any]) -> dict[Row, str]:
    names = {(PC_TABLE, pc["key"]): pc["name"] for pc in document["player_characters"]}
    for table, rows in document["world"].items():
        for row in rows:
            if row.get("name"):
                names[(table, row["key"])] = row["name"]
    return names


def leaks(document: Mapping[str, Any], players: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Leak]:
    """Every place ``players`` would show a secret of ``document``, in the order of the world's tables."""
    found: list[Leak] = []
    visible = list(_visible_texts(players))
    everything = "\n".join(text for *_, text in visible)  # one search per sentence; where, only on a hit
    for table, rows in document["world"].items():
        for row in rows:
            for sentence in _sentences(row.get(GM_NOTES_COLUMN) or ""):
                if f" {sentence} " not in everything:
                    continue
                for where_table, where_key, column, text in visible:
                    if f" {sentence} " in text:  # whole words (the texts are padded with a space)
                        own = (where_table, where_key) == (table, row["key"])
                        source = "its" if own else f"{table}[key={row['key']}]'s"
                        found.append(
                            Leak(where_table, where_key, column, f"repeats a sentence of {source} {GM_NOTES_COLUMN}")
                        )
    references = _references(schema)
    links = set(secret_link_tables(schema))
    ties = _public_ties(players, references, links)
    names = _names(document)
    shown = {(t, r["key"]): r for t, rows in players["world"].items() for r in rows}
    shown |= {(PC_TABLE, pc["key"]): pc for pc in players["player_characters"]}
    for table in links:
        for link in document["world"].get(table, []):
            if not _is_secret(link):
                continue
            ends = _ends(table, link, references)
            for here in ends:
                for other in ends:
                    name = names.get(other)
                    if other == here or here not in shown or not name or other in ties.get(here, set()):
                        continue
                    pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)
                    for column, value in shown[here].items():
                        if column != "name" and isinstance(value, str) and pattern.search(value):
                            found.append(
                                Leak(
                                    here[0],
                                    here[1],
                                    column,
                                    f"names {other[0]}[key={other[1]}], tied to it only by the secret link"
                                    f" {table}[key={link['key']}]",
                                )
                            )
    return found
