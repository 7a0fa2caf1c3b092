"""Hasura's GraphQL view of the tables -> TableSpec, the second source of tool schemas.

Input: an introspection result (JSON, with or without the ``data`` wrapper, as a file, a string or
a parsed dict) or an SDL export. Each ``<table>_insert_input`` becomes one TableSpec:

- names are Hasura's: the table is the insert input's name without ``_insert_input`` and a column
  is its GraphQL field name, so custom (e.g. camelCase) names are what the tool schema offers;
- relationship inserts (``*_obj_rel_insert_input`` / ``*_arr_rel_insert_input``) and
  ``on_conflict`` are left out: only scalar and enum fields are columns, so nothing recurses;
- a column typed by an enum table (``<t>_enum``) gets the enum's values; it stores the value
  itself, so it is not a reference;
- ``references`` are inferred from object-relationship inserts (introspection shows no foreign
  keys): a field ``r`` typed ``<t>_obj_rel_insert_input`` marks the column ``r_id``, ``rId`` or
  ``camel(r)Id`` as a reference to ``t``. When exactly one object relationship and exactly one
  id-like column (``*_id`` / ``*Id``, typed like ``t``'s ``id``) are left unpaired, they are paired
  (este: ``tadas.user`` + ``creator_id``). Anything else stays unreferenced;
- Hasura lists every insert field as nullable, so required-ness (``nullable``, ``has_default``)
  and the column order come from ``catalog_specs`` when given; without them every column is
  optional. CHECK-constraint enums and bounds never reach GraphQL (see docs/hasura.md).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from graphql import (
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_client_schema,
    build_schema,
    get_introspection_query,
    get_named_type,
    get_nullable_type,
)

from worldgen.phases import PHASES
from worldgen.schema.spec import ColumnSpec, TableSpec
from worldgen.schema.tools import phase_tool

INSERT_SUFFIX = "_insert_input"
ENUM_SUFFIX = "_enum"
_RELATIONSHIP_INSERT = re.compile(r"^(?P<table>.+)_(?P<kind>obj|arr)_rel_insert_input$")
_DEFAULT_TABLE_DESCRIPTION = re.compile(r'^columns and relationships of "[^"]*"$')
_RELATIONSHIP_DESCRIPTIONS = frozenset({"An object relationship", "An array relationship"})

# GraphQL scalar -> PostgreSQL type. Hasura names its custom scalars after the Postgres type.
SCALAR_PG_TYPES: dict[str, str] = {
    "String": "text",
    "ID": "text",
    "Int": "integer",
    "Float": "numeric",
    "Boolean": "boolean",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "jsonb",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
    "date": "date",
    "time": "time",
    "timetz": "timetz",
    "citext": "text",
    "bpchar": "text",
    "bigint": "bigint",
    "smallint": "smallint",
    "numeric": "numeric",
    "float8": "double precision",
    "float4": "real",
}

SchemaSource = str | Path | Mapping[str, Any]


class HasuraIntrospectionError(RuntimeError):
    """The Hasura endpoint answered the introspection query with errors or no schema."""


def load_hasura_schema(source: SchemaSource) -> GraphQLSchema:
    """Build a schema from an introspection result or SDL: a path, the file's text, or parsed JSON."""
    if isinstance(source, Mapping):
        return _schema_from_introspection(source)
    text = _read_source(source)
    if text.lstrip().startswith("{"):
        return _schema_from_introspection(json.loads(text))
    return build_schema(text)


def _read_source(source: str | Path) -> str:
    if isinstance(source, Path):
        return source.read_text()
    looks_like_path = "\n" not in source and "{" not in source and len(source) < 4096
    if looks_like_path and Path(source).is_file():
        return Path(source).read_text()
    return source


def _schema_from_introspection(result: Mapping[str, Any]) -> GraphQLSchema:
    data = result.get("data", result)
    if not isinstance(data, Mapping) or "__schema" not in data:
        raise ValueError("not an introspection result: no __schema (with or without a data wrapper)")
    return build_client_schema(dict(data))  # type: ignore[arg-type]


def insert_input_types(schema: GraphQLSchema) -> dict[str, GraphQLInputObjectType]:
    """Table name -> its ``<table>_insert_input`` type (relationship insert inputs excluded)."""
    found = {}
    for name, named in schema.type_map.items():
        is_insert = isinstance(named, GraphQLInputObjectType) and name.endswith(INSERT_SUFFIX)
        if is_insert and not _RELATIONSHIP_INSERT.match(name):
            found[name[: -len(INSERT_SUFFIX)]] = named
    return found  # type: ignore[return-value]


def pg_type_of(field_type: Any) -> str:
    """The PostgreSQL type of a column field: ``[String!]`` and ``_text`` are both ``text[]``."""
    nullable = get_nullable_type(field_type)
    if isinstance(nullable, GraphQLList):
        return pg_type_of(nullable.of_type) + "[]"
    named = get_named_type(nullable)
    if isinstance(named, GraphQLEnumType):
        return "text"
    if named.name.startswith("_") and len(named.name) > 1:
        return SCALAR_PG_TYPES.get(named.name[1:], named.name[1:].lower()) + "[]"
    return SCALAR_PG_TYPES.get(named.name, named.name.lower())


def _is_column(field: GraphQLInputField) -> bool:
    return isinstance(get_named_type(field.type), GraphQLScalarType | GraphQLEnumType)


