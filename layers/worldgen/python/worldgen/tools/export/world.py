"""The portable world file: a campaign, its PCs, generations with their audit, and every world row.

Rows are read generically from the catalog (``read_table_specs``): every column but the surrogate
ids, and every foreign key written as the key of the row it points to (``race_id`` -> ``race_key``,
``generation_id`` -> ``generation_key``). No UUID leaves the database, so a file moves between
databases: ``import_world`` makes new UUIDs and keeps the keys.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen.contracts import EXPORT_AUDIENCES
from worldgen.db.catalog import read_table_specs
from worldgen.phases import CORE_TABLES, WORLD_TABLES
from worldgen.schema.spec import ColumnSpec, TableSpec
from worldgen.schema.tools import JSON_TYPES

FORMAT = "worldgen-export"
VERSION = 1
SCHEMA_FILE = "world_export.schema.json"
# A schema annotation on a reference field: the table whose key it holds (JSON Schema cannot check it).
REFERENCES = "x-references"
PC_TABLE = "player_characters"
# Who a file is for (``tools.export.audience``): a players file holds no gm_notes and no secret link.
AUDIENCE_FIELD = "audience"
# Surrogate and owner columns: never exported, remade on import.
_LOCAL_COLUMNS = frozenset({"id", "campaign_id"})
# The audit of a generation, nested under it in the file.
_AUDIT_TABLES = ("phase_runs", "model_calls")
# The tool schemas' column types, plus the audit columns the model never writes.
_JSON_TYPES = {**JSON_TYPES, "timestamptz": "string", "date": "string", "uuid": "string"}


class ImportRefused(Exception):
    """A file that cannot be imported; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def catalog_specs(conn: psycopg.Connection[Any]) -> dict[str, TableSpec]:
    return read_table_specs(conn, CORE_TABLES + WORLD_TABLES)


def field_name(column: ColumnSpec) -> str:
    """How a column is named in the file: a foreign key ``x_id`` is ``x_key``."""
    if column.references and column.name.endswith("_id"):
        return column.name[: -len("_id")] + "_key"
    return column.name


def exported_columns(spec: TableSpec) -> list[ColumnSpec]:
    skip = set(_LOCAL_COLUMNS)
    if spec.name == "generations":
        # The rows a regeneration replaced (with their database ids): this database's way back, not
        # part of the world. A file imported elsewhere has nothing to revert to.
        skip.add("replaced_world")
    if spec.name in _AUDIT_TABLES:
        skip.add("generation_id")  # nested under its generation
        # A reroll's calls (and the reroll, with the versions it replaced) stay in this database:
        # a file carries the current version of each row only.
        skip.add("reroll_id")
    return [c for c in spec.columns if c.name not in skip]


# ---------------------------------------------------------------- export


def export_world(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID, specs: Mapping[str, TableSpec] | None = None
) -> dict[str, Any]:
    """The whole campaign as one JSON-ready document (see the committed JSON Schema)."""
    specs = specs or catalog_specs(conn)
    keys = _keys_by_id(conn, campaign_id, specs)
    campaign = _select(conn, specs["campaigns"], "id = %s", campaign_id)[0]
    generations = []
    for number, row in enumerate(
        _select(conn, specs["generations"], "campaign_id = %s", campaign_id, "started_at, id")
    ):
        generation = _document_row(specs["generations"], row, keys)
        generation["key"] = f"generation-{number + 1}"
        for table in _AUDIT_TABLES:
            order = "started_at, phase" if table == "phase_runs" else "created_at, phase, round"
            rows = _select(conn, specs[table], "generation_id = %s", row["id"], order)
            generation[table] = [_document_row(specs[table], r, keys) for r in rows]
        generations.append(generation)
    pcs = _select(conn, specs[PC_TABLE], "campaign_id = %s", campaign_id, "key")
    world = {
        table: [
            _document_row(specs[table], r, keys)
            for r in _select(conn, specs[table], "campaign_id = %s", campaign_id, "key")
        ]
        for table in WORLD_TABLES
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "campaign": _document_row(specs["campaigns"], campaign, keys),
        "player_characters": [_document_row(specs[PC_TABLE], r, keys) for r in pcs],
        "generations": generations,
        "world": world,
    }


def _select(
    conn: psycopg.Connection[Any], spec: TableSpec, where: str, value: Any, order: str | None = None
) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT * FROM {} WHERE " + where).format(sql.Identifier(spec.name))
    if order:
        query += sql.SQL(" ORDER BY " + order)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query, (value,)).fetchall()


