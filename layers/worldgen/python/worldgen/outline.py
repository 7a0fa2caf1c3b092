"""Phases in parts (``Phase.parts``) and outlined phases (``Phase.outline``): the requests they send.

An outlined phase first asks for an outline: every row's key, a gist (at most GIST_WORDS words: what
the row is) and, where it applies, the player character it serves and its role (mentor, rival, quest
giver, ruler...). The outline thereby fixes the phase's quotas (who serves which PC, who plays which
role); then its parts write the rows side by side, each exactly the keys dealt to it, told the gists
of the rows it writes and of those it may refer to: its share of the quotas, and what the outline
meant by every key. A phase in parts without an outline (no part refers
to another's tables) first sends a one-token primer.

Every call of a phase in parts sends the same tools (the phase tool with no table required, plus
the outline tool when there is one) and the same system prefix (the phase prompt with its context,
cached), and differs only in the forced tool and the last user message: the parts read from the
cache what the outline call or the primer wrote. A part's message lists the outline keys its
tables may refer to and the keys it writes; the checks here hold it to them. The messages' words
are in ``prompts/parts.toml``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from worldgen import prompts
from worldgen.db.validation import outline_problems
from worldgen.model.base import ModelRequest
from worldgen.phases import OUTLINE_MAX_TOKENS, PRIMER_MAX_TOKENS, Phase, stream_deadline_seconds

# Lines of a part's message that the test stand-in reads (it answers from the HTTP body alone).
OUTLINE_MARKER = "The phase's outline (JSON): "
ASSIGNED_MARKER = "This call writes these rows (JSON): "
TABLES_MARKER = "This call writes these tables (JSON): "
ANCHORS_MARKER = "This call writes these tables' rows only for these keys (JSON, table: [reference, keys]): "

GISTS_MARKER = "What the outline says of these rows (JSON, key: gist [PC served, role]): "
GIST_WORDS = 12  # a gist says what a row is; the part that writes the row gives it the rest
ROLE_WORDS = 3

Outline = dict[str, list[dict[str, str]]]  # table -> [{"key", "gist", "player_character_key"?, "role"?}]


def _describe(field: str, **fields: Any) -> str:
    return prompts.text("parts", f"outline_tool.{field}", **fields)


def outline_tool(phase: Phase, player_characters: Sequence[str] = ()) -> dict[str, Any]:
    """Every row's key and gist, and where it applies the PC it serves and its role: a few tokens a
    row that tell each part what the outline meant by a key and deal the phase's quotas out."""
    entry: dict[str, Any] = {
        "type": "object",
        "properties": {
            "key": {"type": "string", "description": _describe("key")},
            "gist": {"type": "string", "description": _describe("gist", gist_words=GIST_WORDS)},
            "player_character_key": {
                "type": "string",
                "description": _describe("player_character_key"),
                **({"enum": list(player_characters)} if player_characters else {}),
            },
            "role": {"type": "string", "description": _describe("role", role_words=ROLE_WORDS)},
        },
        "required": ["key", "gist"],
        "additionalProperties": False,
    }
    return {
        "name": f"{phase.tool_name}_outline",
        "description": _describe("description", phase_id=phase.id),
        "input_schema": {
            "type": "object",
            "properties": {
                t: {"type": "array", "items": entry, "maxItems": phase.max_rows_per_table} for t in phase.tables
            },
            "required": list(phase.tables),
            "additionalProperties": False,
        },
    }


def _party(request: ModelRequest) -> list[str]:
    return list(request.context.keys.get("player_characters", []))


def gist_line(row: dict[str, str]) -> str:
    """An outline row as a part reads it: its gist, and the PC it serves and its role when given."""
    served = [f"serves {row['player_character_key']}" if row.get("player_character_key") else ""]
    served += [f"as {row['role']}" if row.get("role") else ""]
    extra = " ".join(s for s in served if s)
    return row.get("gist", "") + (f" [{extra}]" if extra else "")


def rows_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The phase tool as every part of an outlined phase sees it: the same for all, no table required."""
    return {**tool, "input_schema": {**tool["input_schema"], "required": []}}


def outline_request(request: ModelRequest) -> ModelRequest:
    """The first call of an outlined phase, built from the phase's single-call request."""
    tool = outline_tool(request.phase, _party(request))
    text = prompts.text(
        "parts", "outline_request", phase_id=request.phase.id, tool_name=tool["name"], gist_words=GIST_WORDS
    )
    asked = shared_request(request, tool, text)
    return dataclasses.replace(
        asked, max_tokens=OUTLINE_MAX_TOKENS, deadline_seconds=stream_deadline_seconds(OUTLINE_MAX_TOKENS)
    )


