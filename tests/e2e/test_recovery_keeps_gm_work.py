"""Recovery keeps the game master's work (issue 29): a failed regeneration, then the game master
locks and edits rows, then a revert, a cancel or a discard, through the real handlers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg import sql

from tests.e2e.test_data_safety import _regenerate_failing_at_3c, execute, generation_status, query, world
from worldgen.phases import get_phase

pytestmark = pytest.mark.xdist_group("e2e")


def _gm_works_on(url: str, campaign_id: uuid.UUID, regeneration: str) -> dict[str, Any]:
    """The game master locks a place the regeneration wrote and edits an older row it never touched."""
    locked = query(
        url, "SELECT id::text, key FROM locations WHERE generation_id = %s ORDER BY key LIMIT 1", regeneration
    )[0]
    execute(url, "UPDATE locations SET locked = true, name = 'Greyhollow, as I run it' WHERE id = %s", locked["id"])
    for table in get_phase("3C").tables:
        old = query(
            url,
            sql.SQL("SELECT id::text, key FROM {} WHERE campaign_id = %s AND generation_id <> %s LIMIT 1")
            .format(sql.Identifier(table))
            .as_string(),
            str(campaign_id),
            regeneration,
        )
        if old:
            execute(
                url,
                sql.SQL("UPDATE {} SET description = 'my own words' WHERE id = %s")
                .format(sql.Identifier(table))
                .as_string(),
                old[0]["id"],
            )
            return {"locked": locked, "edited": {"table": table, **old[0]}}
    raise AssertionError("no row of 3C from before the regeneration")


@pytest.mark.parametrize("recovery", ["revertGeneration", "cancelGeneration"])
def test_revert_and_cancel_of_a_regeneration_put_back_the_world_but_keep_what_the_gm_locked_or_edited(
    make_runtime, settings_env, campaign_id, recovery
):
    runtime, _, failed = _regenerate_failing_at_3c(make_runtime, settings_env, campaign_id)
    work = _gm_works_on(settings_env, campaign_id, failed["generation_id"])

    status, body = runtime.action(recovery, {"generation_id": failed["generation_id"]}, role="admin")

    assert status == 200, body
    locked, edited = work["locked"], work["edited"]
    assert f"locations {locked['key']} (locked)" in body["kept"]
    assert f"{edited['table']} {edited['key']} (edited)" in body["kept"]
    place = query(settings_env, "SELECT name, locked FROM locations WHERE id = %s", locked["id"])
    assert place == [{"name": "Greyhollow, as I run it", "locked": True}]
    words = query(
        settings_env,
        sql.SQL("SELECT description FROM {} WHERE id = %s").format(sql.Identifier(edited["table"])).as_string(),
        edited["id"],
    )
    assert words == [{"description": "my own words"}]
    # Every other row is the world the regeneration replaced: by key, nothing of it is missing.
    after = world(settings_env, campaign_id)
    for table, rows in failed["before"].items():
        assert {key for (_, key, _) in rows} <= {key for (_, key, _) in after[table]}, table
    # Of the regeneration's rows, only those kept for the game master stay, each named with its reason.
    stayed = {
        f"{table} {key}" for table, rows in after.items() for (_, key, gen) in rows if gen == failed["generation_id"]
    }
    assert f"locations {locked['key']}" in stayed
    assert stayed <= {kept.rsplit(" (", 1)[0] for kept in body["kept"]}


def test_discard_of_a_failed_regeneration_is_refused_and_points_to_revert(make_runtime, settings_env, campaign_id):
    runtime, _, failed = _regenerate_failing_at_3c(make_runtime, settings_env, campaign_id)
    before = world(settings_env, campaign_id)

    status, body = runtime.action("discardGeneration", {"generation_id": failed["generation_id"]}, role="admin")

    assert status == 409
    assert body["extensions"]["code"] == "not-discardable"
    assert "revert" in body["message"]
    assert world(settings_env, campaign_id) == before
    assert generation_status(settings_env, failed["generation_id"]) == "failed"
    reverted = runtime.action("revertGeneration", {"generation_id": failed["generation_id"]}, role="admin")
    assert reverted[0] == 200, reverted
    assert world(settings_env, campaign_id) == failed["before"]
