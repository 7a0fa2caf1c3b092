"""save_phase_rows (one transaction and one COPY per table) against a naive row-at-a-time baseline.

Run from the repository root: ``python -m benchmarks.bench_save``. It starts its own embedded
PostgreSQL (pgserver) in a temporary folder, migrates a scratch database, generates procedural
worlds of about 500, 5,000 and 50,000 rows over the 39 world tables, then saves each world into a
fresh campaign twice: with ``save_phase_rows`` and with one INSERT and one commit per row (the same
rows, keys resolved to the same kind of ids). The naive run on the largest world is measured on a
prefix of the rows and extrapolated; the output says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen.db.catalog import read_table_specs
from worldgen.db.connection import connect
from worldgen.db.context import phase_context
from worldgen.db.save import existing_keys, external_tables, save_phase_rows
from worldgen.local.postgres import embedded_server, with_database
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, WORLD_TABLES, Phase
from worldgen.pipeline import model_request
from worldgen.repository.migrator import migrate
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import phase_tool, with_key_enums

Conn = psycopg.Connection[dict[str, Any]]
World = list[tuple[Phase, dict[str, Any]]]  # (phase with a raised row cap, tool input), in phase order

# ProceduralModel scale per target size; the rows actually generated are counted and printed.
SIZES = {"small": (500, 2.3), "medium": (5_000, 23.0), "large": (50_000, 230.0)}
NAIVE_SAMPLE_ROWS = 5_000
ROW_CAP = 1_000_000


def uncapped(phase: Phase) -> Phase:
    """The tool's maxItems caps the procedural model and the saver checks the cap: raise both."""
    return dataclasses.replace(phase, max_rows_per_table=ROW_CAP)


def new_campaign(conn: Conn, label: str) -> tuple[uuid.UUID, uuid.UUID]:
    inserted = conn.execute(
        "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
        (
            "bench",
            f"The Ashen Crown ({label})",
            "A low-magic archipelago ruled by rival merchant princes. Storms wreck ships on the reefs.",
            "grim and political",
        ),
    ).fetchone()
    assert inserted is not None
    campaign = inserted["id"]
    conn.execute(
        "INSERT INTO player_characters (campaign_id, name, race, character_class, backstory) VALUES"
        " (%s, 'Lyra Ashdown', 'half-elf', 'ranger', 'Lost her brother to the Gray Guild in Port Vell.'),"
        " (%s, 'Brother Tam', 'human', 'cleric', 'Fled the drowned abbey with a stolen relic.')",
        (campaign, campaign),
    )
    started = conn.execute("INSERT INTO generations (campaign_id) VALUES (%s) RETURNING id", (campaign,)).fetchone()
    assert started is not None
    generation = started["id"]
    return campaign, generation


def generate_world(conn: Conn, specs: dict[str, TableSpec], scale: float, label: str) -> World:
    """Generate phase by phase (each phase needs the keys of the previous ones saved)."""
    campaign, generation = new_campaign(conn, f"{label} source")
    model = ProceduralModel(seed=42, scale=scale)
    world: World = []
    for registered in PHASES:
        phase = uncapped(registered)
        context = phase_context(conn, campaign, phase, specs)
        request = model_request(
            phase, context, specs, tool=with_key_enums(phase_tool(phase, specs), phase, specs, context.keys)
        )
        tool_input = model.call(request).tool_input
        assert tool_input is not None
        save_phase_rows(conn, campaign, generation, phase, tool_input, specs)
        world.append((phase, tool_input))
    return world


def row_count(world: World) -> int:
    return sum(len(rows) for _, tool_input in world for rows in tool_input.values())


def save_with_save_phase_rows(conn: Conn, specs: dict[str, TableSpec], world: World, label: str) -> float:
    campaign, generation = new_campaign(conn, f"{label} copy")
    started = time.perf_counter()
    for phase, tool_input in world:
        save_phase_rows(conn, campaign, generation, phase, tool_input, specs)
    return time.perf_counter() - started


