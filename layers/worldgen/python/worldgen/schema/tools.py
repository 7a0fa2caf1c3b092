"""TableSpec -> Anthropic tool definitions, one tool per phase.

The committed files in ``schema/generated/`` are built from the migrated catalog by
``make schemas``; ``tests/integration/test_tool_schemas.py`` rebuilds them and fails when stale.
At run time ``with_key_enums`` narrows references to earlier phases to the keys that exist.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from worldgen.contracts import GM_NOTES_COLUMN
from worldgen.phases import Phase, get_phase, row_target
from worldgen.schema.spec import ColumnSpec, TableSpec

# Package data: read through importlib.resources, wherever the package is laid out (repo or /opt/python).
GENERATED_PACKAGE = "worldgen.schema.generated"

# Rejected by Anthropic's strict tool use (grammar-constrained sampling); the saver checks them.
STRICT_UNSUPPORTED_KEYWORDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
     "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties"}
)  # fmt: skip

JSON_TYPES = {
    "text": "string",
    "integer": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "numeric": "number",
    "real": "number",
    "double precision": "number",
    "boolean": "boolean",
    "jsonb": "object",
    "json": "object",
}


def column_schema(column: ColumnSpec) -> dict[str, Any]:
    if column.references:
        target = "player character" if column.references == "player_characters" else column.references
        description = f"Key of the referenced row of {target}."
        if column.comment:
            description = f"{column.comment} (Key of a row of {column.references}.)"
        return {"type": "string", "description": description}
    if column.pg_type.endswith("[]"):
        schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    elif column.pg_type in JSON_TYPES:
        schema = {"type": JSON_TYPES[column.pg_type]}
    else:
        raise ValueError(f"column {column.name} has type {column.pg_type}, which no tool schema maps")
    if column.enum:
        schema["enum"] = list(column.enum)
    bounds = (("minimum", column.minimum), ("exclusiveMinimum", column.exclusive_minimum), ("maximum", column.maximum))
    for keyword, bound in bounds:
        if bound is not None and not column.enum:
            schema[keyword] = int(bound) if bound.is_integer() else bound
    if column.comment:
        schema["description"] = column.comment
    return schema


# The quick profile's text: what the players read and what only the game master reads. (Not is_secret:
# Q3's sixteen tables would then pass the 24 optional parameters of strict tool use.)
LEAN_PROPERTIES = ("key", "name", "description", GM_NOTES_COLUMN)


def table_schema(spec: TableSpec, max_items: int, *, lean: bool = False) -> dict[str, Any]:
    """A table's array schema; ``lean`` (the quick profile) offers only the required columns, the
    references and key, name and description: the model cannot spend tokens on optional details."""
    columns = [
        c for c in spec.exposed_columns if not lean or c.required or c.references or c.property_name in LEAN_PROPERTIES
    ]
    item = {
        "type": "object",
        "properties": {c.property_name: column_schema(c) for c in columns},
        "required": [c.property_name for c in columns if c.required],
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {"type": "array"}
    if spec.comment:
        schema["description"] = spec.comment
    schema["maxItems"] = max_items
    schema["items"] = item
    return schema


def phase_tool(phase: Phase, specs: dict[str, TableSpec]) -> dict[str, Any]:
    """The tool the model must call to record ``phase``: one array property per owned table."""
    return {
        "name": phase.tool_name,
        "description": (
            f"Record phase {phase.id} ({phase.name}) of the campaign world: {phase.focus}. "
            "Give every row a unique key; refer to other rows by their keys."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                t: table_schema(specs[t], phase.max_rows_per_table, lean=phase.profile != "full") for t in phase.tables
            },
            "required": list(phase.tables),
            "additionalProperties": False,
        },
    }


def external_references(phase: Phase, specs: dict[str, TableSpec]) -> dict[tuple[str, str], str]:
    """(table, property) -> referenced table, for references to rows this phase does not write."""
    refs = {}
    for table in phase.tables:
        for column in specs[table].foreign_keys:
            if column.references not in phase.tables:
                refs[(table, column.property_name)] = column.references or ""
    return refs


def with_key_enums(
    tool: dict[str, Any], phase: Phase, specs: dict[str, TableSpec], keys: dict[str, list[str]]
) -> dict[str, Any]:
    """A copy of ``tool`` whose references to earlier rows are enums of the existing keys.

    A reference to a table with no rows yet is dropped when optional and left a plain string when
    required (the saver then reports it), so a schema never carries an empty enum.
    """
    narrowed = copy.deepcopy(tool)
    for (table, prop), target in external_references(phase, specs).items():
        item = narrowed["input_schema"]["properties"][table]["items"]
        available = keys.get(target, [])
        if available:
            item["properties"][prop]["enum"] = sorted(available)
        elif prop not in item["required"]:
            del item["properties"][prop]
    return narrowed


# Anthropic compiles every strict schema of a request into one grammar, with limits per request
# ("Schema complexity limits > Explicit limits" of
# https://platform.claude.com/docs/en/build-with-claude/structured-outputs): 24 optional parameters
# (every property not in `required`, at any depth) and 16 parameters with union types (`anyOf` or
# a type array), summed over the request's strict tool schemas and JSON output schemas
# (`output_config.format`); also 20 strict tools, never reached with one tool per request.
# Checked for strict phases when settings load.
STRICT_MAX_OPTIONAL_PARAMETERS = 24
STRICT_MAX_UNION_PARAMETERS = 16


def strict_limit_problems(tool: dict[str, Any]) -> list[str]:
    """The limits of Anthropic's strict tool use that ``tool`` breaks, each naming the limit."""
    optional = unions = 0

    def visit(node: Any) -> None:
        nonlocal optional, unions
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                required = set(node.get("required", []))
                optional += sum(name not in required for name in node["properties"])
            if "anyOf" in node or isinstance(node.get("type"), list):
                unions += 1
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(tool.get("input_schema", {}))
    problems = []
    if optional > STRICT_MAX_OPTIONAL_PARAMETERS:
        problems.append(
            f"{optional} optional parameters; strict tool use allows at most {STRICT_MAX_OPTIONAL_PARAMETERS}"
            " per request"
        )
    if unions > STRICT_MAX_UNION_PARAMETERS:
        problems.append(
            f"{unions} parameters with union types; strict tool use allows at most {STRICT_MAX_UNION_PARAMETERS}"
        )
    return problems


