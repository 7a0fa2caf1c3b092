"""TableSpec: what worldgen knows of a table, whichever source described it (catalog or Hasura)."""

from __future__ import annotations

from pydantic import BaseModel

# Columns the model never sees: the saver fills them (``locked`` is the game master's).
SYSTEM_COLUMNS = frozenset({"id", "campaign_id", "generation_id", "created_at", "updated_at", "locked"})


class ColumnSpec(BaseModel):
    name: str
    pg_type: str  # text, integer, bigint, numeric, boolean, jsonb, text[], uuid, timestamptz, ...
    nullable: bool = True
    has_default: bool = False
    generated: bool = False
    comment: str | None = None
    enum: list[str] | list[int] | None = None
    minimum: float | None = None  # from CHECK (x BETWEEN a AND b), (x >= a), (x > a)
    maximum: float | None = None
    exclusive_minimum: float | None = None  # numeric columns with CHECK (x > a)
    references: str | None = None  # the referenced table, for a foreign key column

    @property
    def exposed(self) -> bool:
        return self.name not in SYSTEM_COLUMNS and not self.generated

    @property
    def required(self) -> bool:
        return not self.nullable and not self.has_default

    @property
    def property_name(self) -> str:
        """The tool-schema name: a foreign key ``x_id`` is offered to the model as ``x_key``."""
        if self.references and self.name.endswith("_id"):
            return self.name[: -len("_id")] + "_key"
        return self.name


class TableSpec(BaseModel):
    name: str
    comment: str | None = None
    columns: list[ColumnSpec]

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def exposed_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.exposed]

    @property
    def foreign_keys(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.references and c.exposed]
