"""Scenarios of a game master's work between a failure and its recovery (issue 29): a resume or a
cancel of an older generation after a newer one, the discard of a failed regeneration, locks and
edits before a revert, and locks and edits (one of a key in a recorded outline) before a resume."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from worldgen.errors import InvalidModelOutput
from worldgen.local.chaos.harness import Harness, Outcome, rows_lost, world
from worldgen.phases import PHASES, WORLD_TABLES

GM_WORDS = "The GM's own words"


def _older_failed_then_newer(chaos: Harness, out: Outcome) -> tuple[uuid.UUID, str]:
    """A generation failed at a phase, then a newer generation of the campaign that succeeded."""
    campaign_id = chaos.campaign()
    failing = chaos.random.choice(["1C", "2A", "2B", "3A"])
    chaos.model.plan(**{failing: [InvalidModelOutput("never valid")]})
    _, older = chaos.generate(campaign_id)
    chaos.model.plan()
    chaos.generate(campaign_id)
    out.faults.append(f"generation failed at {failing}, a newer one succeeded")
    return campaign_id, str(older["generation_id"])


def _refused_by_order(chaos: Harness, action: str, generation_id: str, campaign_id: uuid.UUID, out: Outcome) -> None:
    with chaos.db() as conn:
        before = world(conn, campaign_id)
    status, body = chaos.act(action, {"generation_id": generation_id})
    out.faults.append(f"{action} of the older one")
    if status == 200:
        out.violations.append(f"{action} of an older generation accepted after a newer one started")
        if body.get("execution_arn"):
            chaos.wait(body)
    elif body.get("extensions", {}).get("code") != "newer-generation":
        out.violations.append(f"{action} refused with {body.get('extensions')}, not newer-generation")
    with chaos.db() as conn:
        after = world(conn, campaign_id)
    lost = rows_lost(before, after)
    out.rows_lost += lost
    if lost:
        out.violations.append(f"{lost} rows of the newer generation lost")


def resume_after_newer(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id, older = _older_failed_then_newer(chaos, out)
    _refused_by_order(chaos, "resumeGeneration", older, campaign_id, out)
    return campaign_id


def cancel_after_newer(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id, older = _older_failed_then_newer(chaos, out)
    _refused_by_order(chaos, "cancelGeneration", older, campaign_id, out)
    _refused_by_order(chaos, "revertGeneration", older, campaign_id, out)
    return campaign_id


def _failed_regeneration(chaos: Harness, out: Outcome) -> tuple[uuid.UUID, dict[str, Any], dict[str, Any]]:
    campaign_id = chaos.campaign()
    chaos.generate(campaign_id)
    with chaos.db() as conn:
        before = world(conn, campaign_id)
    chaos.model.plan(**{"3C": [InvalidModelOutput("never valid")]})
    out.faults.append("regenerate from 2B, permanent failure at 3C")
    status, body = chaos.act("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "2B"})
    if status != 200:
        out.violations.append(f"regeneration refused ({status})")
        return campaign_id, before, {}
    chaos.wait(body)
    return campaign_id, before, body


def discard_of_a_regeneration(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id, before, body = _failed_regeneration(chaos, out)
    if not body:
        return campaign_id
    status, _ = chaos.act("discardGeneration", {"generation_id": body["generation_id"]})
    out.faults.append("discard of the failed regeneration")
    if status == 200:
        out.violations.append("discard of a regeneration accepted: the world it replaced is out of reach")
    status, _ = chaos.act("revertGeneration", {"generation_id": body["generation_id"]})
    with chaos.db() as conn:
        after = world(conn, campaign_id)
    lost = rows_lost(before, after)
    out.rows_lost += lost
    if status != 200 or after != before:
        out.violations.append(f"revert after the refused discard: {status}, {lost} rows lost")
    return campaign_id


def gm_work_then_revert(chaos: Harness, out: Outcome) -> uuid.UUID:
    """Between the failure and the revert the game master locks a place the regeneration wrote
    and edits an older row it never touched: both must survive the revert."""
    campaign_id, before, body = _failed_regeneration(chaos, out)
    if not body:
        return campaign_id
    generation_id = body["generation_id"]
    with chaos.db() as conn:
        place = conn.execute(
            "SELECT id::text, key FROM locations WHERE generation_id = %s ORDER BY random() LIMIT 1",
            (generation_id,),
        ).fetchone()
        edited = conn.execute(
            "SELECT id::text, key FROM entity_relationships WHERE campaign_id = %s AND generation_id <> %s LIMIT 1",
            (str(campaign_id), generation_id),
        ).fetchone()
        if place is None or edited is None:
            out.violations.append("no place of the regeneration or older relationship to work on")
            return campaign_id
        conn.execute("UPDATE locations SET locked = true, name = 'Kept by the GM' WHERE id = %s", (place["id"],))
        conn.execute(
            "UPDATE entity_relationships SET description = 'The GM''s own words' WHERE id = %s", (edited["id"],)
        )
    out.faults.append("GM locked a regenerated place and edited an older relationship, then revert")
    status, answer = chaos.act("revertGeneration", {"generation_id": generation_id})
    if status != 200:
        out.violations.append(f"revert refused ({status})")
        return campaign_id
    out.gm_rows |= {(line.split(" ", 1)[0], line.split(" ", 2)[1]) for line in answer.get("kept", [])}
    with chaos.db() as conn:
        kept = conn.execute("SELECT name, locked FROM locations WHERE id = %s", (place["id"],)).fetchone()
        words = conn.execute("SELECT description FROM entity_relationships WHERE id = %s", (edited["id"],)).fetchone()
        after = world(conn, campaign_id)
    if not kept or kept != {"name": "Kept by the GM", "locked": True}:
        out.violations.append("the place the GM locked was lost or changed by the revert")
    if not words or words["description"] != "The GM's own words":
        out.violations.append("the GM's edit was lost by the revert")
    lost = sum(len(before[t] - after[t]) for t in WORLD_TABLES if t not in ("locations", "dungeons", "buildings"))
    out.rows_lost += lost
    if lost:
        out.violations.append(f"{lost} rows of the replaced world not put back")
    return campaign_id


def lock_and_edit_between_failure_and_resume(chaos: Harness, out: Outcome) -> uuid.UUID:
    """A regeneration fails in the parts of a phase whose outline was recorded; the game master locks
    and edits a row whose key is in that outline, locks and edits a row of an earlier phase and edits
    another, then resumes. The resume completes, the edits and locks stay, no row is lost."""
    campaign_id = chaos.campaign()
    chaos.generate(campaign_id)
    failing = chaos.random.choice(["1C", "2A", "2B", "2C", "3A"])
    chaos.model.plan(**{failing: [None, InvalidModelOutput("never valid")]})  # the outline answers, a part fails
    status, body = chaos.act("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": failing})
    if status != 200:
        out.violations.append(f"regeneration refused ({status})")
        return campaign_id
    chaos.wait(body)
    chaos.model.plan()
    generation_id = str(body["generation_id"])
    if (state := chaos.status_of(generation_id)) != "failed":
        out.violations.append(f"harness: the regeneration is {state}, not failed at {failing}")
        return campaign_id
    with chaos.db() as conn:
        edits = _gm_work(chaos, conn, campaign_id, generation_id, failing, out)
        before = world(conn, campaign_id)
        rerun = conn.execute("SELECT phases FROM generations WHERE id = %s", (generation_id,)).fetchone()
    if not edits:
        return campaign_id
    chaos.until_succeeded(generation_id, out, attempts=2)
    if (state := chaos.status_of(generation_id)) != "succeeded":
        out.violations.append(f"the resume did not complete: the generation is {state}")
    untouched = [t for p in PHASES if p.id not in (rerun or {}).get("phases", []) for t in p.tables]
    with chaos.db() as conn:
        after = world(conn, campaign_id)
        for table, row in edits:
            now = conn.execute(
                sql.SQL("SELECT id::text, key, description, locked FROM {} WHERE id = %s").format(
                    sql.Identifier(table)
                ),
                (row["id"],),
            ).fetchone()
            if now != row:
                out.violations.append(f"the game master's edit of {table} {row['key']} lost by the resume: {now}")
    lost = sum(len(before[t] - after[t]) for t in untouched)
    out.rows_lost += lost
    if lost:
        out.violations.append(f"{lost} rows of the phases the regeneration does not rerun lost by the resume")
    return campaign_id


def _gm_work(
    chaos: Harness,
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID,
    generation_id: str,
    failing: str,
    out: Outcome,
) -> list[tuple[str, dict[str, Any]]]:
    """Lock and edit a row under a key of the failed phase's recorded outline, lock and edit a row of
    an earlier phase, edit another; each row as it must stay, by table."""
    run = conn.execute(
        "SELECT parts FROM phase_runs WHERE generation_id = %s AND phase = %s", (generation_id, failing)
    ).fetchone()
    described = {
        r["table_name"]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE column_name = 'description' AND table_schema = current_schema()"
        ).fetchall()
    }
    outline = ((run or {}).get("parts") or {}).get("outline") or {}
    outlined = [(t, r["key"]) for t, rows in sorted(outline.items()) if t in described for r in rows]
    if not outlined:
        out.violations.append(f"harness: no outline of {failing} recorded by the failed attempt")
        return []
    table, key = chaos.random.choice(outlined)
    row = conn.execute(  # the row of that key, else another row of the table given that key
        sql.SQL("SELECT id::text FROM {} WHERE campaign_id = %s ORDER BY (key = %s) DESC, key LIMIT 1").format(
            sql.Identifier(table)
        ),
        (str(campaign_id), key),
    ).fetchone()
    if row is None:
        out.violations.append(f"harness: no row of {table} to lock")
        return []
    edits = [(table, _edit(conn, table, row["id"], lock=True, key=key))]
    earlier = [t for p in PHASES[: [p.id for p in PHASES].index(failing)] for t in p.tables if t in described]
    for t in chaos.random.sample(earlier, len(earlier)):
        found = conn.execute(
            sql.SQL("SELECT id::text FROM {} WHERE campaign_id = %s ORDER BY random() LIMIT 1").format(
                sql.Identifier(t)
            ),
            (str(campaign_id),),
        ).fetchone()
        if found is not None:
            edits.append((t, _edit(conn, t, found["id"], lock=len(edits) == 1)))
        if len(edits) == 3:
            break
    out.faults.append(
        f"regeneration failed in the parts of {failing}; the GM locked and edited {table} {key} of its outline, "
        + ", ".join(f"{'locked and ' if r['locked'] else ''}edited {t} {r['key']}" for t, r in edits[1:])
        + ", then resume"
    )
    return edits


def _edit(
    conn: psycopg.Connection[Any], table: str, row_id: str, *, lock: bool, key: str | None = None
) -> dict[str, Any]:
    """The game master's edit of a row (its description; its key when given; its lock when asked)."""
    row = conn.execute(
        sql.SQL(
            "UPDATE {} SET description = %s, key = coalesce(%s, key), locked = locked OR %s WHERE id = %s"
            " RETURNING id::text, key, description, locked"
        ).format(sql.Identifier(table)),
        (f"{GM_WORDS} ({table})", key, lock, row_id),
    ).fetchone()
    assert row is not None
    return dict(row)