def _keys_by_id(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID, specs: Mapping[str, TableSpec]
) -> dict[str, dict[Any, str]]:
    keys: dict[str, dict[Any, str]] = {}
    for table in (PC_TABLE, *WORLD_TABLES):
        rows = _select(conn, specs[table], "campaign_id = %s", campaign_id)
        keys[table] = {r["id"]: r["key"] for r in rows}
    generations = _select(conn, specs["generations"], "campaign_id = %s", campaign_id, "started_at, id")
    keys["generations"] = {r["id"]: f"generation-{n + 1}" for n, r in enumerate(generations)}
    return keys


def _document_row(spec: TableSpec, row: Mapping[str, Any], keys: Mapping[str, Mapping[Any, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in exported_columns(spec):
        value = row[column.name]
        if column.references and value is not None:
            value = keys[column.references][value]
        out[field_name(column)] = _json_value(value)
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return float(value) if isinstance(exponent, int) and exponent < 0 else int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- schema


def build_schema(specs: Mapping[str, TableSpec]) -> dict[str, Any]:
    """The JSON Schema of the export file, from the catalog (``make export-schema``)."""

    def rows(table: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"type": "array", "items": _row_schema(specs[table], extra or {})}

    audit = {table: rows(table) for table in _AUDIT_TABLES}
    generation = _row_schema(
        specs["generations"], {"key": {"type": "string", "pattern": "^generation-[0-9]+$"}, **audit}
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://worldgen.invalid/schemas/world-export-v1.json",
        "title": "worldgen world export",
        "description": "A campaign, its player characters, its generations (with their audit: phase runs and "
        "model calls) and every world row, references written as keys. Generated from the catalog by "
        "`make export-schema`; do not edit.",
        "type": "object",
        "additionalProperties": False,
        "required": ["format", "version", "campaign", "player_characters", "generations", "world"],
        "properties": {
            "format": {"const": FORMAT},
            "version": {"const": VERSION},
            "exported_at": {"type": "string"},
            AUDIENCE_FIELD: {
                "enum": list(EXPORT_AUDIENCES),
                "description": "gm: everything; players: without gm_notes, secret links and the rows known "
                "only through them",
            },
            "campaign": _row_schema(specs["campaigns"], {}),
            "player_characters": rows(PC_TABLE),
            "generations": {"type": "array", "items": generation},
            "world": {
                "type": "object",
                "additionalProperties": False,
                "properties": {table: rows(table) for table in WORLD_TABLES},
            },
        },
    }


def _row_schema(spec: TableSpec, extra: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for column in exported_columns(spec):
        name = field_name(column)
        properties[name] = _column_schema(column)
        if column.required:
            required.append(name)
    properties.update(extra)
    required += [name for name in extra if name == "key"]
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if spec.comment:
        schema["description"] = spec.comment
    if required:
        schema["required"] = required
    return schema


def _column_schema(column: ColumnSpec) -> dict[str, Any]:
    schema: dict[str, Any]
    if column.references:
        schema = {"type": "string", "description": f"key of a {column.references} row", REFERENCES: column.references}
    elif column.pg_type == "jsonb":
        schema = {}
    elif column.pg_type == "text[]":
        schema = {"type": "array", "items": {"type": "string"}}
    else:
        schema = {"type": _JSON_TYPES.get(column.pg_type, "string")}
        if column.enum:
            schema["enum"] = list(column.enum)
        for keyword, value in (
            ("minimum", column.minimum),
            ("maximum", column.maximum),
            ("exclusiveMinimum", column.exclusive_minimum),
        ):
            if value is not None:
                schema[keyword] = int(value) if schema["type"] == "integer" else value
    if column.nullable and schema:
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        schema["type"] = [schema["type"], "null"]
    return schema


def committed_schema() -> dict[str, Any]:
    text = resources.files("worldgen.tools.export").joinpath(SCHEMA_FILE).read_text()
    return dict(json.loads(text))


# ---------------------------------------------------------------- import


def document_problems(document: Any, schema: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of a file at once: JSON Schema errors, then references to missing keys."""
    from jsonschema import Draft202012Validator

    schema = schema or committed_schema()
    validator = Draft202012Validator(schema)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]
    return problems or _reference_problems(document, reference_fields(schema))


def reference_fields(schema: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """table -> {field: referenced table} of every world table, read from the schema's annotations."""
    tables = schema["properties"]["world"]["properties"]
    return {
        table: {
            name: field[REFERENCES]
            for name, field in table_schema["items"]["properties"].items()
            if REFERENCES in field
        }
        for table, table_schema in tables.items()
    }


def _reference_problems(document: Mapping[str, Any], references: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Keys are unique per table and every reference names an existing row (JSON Schema cannot say it)."""
    problems: list[str] = []
    keys: dict[str, set[str]] = {PC_TABLE: {pc["key"] for pc in document["player_characters"] if pc.get("key")}}
    keys["generations"] = {g["key"] for g in document["generations"]}
    for table, rows in document["world"].items():
        seen: set[str] = set()
        for row in rows:
            if row["key"] in seen:
                problems.append(f"world/{table}: duplicate key {row['key']!r}")
            seen.add(row["key"])
        keys[table] = seen
    for table, rows in document["world"].items():
        for row in rows:
            for name, target in references[table].items():
                value = row.get(name)
                if value is not None and value not in keys.get(target, set()):
                    problems.append(f"world/{table}[key={row['key']}].{name}: no {target} row has key {value!r}")
    return problems


def import_world(conn: psycopg.Connection[Any], document: Any, *, owner_id: str | None = None) -> uuid.UUID:
    """Load a world file as a NEW campaign (new UUIDs, same keys) in one transaction."""
    specs = catalog_specs(conn)
    problems = document_problems(document)
    if problems:
        raise ImportRefused(f"the file does not validate: {len(problems)} problem(s)", problems)
    campaign_id = uuid.uuid4()
    ids: dict[str, dict[str, uuid.UUID]] = {
        table: {row["key"]: uuid.uuid4() for row in document["world"].get(table, [])} for table in WORLD_TABLES
    }
    ids["generations"] = {g["key"]: uuid.uuid4() for g in document["generations"]}
    with conn.transaction():
        campaign = dict(document["campaign"])
        if owner_id:
            campaign["owner_id"] = owner_id
        _insert(conn, specs["campaigns"], [campaign], {}, {"id": campaign_id})
        _insert(conn, specs[PC_TABLE], document["player_characters"], {}, {"campaign_id": campaign_id})
        ids[PC_TABLE] = {
            r["key"]: r["id"]
            for r in conn.execute("SELECT key, id FROM player_characters WHERE campaign_id = %s", (campaign_id,))
        }
        for generation in document["generations"]:
            generation_id = ids["generations"][generation["key"]]
            row = {k: v for k, v in generation.items() if k not in ("key", *_AUDIT_TABLES)}
            _insert(conn, specs["generations"], [row], ids, {"id": generation_id, "campaign_id": campaign_id})
            for table in _AUDIT_TABLES:
                _insert(
                    conn,
                    specs[table],
                    generation[table],
                    ids,
                    {"campaign_id": campaign_id, "generation_id": generation_id},
                )
        for table in WORLD_TABLES:
            rows = document["world"].get(table, [])
            _insert(conn, specs[table], rows, ids, {"campaign_id": campaign_id}, own_ids=ids[table])
    return campaign_id


def _insert(
    conn: psycopg.Connection[Any],
    spec: TableSpec,
    rows: list[Mapping[str, Any]],
    ids: Mapping[str, Mapping[str, uuid.UUID]],
    fixed: Mapping[str, Any],
    own_ids: Mapping[str, uuid.UUID] | None = None,
) -> None:
    """One INSERT per table, so a row may refer to a later row of its table (parent locations):
    PostgreSQL checks foreign keys at the end of the statement. A field a row leaves out is DEFAULT."""
    if not rows:
        return
    columns = [c for c in spec.columns if not c.generated and c.name not in fixed and c.name != "id"]
    columns = [c for c in columns if any(field_name(c) in row for row in rows)]
    names = list(fixed) + (["id"] if own_ids is not None else []) + [c.name for c in columns]
    values: list[Any] = []
    tuples = []
    for row in rows:
        row_values: list[Any] = list(fixed.values()) + ([own_ids[row["key"]]] if own_ids is not None else [])
        placeholders: list[sql.Composable] = [sql.Placeholder()] * len(row_values)
        for column in columns:
            if field_name(column) in row:
                row_values.append(_db_value(column, row[field_name(column)], ids))
                placeholders.append(sql.Placeholder())
            else:
                placeholders.append(sql.DEFAULT)
        values += row_values
        tuples.append(sql.SQL("({})").format(sql.SQL(", ").join(placeholders)))
    statement = sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
        sql.Identifier(spec.name), sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(tuples)
    )
    conn.execute(statement, values)


def _db_value(column: ColumnSpec, value: Any, ids: Mapping[str, Mapping[str, uuid.UUID]]) -> Any:
    if value is None:
        return None
    if column.references:
        return ids[column.references][value]
    if column.pg_type == "jsonb":
        return Jsonb(value)
    if column.pg_type == "numeric" and isinstance(value, float):
        return Decimal(repr(value))
    return value