def _enum_values(field: GraphQLInputField) -> list[str] | None:
    named = get_named_type(field.type)
    return list(named.values) if isinstance(named, GraphQLEnumType) else None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _object_relationships(insert: GraphQLInputObjectType) -> dict[str, str]:
    """Relationship field name -> remote table, for object relationships."""
    rels = {}
    for name, field in insert.fields.items():
        match = _RELATIONSHIP_INSERT.match(get_named_type(field.type).name)
        if match and match.group("kind") == "obj":
            rels[name] = match.group("table")
    return rels


def _id_type_name(schema: GraphQLSchema, table: str) -> str | None:
    remote = schema.type_map.get(table + INSERT_SUFFIX)
    if isinstance(remote, GraphQLInputObjectType) and "id" in remote.fields:
        return get_named_type(remote.fields["id"].type).name
    return None


def infer_references(schema: GraphQLSchema, insert: GraphQLInputObjectType) -> dict[str, str]:
    """Column name -> referenced table, from the object-relationship insert fields (module doc)."""
    columns = {
        name: field for name, field in insert.fields.items() if _is_column(field) and _enum_values(field) is None
    }
    references: dict[str, str] = {}
    unpaired: dict[str, str] = {}
    for rel, table in _object_relationships(insert).items():
        column = next((c for c in (f"{rel}_id", f"{rel}Id", f"{_camel(rel)}Id") if c in columns), None)
        if column and column not in references:
            references[column] = table
        else:
            unpaired[rel] = table
    if len(unpaired) == 1:
        (table,) = unpaired.values()
        id_type = _id_type_name(schema, table)
        candidates = [
            name
            for name, field in columns.items()
            if name not in references
            and name != "id"
            and (name.endswith("_id") or name.endswith("Id"))
            and get_named_type(field.type).name == id_type
        ]
        if len(candidates) == 1:
            references[candidates[0]] = table
    return references


def _table_comment(schema: GraphQLSchema, table: str) -> str | None:
    named = schema.type_map.get(table)
    description = named.description if isinstance(named, GraphQLObjectType) else None
    if description and not _DEFAULT_TABLE_DESCRIPTION.match(description):
        return description
    return None


def _column_comment(field: GraphQLInputField, output: GraphQLNamedType | None, name: str) -> str | None:
    if field.description:
        return field.description
    if isinstance(output, GraphQLObjectType) and name in output.fields:
        description = output.fields[name].description
        if description and description not in _RELATIONSHIP_DESCRIPTIONS:
            return description
    return None


def table_spec_from_insert_input(
    schema: GraphQLSchema,
    table: str,
    insert: GraphQLInputObjectType,
    catalog: TableSpec | None = None,
) -> TableSpec:
    references = infer_references(schema, insert)
    output = schema.type_map.get(table)
    known = {column.name: column for column in catalog.columns} if catalog else {}
    columns = []
    for name, field in insert.fields.items():
        if not _is_column(field):
            continue  # relationship inserts and on_conflict: input objects, never columns
        from_catalog = known.get(name)
        columns.append(
            ColumnSpec(
                name=name,
                pg_type=pg_type_of(field.type),
                nullable=from_catalog.nullable if from_catalog else True,
                has_default=from_catalog.has_default if from_catalog else False,
                comment=_column_comment(field, output, name),
                enum=_enum_values(field),
                references=references.get(name),
            )
        )
    if catalog:
        position = {column.name: index for index, column in enumerate(catalog.columns)}
        columns.sort(key=lambda column: position.get(column.name, len(position)))
    return TableSpec(name=table, comment=_table_comment(schema, table), columns=columns)


def hasura_table_specs(
    schema: GraphQLSchema,
    tables: Iterable[str] | None = None,
    catalog_specs: Mapping[str, TableSpec] | None = None,
) -> dict[str, TableSpec]:
    """TableSpecs of ``tables`` (default: every table with an insert input), in the order asked."""
    inserts = insert_input_types(schema)
    names = list(tables) if tables is not None else sorted(inserts)
    missing = [name for name in names if name not in inserts]
    if missing:
        raise LookupError(f"tables without a <table>_insert_input in the Hasura schema: {missing}")
    catalog = catalog_specs or {}
    return {name: table_spec_from_insert_input(schema, name, inserts[name], catalog.get(name)) for name in names}


def read_hasura_specs(
    source: SchemaSource, *, catalog_specs: Mapping[str, TableSpec] | None = None
) -> dict[str, TableSpec]:
    """Every table of an introspection result or SDL, required-ness from ``catalog_specs`` if given."""
    return hasura_table_specs(load_hasura_schema(source), catalog_specs=catalog_specs)


def phase_tools_from_hasura(
    source: SchemaSource, catalog_specs: Mapping[str, TableSpec] | None = None
) -> dict[str, dict[str, Any]]:
    """Phase id -> the phase's tool, built from Hasura's view of its tables."""
    tables = [table for phase in PHASES for table in phase.tables]
    specs = hasura_table_specs(load_hasura_schema(source), tables, catalog_specs)
    return {phase.id: phase_tool(phase, specs) for phase in PHASES}


def fetch_introspection(url: str, admin_secret: str | None, *, timeout: float = 30.0) -> dict[str, Any]:
    """POST the standard introspection query to a Hasura GraphQL endpoint; returns ``{"__schema": ...}``."""
    if urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    headers = {"Content-Type": "application/json"}
    if admin_secret:
        headers["x-hasura-admin-secret"] = admin_secret
    body = json.dumps({"query": get_introspection_query(descriptions=True)}).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
        answer = json.loads(response.read())
    if answer.get("errors") or "__schema" not in (answer.get("data") or {}):
        raise HasuraIntrospectionError(f"introspection of {url} failed: {answer.get('errors')}")
    data: dict[str, Any] = answer["data"]
    return data
