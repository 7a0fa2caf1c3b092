"""Phases in parts (``Phase.parts``) and outlined phases (``Phase.outline``): the requests they send.

An outlined phase first asks for an outline, the key of every row (keys only: a slug says what a
row is in a few tokens), then its parts write the rows side by side, each exactly the keys dealt to
it and free to refer to any key of the outline. A phase in parts without an outline (no part refers
to another's tables) first sends a one-token primer.

Every call of a phase in parts sends the same tools (the phase tool with no table required, plus
the outline tool when there is one) and the same system prefix (the phase prompt with its context,
cached), and differs only in the forced tool and the last user message: the parts read from the
cache what the outline call or the primer wrote. A part's message lists the outline keys its
tables may refer to and the keys it writes; the checks here hold it to them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from worldgen.db.rules import slug
from worldgen.model.base import ModelRequest
from worldgen.phases import OUTLINE_MAX_TOKENS, PRIMER_MAX_TOKENS, Phase, stream_deadline_seconds

# Lines of a part's message that the test stand-in reads (it answers from the HTTP body alone).
OUTLINE_MARKER = "The phase's outline (JSON): "
ASSIGNED_MARKER = "This call writes these rows (JSON): "
TABLES_MARKER = "This call writes these tables (JSON): "

Outline = dict[str, list[dict[str, str]]]  # table -> [{"key": ...}]


def outline_tool(phase: Phase) -> dict[str, Any]:
    """Keys only: a slug says what a row is ("the-glass-choir") and costs a few tokens; the part
    that writes the row gives it its name and the rest."""
    key = {"type": "string", "description": "Slug of a row, e.g. 'iron-marches'; fixed from now on."}
    return {
        "name": f"{phase.tool_name}_outline",
        "description": f"Record the outline of phase {phase.id}: the key of every row each table will have.",
        "input_schema": {
            "type": "object",
            "properties": {
                t: {"type": "array", "items": key, "maxItems": phase.max_rows_per_table} for t in phase.tables
            },
            "required": list(phase.tables),
            "additionalProperties": False,
        },
    }


def rows_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The phase tool as every part of an outlined phase sees it: the same for all, no table required."""
    return {**tool, "input_schema": {**tool["input_schema"], "required": []}}


def outline_request(request: ModelRequest) -> ModelRequest:
    """The first call of an outlined phase, built from the phase's single-call request."""
    tool = outline_tool(request.phase)
    text = (
        f"First the outline of phase {request.phase.id}: call {tool['name']} with the key of every row each"
        " table will have (a slug that says what the row is, e.g. 'the-glass-choir'), as many rows as the"
        " targets above ask for. Other calls then write the rows in full from these keys."
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
    text = (
        f"Now write rows of phase {request.phase.id} in full, with every field, by calling"
        f" {request.phase.tool_name} with these tables only: {', '.join(assigned)}. Write exactly the rows"
        " whose keys are listed below, one row per key; other calls write the phase's other rows at the"
        " same time. References may name the rows of the outline below or of the world so far.\n"
        f"{OUTLINE_MARKER}{json.dumps({t: [r['key'] for r in rows] for t, rows in visible.items()})}\n"
        f"{ASSIGNED_MARKER}{json.dumps(assigned)}"
    )
    shared = shared_request(request, rows_tool(request.tool), text)
    own = {t: outline[t] for t in assigned}  # the procedural model walks its rows in outline order
    return dataclasses.replace(shared, outline={**visible, **own}, assigned=assigned, tables=tuple(assigned))


def table_part_request(request: ModelRequest, tables: tuple[str, ...]) -> ModelRequest:
    """A part of a phase without an outline (no part refers to another's tables): some of its tables."""
    text = (
        f"Write rows of phase {request.phase.id} by calling {request.phase.tool_name} with these tables only:"
        f" {', '.join(tables)}. Other calls fill the phase's other tables at the same time.\n"
        f"{TABLES_MARKER}{json.dumps(list(tables))}"
    )
    return dataclasses.replace(shared_request(request, rows_tool(request.tool), text), tables=tables)


def primer_request(request: ModelRequest) -> ModelRequest:
    """The shared prefix of a phase's parts, sent once before them so they read it from the cache."""
    text = "This request only prepares the prompt cache for the calls that follow; answer with nothing."
    primer = shared_request(request, rows_tool(request.tool), text)
    return dataclasses.replace(
        primer, max_tokens=PRIMER_MAX_TOKENS, deadline_seconds=stream_deadline_seconds(PRIMER_MAX_TOKENS)
    )


def shared_request(request: ModelRequest, tool: dict[str, Any], text: str) -> ModelRequest:
    """``request`` laid out as every call of a phase in parts sends it: the same tools, the phase
    prompt (with its context) as a cached system block, then ``text`` as the only user message."""
    first = request.messages[0]
    tools = [rows_tool(request.tool)] + ([outline_tool(request.phase)] if request.phase.outline else [])
    return dataclasses.replace(
        request,
        tool=tool,
        tools=tools,
        shared_prompt=str(first["content"]),
        messages=[{"role": "user", "content": text}],
    )


def check_outline(phase: Phase, answer: Any, taken: dict[str, set[str]]) -> tuple[Outline, list[str]]:
    """The outline with its keys slugged, and every problem of it (``taken``: keys of kept rows)."""
    if not isinstance(answer, dict):
        return {}, [f"(input): expected an object with the tables {list(phase.tables)}"]
    outline: Outline = {}
    problems: list[str] = [f"{t}: not a table of this phase" for t in answer if t not in phase.tables]
    for table in phase.tables:
        rows = answer.get(table)
        if not isinstance(rows, list):
            problems.append(f"{table}: missing: give an array of keys (it may be empty)")
            continue
        if len(rows) > phase.max_rows_per_table:
            problems.append(f"{table}: {len(rows)} rows; at most {phase.max_rows_per_table}")
        seen: set[str] = set()
        outline[table] = []
        for index, row in enumerate(rows):
            given = row.get("key") if isinstance(row, dict) else row  # a key, or a row with one
            key = slug(given) if isinstance(given, str) else ""
            if not key:
                problems.append(f"{table}[{index}]: a key is required (a slug, e.g. 'iron-marches')")
            elif key in seen:
                problems.append(f"{table}[{index}] {key!r}: duplicate key in this table")
            elif key in taken.get(table, set()):
                problems.append(f"{table}[{index}] {key!r}: key taken by a kept (locked) row: choose another")
            else:
                seen.add(key)
                outline[table].append({"key": key})
    return outline, problems


def deal(phase: Phase, outline: Outline) -> list[dict[str, list[str]]]:
    """Each part's rows (table -> keys): a table's outline rows dealt out between its parts in turn."""
    parts: list[dict[str, list[str]]] = [{} for _ in phase.table_groups]
    for table in phase.tables:
        holders = [i for i, group in enumerate(phase.table_groups) if table in group]
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
