"""The invariants a chaos scenario is judged by, read from the database alone once its campaign
settled: nothing stuck, every world row of a phase run that succeeded, a table of one generation
(but for what the game master keeps), its rows as many as its run recorded, every paid call in the
ledger."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import psycopg
from psycopg import sql

from worldgen.local.chaos.harness import SETTLE_SECONDS, Harness, Outcome
from worldgen.local.chaos.harness import world as world_of
from worldgen.phases import PHASES, phase_of_table
from worldgen.pipeline import table_specs


def check(chaos: Harness, campaign_id: Any, out: Outcome, requests_before: int) -> None:
    """The invariants of a scenario's campaign, from the database alone, once nothing of it runs."""
    deadline = time.monotonic() + SETTLE_SECONDS
    with chaos.db() as conn:
        while True:
            active = conn.execute(
                "SELECT id FROM generations WHERE campaign_id = %s AND status IN ('pending', 'running')",
                (str(campaign_id),),
            ).fetchall()
            if not active or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out.stuck += len(active)
        runs = {
            (str(r["generation_id"]), r["phase"]): r
            for r in conn.execute(
                "SELECT generation_id, phase, status, rows_per_table FROM phase_runs WHERE campaign_id = %s",
                (str(campaign_id),),
            ).fetchall()
        }
        world = world_of(conn, campaign_id)
        _drop_kept_by_locks(conn, campaign_id, world, runs)
        for table, key in out.gm_rows:  # rows a recovery kept for the game master of an undone phase
            found = conn.execute(
                sql.SQL(
                    "SELECT id::text AS id, generation_id::text AS g FROM {} WHERE campaign_id = %s AND key = %s"
                ).format(sql.Identifier(table)),
                (str(campaign_id), key),
            ).fetchone()
            phase_of = phase_of_table(table)
            run = runs.get((found["g"], phase_of.id)) if found is not None and phase_of is not None else None
            if found is not None and table in world and (run is None or run["status"] != "succeeded"):
                world[table] = {row for row in world[table] if row[0] != found["id"]}
        for table, rows in world.items():
            phase = phase_of_table(table)
            assert phase is not None
            generations = Counter(g for _, g in rows)
            for generation_id, count in generations.items():
                run = runs.get((generation_id, phase.id))
                if run is None or run["status"] != "succeeded":
                    out.violations.append(
                        f"{count} {table} rows of generation {generation_id[:8]} whose {phase.id} did not succeed"
                        f" ({run and run['status']})"
                    )
            if len(generations) > 1:
                out.rows_duplicated += sum(generations.values()) - max(generations.values())
                out.violations.append(f"{table} holds rows of {len(generations)} generations")
        for phase in PHASES:  # a phase's tables are all of one generation, complete, or untouched
            owners = {g for t in phase.tables for _, g in world[t]}
            for generation_id in owners:
                run = runs.get((generation_id, phase.id))
                expected = (run or {}).get("rows_per_table") or {}
                for table in phase.tables:
                    have = sum(1 for _, g in world[table] if g == generation_id)
                    # a row the GM kept through a recovery stands in for the snapshot row of its key
                    kept = sum(1 for t, _ in out.gm_rows if t == table)
                    cascaded = phase.id != "1A" and have + kept < expected.get(table, 0)
                    if have > expected.get(table, 0) or (cascaded and not _replaced_upstream(conn, campaign_id)):
                        out.violations.append(f"{table}: {have} rows, its phase run recorded {expected.get(table)}")
        ledger = conn.execute(
            "SELECT count(*) AS n FROM model_calls WHERE campaign_id = %s", (str(campaign_id),)
        ).fetchone()
    made = chaos.model.requests - requests_before + out.calls_elsewhere
    if out.scenario != "process_kill" and ledger is not None and ledger["n"] != made:
        out.calls_not_in_ledger += max(0, made - ledger["n"])
        elsewhere = f" ({out.calls_elsewhere} by the killed process)" if out.calls_elsewhere else ""
        out.violations.append(f"ledger has {ledger['n']} model calls, {made} were paid{elsewhere}")


def _replaced_upstream(conn: psycopg.Connection[Any], campaign_id: Any) -> bool:
    """Whether a later generation replaced an upstream phase (its rows' cascade thins this phase)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM generations WHERE campaign_id = %s AND status IN ('succeeded', 'failed')",
        (str(campaign_id),),
    ).fetchone()
    return bool(row and row["n"] > 1)


def _drop_kept_by_locks(
    conn: psycopg.Connection[Any],
    campaign_id: Any,
    world: dict[str, set[tuple[str, str]]],
    runs: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Leave out of ``world`` what a regeneration kept for the game master in a table that another
    generation owns (the newest whose run of the table's phase succeeded): a locked row, a row that
    refers to a locked row, and the rows of its phase such a row refers to, as the save keeps them
    (``db.save.rows_kept_on_regeneration``)."""
    mixed = [t for t, rows in world.items() if len({g for _, g in rows}) > 1]
    if not mixed:
        return
    started = {
        str(r["id"]): r["started_at"]
        for r in conn.execute("SELECT id, started_at FROM generations WHERE campaign_id = %s", (str(campaign_id),))
    }
    specs = table_specs(conn)
    locked: set[str] = set()
    refers: dict[str, list[tuple[str, str]]] = {}  # row id -> (table, id) of the rows it refers to
    phase_of_row: dict[str, str] = {}
    for table in world:
        columns = [c for c in specs[table].foreign_keys if c.references in world]
        phase = phase_of_table(table)
        assert phase is not None
        for row in conn.execute(
            sql.SQL("SELECT id::text AS id, locked{} FROM {} WHERE campaign_id = %s").format(
                sql.SQL("").join(sql.SQL(", {}::text").format(sql.Identifier(c.name)) for c in columns),
                sql.Identifier(table),
            ),
            (str(campaign_id),),
        ).fetchall():
            phase_of_row[row["id"]] = phase.id
            refers[row["id"]] = [(str(c.references), row[c.name]) for c in columns if row[c.name]]
            if row["locked"]:
                locked.add(row["id"])
    kept = locked | {row_id for row_id, targets in refers.items() if any(t in locked for _, t in targets)}
    grown = kept
    while grown:  # what a kept row refers to inside its phase stays with it
        grown = {
            target
            for row_id in grown
            for table, target in refers.get(row_id, [])
            if (phase := phase_of_table(table)) is not None and phase.id == phase_of_row[row_id] and target not in kept
        }
        kept |= grown
    for table in mixed:
        phase = phase_of_table(table)
        assert phase is not None
        owners = [g for g in {g for _, g in world[table]} if runs.get((g, phase.id), {}).get("status") == "succeeded"]
        if owners:
            owner = max(owners, key=lambda g: started[g])
            world[table] = {(i, g) for i, g in world[table] if g == owner or i not in kept}
