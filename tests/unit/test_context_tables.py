"""How a phase is told the world: each table a header of its columns, then one line of values per row."""

from __future__ import annotations

from typing import Any

from worldgen.db.context import EMPTY_CELL, PhaseContext


def context(**fields: Any) -> PhaseContext:
    return PhaseContext(
        phase="2B",
        campaign={"name": "The Ashen Crown", "setting": "An archipelago.", "tone": "grim"},
        player_characters=fields.pop("player_characters", []),
        rows=fields.pop("rows", {}),
        keys={},
        **fields,
    )


def cells(line: str) -> list[str | None]:
    """A rendered row read back: cells split at each bar not escaped, a backslash taking the next
    character as it is ("\\n" a line break), "-" an empty cell."""
    found: list[str | None] = []
    cell, escaped, chars = "", False, iter(line)
    for char in chars:
        if char == "\\":
            following = next(chars)
            cell += "\n" if following == "n" else following
            escaped = True
        elif char == "|":
            found.append(_read(cell, escaped))
            cell, escaped = "", False
        else:
            cell += char
    found.append(_read(cell, escaped))
    return found


def _read(cell: str, escaped: bool) -> str | None:
    text = cell.removeprefix(" ").removesuffix(" ")
    return None if text == EMPTY_CELL and not escaped else text


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The rendered context's tables read back: the line after each "## name" heading names the
    columns, each line after it until the next heading or sentence is a row."""
    found: dict[str, list[dict[str, str]]] = {}
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if line.startswith("## "):
            table = line[3:].split(":")[0]
            columns = [c for c in cells(lines[n + 1]) if c]
            found[table] = []
            for row in lines[n + 2 :]:
                if row.startswith("## ") or row.startswith("Rows left out"):
                    break
                values = cells(row)
                assert len(values) == len(columns), row
                found[table].append({c: v for c, v in zip(columns, values, strict=True) if v is not None})
    return found


def test_a_row_renders_its_values_under_its_tables_header_with_empty_cells_for_missing_columns() -> None:
    rows = [
        {"key": "vaerakerfall", "name": "Vaerakerfall", "kind": "city", "population": 2000, "capital": True},
        {"key": "the-hollow", "name": "The Hollow", "parent_location_key": "vaerakerfall"},
    ]
    text = context(rows={"locations": rows}).render()

    heading = text.split("## locations\n", 1)[1].split("\n")
    assert heading[0] == "key | name | kind | population | capital | parent_location_key"  # each name once
    assert heading[1] == "vaerakerfall | Vaerakerfall | city | 2000 | true | -"
    assert heading[2] == "the-hollow | The Hollow | - | - | - | vaerakerfall"
    assert '"key"' not in text
    assert tables(text)["locations"] == [
        {"key": "vaerakerfall", "name": "Vaerakerfall", "kind": "city", "population": "2000", "capital": "true"},
        {"key": "the-hollow", "name": "The Hollow", "parent_location_key": "vaerakerfall"},
    ]


def test_a_bar_or_line_break_inside_a_summary_cannot_break_the_row_apart() -> None:
    summary = "Salt | smoke\nand a back\\slash;\r\nthen\u2028more | -"
    rows = [
        {"key": "harbour", "summary": summary, "kind": "port"},
        {"key": "dash", "name": "-", "summary": "|"},
    ]
    text = context(rows={"locations": rows}).render()

    assert len(text.split("## locations\n", 1)[1].split("\n")) == 3  # the header and one line per row
    assert tables(text)["locations"] == [
        {"key": "harbour", "summary": "Salt | smoke\nand a back\\slash;\nthen\nmore | -", "kind": "port"},
        {"key": "dash", "name": "-", "summary": "|"},
    ]


def test_the_party_and_the_kept_rows_are_tables_too() -> None:
    party = [{"key": "lyra", "name": "Lyra", "level": 3}, {"key": "tam", "name": "Tam", "race": "human"}]
    kept = {"locations": [{"key": "old-keep", "name": "Old Keep", "roles": 2}]}
    text = context(player_characters=party, kept=kept).render()

    assert "Player characters (weave every one of them in):\nkey | name | race | level\n" in text
    assert "lyra | Lyra | - | 3\ntam | Tam | human | -" in text
    assert tables(text)["locations"] == [{"key": "old-keep", "name": "Old Keep", "roles": "2"}]


def test_a_tables_columns_are_those_it_is_given_in_their_order() -> None:
    rows = {"entities": [{"key": "mira", "summary": "A smuggler."}]}
    text = context(rows=rows, columns={"entities": ["key", "name", "summary", "roles"]}).render()

    assert "## entities\nkey | name | summary | roles\nmira | - | A smuggler. | -" in text