def save_naively(conn: Conn, specs: dict[str, TableSpec], world: World, label: str, limit: int | None) -> float:
    """One INSERT and one commit (autocommit) per row, for the first ``limit`` rows in insert order."""
    campaign, generation = new_campaign(conn, f"{label} naive")
    assert conn.autocommit
    remaining = limit if limit is not None else row_count(world)
    started = time.perf_counter()
    for phase, tool_input in world:
        known = existing_keys(conn, campaign, external_tables(phase, specs))
        ids = {t: {row["key"]: uuid.uuid4() for row in tool_input[t]} for t in phase.tables}
        for table in phase.tables:
            columns = specs[table].exposed_columns
            statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(
                    sql.Identifier(n) for n in ["id", "campaign_id", "generation_id"] + [c.name for c in columns]
                ),
                sql.SQL(", ").join(sql.Placeholder() * (len(columns) + 3)),
            )
            for row in tool_input[table]:
                if remaining <= 0:
                    return time.perf_counter() - started
                values: list[Any] = [ids[table][row["key"]], campaign, generation]
                for column in columns:
                    value = row.get(column.property_name)
                    if value is not None and column.references:
                        pool = ids if column.references in phase.tables else known
                        value = pool[column.references][value]
                    elif isinstance(value, float) and column.pg_type == "numeric":
                        value = Decimal(repr(value))
                    elif isinstance(value, dict):
                        value = Jsonb(value)
                    values.append(value)
                conn.execute(statement, values)
                remaining -= 1
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    args = parser.parse_args()

    server = embedded_server(Path(tempfile.mkdtemp(prefix="worldgen-bench-")))
    admin_url = str(server.get_uri())
    database = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = with_database(admin_url, database)
    migrate(url)

    results = []
    with connect(url) as conn:
        settings = {
            name: (conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone() or {}).get(name)
            for name in ("server_version", "fsync", "synchronous_commit")
        }
        specs = read_table_specs(conn, WORLD_TABLES)
        for label in args.sizes:
            target, scale = SIZES[label]
            print(f"generating the {label} world (target ~{target:,} rows, scale {scale:g}) ...", flush=True)
            world = generate_world(conn, specs, scale, label)
            rows = row_count(world)
            fast = save_with_save_phase_rows(conn, specs, world, label)
            sample = NAIVE_SAMPLE_ROWS if rows > NAIVE_SAMPLE_ROWS * 2 else None
            naive = save_naively(conn, specs, world, label, sample)
            naive_rate = (sample or rows) / naive
            results.append((label, target, rows, rows / fast, fast, naive_rate, rows / naive_rate, sample))

    print()
    print(f"PostgreSQL {settings['server_version']} (embedded pgserver, unix socket), fsync={settings['fsync']},"
          f" synchronous_commit={settings['synchronous_commit']}")  # fmt: skip
    header = (
        f"{'size':<8}{'rows':>8}  {'save rows/s':>12}{'save s':>9}  {'naive rows/s':>13}{'naive s':>10}  {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for label, _target, rows, fast_rate, fast, naive_rate, naive_seconds, sample in results:
        mark = "*" if sample else " "
        print(
            f"{label:<8}{rows:>8,}  {fast_rate:>12,.0f}{fast:>9.2f}  {naive_rate:>13,.0f}{naive_seconds:>9.2f}{mark}"
            f"  {fast_rate / naive_rate:>5.1f}x"
        )
    for label, _target, rows, *_rest, sample in results:
        if sample:
            print(
                f"* {label}: naive measured on the first {sample:,} of {rows:,} rows (insert order) and"
                " extrapolated at that rate"
            )
    print("save = save_phase_rows per phase (validation, key lookup, one transaction, COPY per table);")
    print("naive = one INSERT per row, each its own commit, no validation; both into a fresh campaign.")


if __name__ == "__main__":
    main()