def narrowed(tool: dict[str, Any], tables: tuple[str, ...]) -> dict[str, Any]:
    """``tool`` with only ``tables``, all required: what one part of a phase asks for."""
    schema = tool["input_schema"]
    properties = {t: schema["properties"][t] for t in tables if t in schema["properties"]}
    return {**tool, "input_schema": {**schema, "properties": properties, "required": list(properties)}}


def part_limit_problems(phase: Phase, tool: dict[str, Any]) -> list[str]:
    """The limits of strict tool use (and of structured outputs: the same grammar) that a request
    of ``phase`` breaks: each part's schema is compiled alone, so each part is checked alone."""
    problems = []
    for tables in phase.table_groups:
        found = strict_limit_problems(narrowed(tool, tables)) if tables else []
        problems += [f"{', '.join(tables)}: {problem}" for problem in found]
    return problems


TARGET_MARKER = " Target for this party: "


def with_row_targets(tool: dict[str, Any], phase: Phase, pc_count: int) -> dict[str, Any]:
    """A copy of ``tool`` whose table descriptions end with the row target for ``pc_count`` PCs."""
    sized = copy.deepcopy(tool)
    for table, schema in sized["input_schema"]["properties"].items():
        if table not in phase.tables:
            continue
        description = schema.get("description", "").split(TARGET_MARKER)[0]
        target = row_target(table, pc_count, phase.max_rows_per_table, phase.profile)
        schema["description"] = f"{description}{TARGET_MARKER}about {target} row(s) for {pc_count} PC(s)."
    return sized


def strict_variant(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool with ``strict: true`` and without the keywords strict tool use rejects."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in STRICT_UNSUPPORTED_KEYWORDS}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return {**strip(tool), "strict": True}


def render(tool: dict[str, Any]) -> str:
    return json.dumps(tool, indent=2, ensure_ascii=False) + "\n"


def generated_name(phase: Phase) -> str:
    return f"phase_{phase.slug}.json"


@cache
def _committed_tool_text(phase_id: str) -> str:
    phase = get_phase(phase_id)
    return resources.files(GENERATED_PACKAGE).joinpath(generated_name(phase)).read_text(encoding="utf-8")


def load_tool(phase: Phase) -> dict[str, Any]:
    """The committed tool definition of ``phase`` (what the model is asked for); a fresh copy."""
    tool: dict[str, Any] = json.loads(_committed_tool_text(phase.id))
    return tool
