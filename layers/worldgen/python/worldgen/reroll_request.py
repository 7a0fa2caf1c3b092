"""What a reroll asks (``worldgen.reroll``): the row's neighbourhood (every row it refers to and every
row referring to it, whole), the one-row tool whose references are held to that neighbourhood, and
the request built from them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from worldgen.db.context import PhaseContext, load_player_characters
from worldgen.db.save import WORLD_TABLE_SET, existing_keys
from worldgen.model.base import ModelRequest
from worldgen.outline import ASSIGNED_MARKER
from worldgen.phases import WORLD_TABLES, Phase
from worldgen.prompts import reroll_prompt, system_prompt
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import table_schema

PC_TABLE = "player_characters"
TOOL_NAME = "reroll_row"
# The whole reroll (its calls and the save) answers inside the Hasura action's timeout (25 s,
# infra/hasura/metadata/actions.yaml; the action Lambda has 29 s): each call gets what is left of it.
REROLL_SECONDS = 20.0
MAX_TOKENS = 4096  # one row; a phase's budget would reserve far more of the rate limit


@dataclass
class Neighbourhood:
    """The row and the world around it, every reference written as a key."""

    row: dict[str, Any]  # the row in tool properties
    refers_to: list[tuple[str, dict[str, Any]]]  # (table, row) of every row it names
    referred_by: list[tuple[str, dict[str, Any]]]  # (table, row) of every row naming it
    keys: dict[str, dict[str, uuid.UUID]]  # key -> id of every row of the campaign, by table
    siblings: list[dict[str, Any]]  # the other rows of its table, in tool properties


def as_properties(whole: Mapping[str, Any], spec: TableSpec, id_to_key: Mapping[str, str]) -> dict[str, Any]:
    """A whole row as the model reads and writes it: its exposed columns, references as keys."""
    out: dict[str, Any] = {}
    for column in spec.exposed_columns:
        value = whole.get(column.name)
        if value is None:
            continue
        out[column.property_name] = id_to_key.get(str(value), str(value)) if column.references else value
    return out


def _neighbourhood(
    conn: psycopg.Connection[Any],
    campaign_id: Any,
    table: str,
    whole: dict[str, Any],
    specs: Mapping[str, TableSpec],
) -> Neighbourhood:
    keys = existing_keys(conn, campaign_id, set(WORLD_TABLES) | {PC_TABLE})
    id_to_key = {str(row_id): key for pool in keys.values() for key, row_id in pool.items()}
    spec = specs[table]
    selects: list[sql.Composable] = []
    for column in spec.foreign_keys:
        target = column.references or ""
        if whole.get(column.name) is not None and target in WORLD_TABLE_SET:
            selects.append(
                sql.SQL("SELECT {name} AS t, to_jsonb(x) AS row FROM {table} x WHERE id = {id}").format(
                    name=sql.Literal(target), table=sql.Identifier(target), id=sql.Literal(whole[column.name])
                )
            )
    referring: list[sql.Composable] = []
    for source in WORLD_TABLES:
        for column in specs[source].foreign_keys:
            if column.references == table:
                referring.append(
                    sql.SQL("SELECT {name} AS t, to_jsonb(x) AS row FROM {table} x WHERE {column} = {id}").format(
                        name=sql.Literal(source),
                        table=sql.Identifier(source),
                        column=sql.Identifier(column.name),
                        id=sql.Literal(whole["id"]),
                    )
                )
    refers_to = [(t, as_properties(r, specs[t], id_to_key)) for t, r in _union(conn, selects)]
    referred_by = [(t, as_properties(r, specs[t], id_to_key)) for t, r in _union(conn, referring)]
    siblings = conn.execute(
        sql.SQL("SELECT to_jsonb(t) AS row FROM {} t WHERE campaign_id = %s AND id <> %s ORDER BY key").format(
            sql.Identifier(table)
        ),
        (str(campaign_id), whole["id"]),
    ).fetchall()
    pcs = {row["key"]: row for row in load_player_characters(conn, campaign_id)}
    refers_to += [
        (PC_TABLE, pcs[id_to_key[str(whole[c.name])]])
        for c in spec.foreign_keys
        if c.references == PC_TABLE and whole.get(c.name) is not None and id_to_key.get(str(whole[c.name])) in pcs
    ]
    return Neighbourhood(
        row=as_properties(whole, spec, id_to_key),
        refers_to=refers_to,
        referred_by=referred_by,
        keys=keys,
        siblings=[as_properties(r["row"], spec, id_to_key) for r in siblings],
    )


def _union(conn: psycopg.Connection[Any], selects: list[sql.Composable]) -> list[tuple[str, dict[str, Any]]]:
    """(table, whole row) of each select, in one round trip."""
    if not selects:
        return []
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        return [(t, row) for t, row in cur.execute(sql.SQL(" UNION ALL ").join(selects))]


def _descendants(table: str, key: str, siblings: list[dict[str, Any]], prop: str) -> set[str]:
    """The keys under ``key`` in a hierarchy of ``table`` through ``prop`` (a parent may not be one)."""
    children: dict[str, list[str]] = {}
    for row in siblings:
        if isinstance(row.get(prop), str):
            children.setdefault(row[prop], []).append(row["key"])
    found: set[str] = set()
    queue = [key]
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def reroll_tool(
    table: str, spec: TableSpec, around: Neighbourhood, key: str, *, open_references: bool
) -> dict[str, Any]:
    """The tool of a reroll: exactly one row of ``table``, keeping ``key``; each reference an enum of
    its current value, or (``open_references``, a hint was given) of every row it may name."""
    rows = table_schema(spec, 1)
    rows["minItems"] = 1
    item = rows["items"]
    item["properties"]["key"]["enum"] = [key]
    for column in spec.foreign_keys:
        prop, target = column.property_name, column.references or ""
        if prop not in item["properties"]:
            continue
        current = around.row.get(prop)
        if open_references:
            excluded = {key} | (_descendants(table, key, around.siblings, prop) if target == table else set())
            choices = sorted(k for k in around.keys.get(target, {}) if k not in excluded)
        else:
            choices = [current] if current is not None else []
        if choices:
            item["properties"][prop]["enum"] = choices
        elif prop not in item["required"]:
            del item["properties"][prop]
    return {
        "name": TOOL_NAME,
        "description": f"Record the rerolled {table} row {key!r}: exactly one row, keeping its key.",
        "input_schema": {
            "type": "object",
            "properties": {table: rows},
            "required": [table],
            "additionalProperties": False,
        },
    }


def _lines(rows: list[tuple[str, dict[str, Any]]]) -> str:
    return "\n".join(f"{table}: {json.dumps(row, ensure_ascii=False)}" for table, row in rows)


def reroll_request(
    phase: Phase,
    spec: TableSpec,
    key: str,
    hint: str | None,
    campaign: dict[str, Any],
    pcs: list[dict[str, Any]],
    around: Neighbourhood,
    tool: dict[str, Any],
    *,
    seed: int,
) -> ModelRequest:
    """The one request of a reroll (the first round); ``tool`` is ``reroll_tool``'s."""
    table = spec.name
    campaign_text = "\n".join(
        [f"Name: {campaign['name']}", f"Setting: {campaign['setting']}", f"Tone: {campaign['tone']}"]
        + ["Player characters:"]
        + [json.dumps(pc, ensure_ascii=False) for pc in pcs]
    )
    prompt = reroll_prompt(
        table=table,
        key=key,
        hint=hint,
        tool_name=TOOL_NAME,
        campaign=campaign_text,
        row=json.dumps(around.row, ensure_ascii=False),
        refers_to=_lines(around.refers_to),
        referred_by=_lines(around.referred_by),
    )
    # The marker the parts of a phase use to say which rows a call writes (worldgen.outline).
    prompt += f"\n\n{ASSIGNED_MARKER}{json.dumps({table: [key]})}"
    rows: dict[str, list[dict[str, Any]]] = {table: [around.row]}
    for source, row in [*around.refers_to, *around.referred_by]:
        if source != PC_TABLE:
            rows.setdefault(source, []).append(row)
    context = PhaseContext(
        phase=phase.id,
        campaign={k: campaign[k] for k in ("name", "setting", "tone")},
        player_characters=pcs,
        rows=rows,
        keys={t: sorted(pool) for t, pool in around.keys.items()},
    )
    offered = tool["input_schema"]["properties"][table]["items"]["properties"]
    references = {c.property_name: c.references or "" for c in spec.foreign_keys if c.property_name in offered}
    return ModelRequest(
        phase=phase,
        system=system_prompt(),
        messages=[{"role": "user", "content": prompt}],
        tool=tool,
        max_tokens=min(MAX_TOKENS, phase.max_tokens),
        context=context,
        references={table: references},
        options={"seed": seed, "scale": 1.0},
        deadline_seconds=REROLL_SECONDS,
        assigned={table: [key]},
        tables=(table,),
    )


# -- reroll ---------------------------------------------------------------------------------------