def part_request(request: ModelRequest, outline: Outline, assigned: dict[str, list[str]]) -> ModelRequest:
    """A part of an outlined phase: the rows of ``assigned`` (table -> keys), in full. Its message
    lists the outline's rows its tables may refer to (not the whole outline: every part pays for
    its own message) and the rows it writes."""
    referred = {
        target for table in assigned for target in request.references.get(table, {}).values() if target in outline
    }
    visible = {t: rows for t, rows in outline.items() if t in referred}
    own = {t: [r for r in outline[t] if r["key"] in keys] for t, keys in assigned.items()}
    gists = {t: {r["key"]: gist_line(r) for r in rows} for t, rows in {**visible, **own}.items() if rows}
    text = prompts.text(
        "parts",
        "part_request",
        phase_id=request.phase.id,
        tool_name=request.phase.tool_name,
        tables=", ".join(assigned),
        outline_marker=OUTLINE_MARKER,
        outline=json.dumps({t: [r["key"] for r in rows] for t, rows in visible.items()}),
        assigned_marker=ASSIGNED_MARKER,
        assigned=json.dumps(assigned),
        gists_marker=GISTS_MARKER,
        gists=json.dumps(gists, ensure_ascii=False),
    )
    shared = shared_request(request, rows_tool(request.tool), text)
    rows = {t: outline[t] for t in assigned}  # the procedural model walks its rows in outline order
    return dataclasses.replace(shared, outline={**visible, **rows}, assigned=assigned, tables=tuple(assigned))


def table_part_request(request: ModelRequest, tables: tuple[str, ...]) -> ModelRequest:
    """A part of a phase without an outline (no part refers to another's tables): some of its tables."""
    text = prompts.text(
        "parts",
        "table_part_request",
        phase_id=request.phase.id,
        tool_name=request.phase.tool_name,
        tables=", ".join(tables),
        tables_marker=TABLES_MARKER,
        tables_json=json.dumps(list(tables)),
    )
    return dataclasses.replace(shared_request(request, rows_tool(request.tool), text), tables=tables)


def primer_request(request: ModelRequest) -> ModelRequest:
    """The shared prefix of a phase's parts, sent once before them so they read it from the cache."""
    text = prompts.text("parts", "primer_request")
    primer = shared_request(request, rows_tool(request.tool), text)
    return dataclasses.replace(
        primer, max_tokens=PRIMER_MAX_TOKENS, deadline_seconds=stream_deadline_seconds(PRIMER_MAX_TOKENS)
    )


def shared_request(request: ModelRequest, tool: dict[str, Any], text: str) -> ModelRequest:
    """``request`` laid out as every call of a phase in parts sends it: the same tools, the phase
    prompt (with its context) as a cached system block, then ``text`` as the only user message."""
    first = request.messages[0]
    outlined = [outline_tool(request.phase, _party(request))] if request.phase.outline else []
    tools = [rows_tool(request.tool), *outlined]
    return dataclasses.replace(
        request,
        tool=tool,
        tools=tools,
        shared_prompt=str(first["content"]),
        messages=[{"role": "user", "content": text}],
    )


def check_outline(
    phase: Phase, answer: Any, taken: dict[str, set[str]], player_characters: Sequence[str] = ()
) -> tuple[Outline, list[str]]:
    """The outline with its keys slugged, and every problem of it (``taken``: keys of kept rows)."""
    outline, problems = outline_problems(
        phase, answer, taken, player_characters, gist_words=GIST_WORDS, role_words=ROLE_WORDS
    )
    return outline, [str(p) for p in problems]


def deal(phase: Phase, outline: Outline) -> list[dict[str, list[str]]]:
    """Each part's rows (table -> keys): a table's outline rows dealt out between its parts in turn."""
    parts: list[dict[str, list[str]]] = [{} for _ in phase.table_groups]
    for table in phase.tables:
        holders = phase.parts_writing(table)
        for n, row in enumerate(outline.get(table, [])):
            parts[holders[n % len(holders)]].setdefault(table, []).append(row["key"])
    return parts


def assigned_problems(answer: dict[str, Any], assigned: dict[str, list[str]]) -> list[str]:
    """A part's rows against the keys it was given: none missing, none extra."""
    problems = []
    for table, keys in assigned.items():
        rows = answer.get(table)
        written = [r.get("key") for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        extra = [k for k in written if k not in keys]
        missing = [k for k in keys if k not in written]
        if extra:
            problems.append(f"{table}: keys not among this call's rows: {extra}; write exactly {keys}")
        if missing:
            problems.append(f"{table}: rows missing for the outline's keys {missing}")
    return problems
