"""Reroll one row (issue 27): on the demo world (procedural model) and through the stand-in Messages API.

Every test compares the whole world, table by table, key by key, before and after: a reroll
changes exactly one row, and its undo puts that row back byte for byte (its text form).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from support.standin import Answer, StandIn

from tests.support.worlds import generate_sample_world
from worldgen import state
from worldgen.db.save import existing_keys
from worldgen.errors import InvalidModelOutput
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.factory import get_model
from worldgen.phases import WORLD_TABLES
from worldgen.pipeline import table_specs
from worldgen.reroll import RerollRefused, reroll_history, reroll_row, undo_reroll
from worldgen.settings import get_settings


def world(conn: Any, campaign_id: uuid.UUID) -> dict[tuple[str, str], str]:
    """(table, key) -> the row's text form (every column, as PostgreSQL writes it)."""
    rows: dict[tuple[str, str], str] = {}
    for table in WORLD_TABLES:
        query = sql.SQL("SELECT key, t::text AS content FROM {} t WHERE campaign_id = %s").format(sql.Identifier(table))
        for row in conn.execute(query, (campaign_id,)).fetchall():
            rows[(table, row["key"])] = row["content"]
    conn.commit()
    return rows


def busiest_npc(conn: Any, campaign_id: uuid.UUID) -> dict[str, Any]:
    """The NPC most rows refer to (relationships, places it rules, shops it owns, quests it gives)."""
    row = conn.execute(
        """SELECT e.id, e.key FROM entities e WHERE e.campaign_id = %s
           ORDER BY (SELECT count(*) FROM entity_relationships r WHERE e.id IN (r.entity_id, r.related_entity_id))
             DESC, e.key LIMIT 1""",
        (campaign_id,),
    ).fetchone()
    conn.commit()
    return dict(row)


def references_to(conn: Any, campaign_id: uuid.UUID, table: str, row_id: Any) -> list[tuple[str, str, str]]:
    """(table, key, column) of every world row whose foreign key holds ``row_id`` of ``table``."""
    specs = table_specs(conn)
    found = []
    for source in WORLD_TABLES:
        for column in specs[source].foreign_keys:
            if column.references != table:
                continue
            query = sql.SQL("SELECT key FROM {} WHERE campaign_id = %s AND {} = %s").format(
                sql.Identifier(source), sql.Identifier(column.name)
            )
            found += [(source, r["key"], column.name) for r in conn.execute(query, (campaign_id, row_id)).fetchall()]
    conn.commit()
    return sorted(found)


def dangling_references(conn: Any, campaign_id: uuid.UUID) -> list[str]:
    """Every foreign key of every world row that names no row of its table."""
    specs = table_specs(conn)
    ids = {
        t: set(keys.values())
        for t, keys in existing_keys(conn, campaign_id, {*WORLD_TABLES, "player_characters"}).items()
    }
    problems = []
    for table in WORLD_TABLES:
        for column in specs[table].foreign_keys:
            if column.references not in ids:
                continue
            query = sql.SQL("SELECT key, {} AS ref FROM {} WHERE campaign_id = %s AND {} IS NOT NULL").format(
                sql.Identifier(column.name), sql.Identifier(table), sql.Identifier(column.name)
            )
            for row in conn.execute(query, (campaign_id,)).fetchall():
                if row["ref"] not in ids[column.references]:
                    problems.append(f"{table}[{row['key']}].{column.name}")
    conn.commit()
    return problems


def reroll_ledger(conn: Any, reroll_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT generation_id, reroll_id, phase, round, provider, model, cost_usd, error_type FROM model_calls"
        " WHERE reroll_id = %s ORDER BY round",
        (reroll_id,),
    ).fetchall()
    conn.commit()
    return [dict(r) for r in rows]


@pytest.fixture
def demo_world(settings_env: str, conn: Any) -> uuid.UUID:
    campaign_id = generate_sample_world(conn)
    conn.commit()
    return campaign_id


def assert_only_changed(before: dict, after: dict, changed: tuple[str, str]) -> None:
    assert after.keys() == before.keys()
    assert [k for k in before if before[k] != after[k]] == [changed]


def test_reroll_of_an_npc_on_the_demo_world_changes_only_that_row_and_undo_restores_it(
    demo_world: uuid.UUID, conn: Any
) -> None:
    npc = busiest_npc(conn, demo_world)
    referring = references_to(conn, demo_world, "entities", npc["id"])
    assert len(referring) >= 2  # the test means something: rows hang on this NPC
    ties_before = conn.execute(
        "SELECT player_character_id, race_id, faction_id, home_region_id, role FROM entities WHERE id = %s",
        (npc["id"],),
    ).fetchone()
    before = world(conn, demo_world)

    outcome = reroll_row(conn, demo_world, "entities", npc["key"], hint="make her less dull")

    after = world(conn, demo_world)
    assert_only_changed(before, after, ("entities", npc["key"]))
    assert "description" in outcome.changed
    kept = conn.execute("SELECT id, key FROM entities WHERE id = %s", (npc["id"],)).fetchone()
    assert kept == {"id": npc["id"], "key": npc["key"]}
    assert references_to(conn, demo_world, "entities", npc["id"]) == referring
    assert dangling_references(conn, demo_world) == []
    ties = "SELECT player_character_id, race_id, faction_id, home_region_id, role FROM entities WHERE id = %s"
    assert conn.execute(ties, (npc["id"],)).fetchone() == ties_before  # the offline generator reads no hint
    ledger = reroll_ledger(conn, outcome.reroll_id)
    assert [(c["generation_id"], c["phase"], c["provider"]) for c in ledger] == [(None, "2A", "procedural")]
    history = reroll_history(conn, demo_world)
    assert [(h["table_name"], h["row_key"], h["status"], h["hint"], h["model_calls"]) for h in history] == [
        ("entities", npc["key"], "applied", "make her less dull", 1)
    ]

    undone = undo_reroll(conn, demo_world, "entities", npc["key"])

    assert undone.status == "undone"
    assert world(conn, demo_world) == before  # byte for byte, every row


def test_undo_walks_down_the_history_one_version_at_a_time(demo_world: uuid.UUID, conn: Any) -> None:
    npc = busiest_npc(conn, demo_world)
    versions = [world(conn, demo_world)]
    for _ in range(3):
        reroll_row(conn, demo_world, "entities", npc["key"])
        versions.append(world(conn, demo_world))
    assert len({v[("entities", npc["key"])] for v in versions}) == 4  # each reroll wrote a new version

    for expected in reversed(versions[:-1]):
        undo_reroll(conn, demo_world, "entities", npc["key"])
        assert world(conn, demo_world) == expected

    with pytest.raises(RerollRefused) as refused:
        undo_reroll(conn, demo_world, "entities", npc["key"])
    assert refused.value.code == "nothing-to-undo"


def test_reroll_of_a_relationship_row_keeps_its_ends(demo_world: uuid.UUID, conn: Any) -> None:
    edge = conn.execute(
        "SELECT id, key, entity_id, related_entity_id FROM entity_relationships WHERE campaign_id = %s ORDER BY key"
        " LIMIT 1",
        (demo_world,),
    ).fetchone()
    before = world(conn, demo_world)

    reroll_row(conn, demo_world, "entity_relationships", edge["key"])

    assert_only_changed(before, world(conn, demo_world), ("entity_relationships", edge["key"]))
    now = conn.execute(
        "SELECT id, key, entity_id, related_entity_id FROM entity_relationships WHERE id = %s", (edge["id"],)
    ).fetchone()
    assert now == edge  # no hint: the same two NPCs


def test_reroll_of_a_locked_row_is_refused_without_a_model_call(demo_world: uuid.UUID, conn: Any) -> None:
    npc = busiest_npc(conn, demo_world)
    conn.execute("UPDATE entities SET locked = true WHERE id = %s", (npc["id"],))
    conn.commit()
    before = world(conn, demo_world)

    with pytest.raises(RerollRefused) as refused:
        reroll_row(conn, demo_world, "entities", npc["key"], model=Forbidden())

    assert (refused.value.code, refused.value.status) == ("row-locked", 409)
    assert "locked" in refused.value.message
    assert world(conn, demo_world) == before


class Forbidden:
    """A model that must not be called."""

    provider = "procedural"

    def call(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("the model was called")


def test_reroll_during_a_running_generation_is_refused(demo_world: uuid.UUID, conn: Any) -> None:
    npc = busiest_npc(conn, demo_world)
    generation = state.create_generation(conn, demo_world, provider="procedural", phases=["3C"])
    state.start_execution(conn, generation, "arn:local:running")
    before = world(conn, demo_world)

    with pytest.raises(RerollRefused) as refused:
        reroll_row(conn, demo_world, "entities", npc["key"], model=Forbidden())
    with pytest.raises(RerollRefused) as undo_refused:
        undo_reroll(conn, demo_world, "entities", npc["key"])

    assert (refused.value.code, refused.value.status) == ("generation-active", 409)
    assert undo_refused.value.code == "generation-active"
    assert world(conn, demo_world) == before


class StartsAGeneration:
    """The procedural model, but while it answers, a generation of the campaign starts (another
    process, another connection): the reroll's save must see it, not only the check before the call."""

    provider = "procedural"

    def __init__(self, db_url: str, campaign_id: uuid.UUID) -> None:
        self.db_url, self.campaign_id = db_url, campaign_id

    def call(self, request: ModelRequest) -> ModelResponse:
        with psycopg.connect(self.db_url, row_factory=psycopg.rows.dict_row) as other:
            state.create_generation(other, self.campaign_id, provider="procedural", phases=["3C"])
        return get_model("procedural").call(request)


def test_a_generation_started_during_the_call_fences_the_save_and_the_call_is_still_in_the_ledger(
    demo_world: uuid.UUID, conn: Any, db_url: str
) -> None:
    npc = busiest_npc(conn, demo_world)
    before = world(conn, demo_world)

    with pytest.raises(RerollRefused) as refused:
        reroll_row(conn, demo_world, "entities", npc["key"], model=StartsAGeneration(db_url, demo_world))

    assert refused.value.code == "generation-active"
    assert world(conn, demo_world) == before
    [failed] = reroll_history(conn, demo_world)
    assert (failed["status"], failed["error_type"], failed["model_calls"]) == ("failed", "generation-active", 1)
    assert [c["error_type"] for c in reroll_ledger(conn, str(failed["id"]))] == ["generation-active"]


@pytest.mark.parametrize(
    ("table", "key", "code", "status"),
    [
        ("dragons", "x", "unknown-table", 400),
        ("campaigns", "x", "not-a-world-table", 400),
        ("model_calls", "x", "not-a-world-table", 400),
        ("entities", "no-such-npc", "unknown-key", 404),
    ],
)
def test_bad_input_is_refused_with_a_code(
    demo_world: uuid.UUID, conn: Any, table: str, key: str, code: str, status: int
) -> None:
    with pytest.raises(RerollRefused) as refused:
        reroll_row(conn, demo_world, table, key, model=Forbidden())
    assert (refused.value.code, refused.value.status) == (code, status)
    assert "\n" not in refused.value.message


# -- through the stand-in Messages API (the real anthropic SDK over loopback) ---------------------


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def claude_world(demo_world: uuid.UUID, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> uuid.UUID:
    """The demo world, then Claude (Sonnet 4.6: a forced tool) pointed at the stand-in."""
    monkeypatch.setenv("WORLDGEN_ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("WORLDGEN_ANTHROPIC_BASE_URL", standin.url)
    monkeypatch.setenv("WORLDGEN_SDK_MAX_RETRIES", "0")
    monkeypatch.setenv("WORLDGEN_REQUEST_TIMEOUT_SECONDS", "10")
    monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", "claude-sonnet-4-6")
    get_settings.cache_clear()
    return demo_world


def test_reroll_through_the_messages_api_sends_the_rows_around_it_and_changes_only_that_row(
    claude_world: uuid.UUID, conn: Any, standin: StandIn
) -> None:
    npc = busiest_npc(conn, claude_world)
    referring = references_to(conn, claude_world, "entities", npc["id"])
    before = world(conn, claude_world)

    outcome = reroll_row(
        conn, claude_world, "entities", npc["key"], hint="give her a better reason", provider="anthropic"
    )

    after = world(conn, claude_world)
    assert_only_changed(before, after, ("entities", npc["key"]))
    assert conn.execute("SELECT key FROM entities WHERE id = %s", (npc["id"],)).fetchone()["key"] == npc["key"]
    assert references_to(conn, claude_world, "entities", npc["id"]) == referring
    assert dangling_references(conn, claude_world) == []
    [request] = standin.message_requests
    prompt = request.body["messages"][0]["content"]
    assert "give her a better reason" in prompt
    for table, key, _ in referring:  # every row referring to it, whole
        assert f'"key": "{key}"' in prompt, (table, key)
    [call] = reroll_ledger(conn, outcome.reroll_id)
    assert (call["generation_id"], call["provider"], call["model"], call["round"]) == (
        None, "anthropic", "claude-sonnet-4-6", 1,
    )  # fmt: skip
    assert call["cost_usd"] > 0
    assert outcome.cost_usd == pytest.approx(float(call["cost_usd"]))

    undo_reroll(conn, claude_world, "entities", npc["key"])

    assert world(conn, claude_world) == before


def test_an_invalid_answer_gets_one_repair_round(claude_world: uuid.UUID, conn: Any, standin: StandIn) -> None:
    npc = busiest_npc(conn, claude_world)
    standin.script(Answer.with_input({"entities": [{"key": npc["key"], "name": "Nameless"}]}), Answer.valid())
    before = world(conn, claude_world)

    outcome = reroll_row(conn, claude_world, "entities", npc["key"], provider="anthropic")

    assert_only_changed(before, world(conn, claude_world), ("entities", npc["key"]))
    assert [c["round"] for c in reroll_ledger(conn, outcome.reroll_id)] == [1, 2]
    repair = standin.message_requests[1].body["messages"][-1]["content"][0]
    assert repair["type"] == "tool_result" and repair["is_error"] is True
    assert "required" in repair["content"]


def test_an_answer_still_invalid_after_the_repair_round_writes_nothing_and_is_in_the_ledger(
    claude_world: uuid.UUID, conn: Any, standin: StandIn
) -> None:
    npc = busiest_npc(conn, claude_world)
    bad = {"entities": [{"key": npc["key"], "name": "Nameless"}]}
    standin.script(Answer.with_input(bad), Answer.with_input(bad))
    before = world(conn, claude_world)

    with pytest.raises(InvalidModelOutput):
        reroll_row(conn, claude_world, "entities", npc["key"], provider="anthropic")

    assert world(conn, claude_world) == before
    [failed] = reroll_history(conn, claude_world)
    assert (failed["status"], failed["error_type"], failed["model_calls"]) == ("failed", "InvalidModelOutput", 2)
    assert failed["cost_usd"] > 0


def test_reroll_in_the_structured_output_dialect(
    claude_world: uuid.UUID, conn: Any, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", "claude-sonnet-5-5")
    get_settings.cache_clear()
    npc = busiest_npc(conn, claude_world)
    before = world(conn, claude_world)

    reroll_row(conn, claude_world, "entities", npc["key"], provider="anthropic")

    assert [r.rejected for r in standin.message_requests] == [[]]
    assert_only_changed(before, world(conn, claude_world), ("entities", npc["key"]))


# -- the Hasura actions rerollRow and undoReroll ----------------------------------------------------


@pytest.fixture
def runtime(demo_world: uuid.UUID, db_url: str) -> Iterator[LocalRuntime]:
    with LocalRuntime(environment={"WORLDGEN_DATABASE_URL": db_url}) as local:
        yield local


def owner_of(conn: Any, campaign_id: uuid.UUID) -> str:
    owner = conn.execute("SELECT owner_id FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()["owner_id"]
    conn.commit()
    return str(owner)


def test_reroll_row_action_rerolls_and_undo_reroll_puts_it_back(
    demo_world: uuid.UUID, conn: Any, runtime: LocalRuntime
) -> None:
    npc = busiest_npc(conn, demo_world)
    owner = owner_of(conn, demo_world)
    before = world(conn, demo_world)
    row = {"campaign_id": str(demo_world), "table": "entities", "key": npc["key"]}

    status, body = runtime.action("rerollRow", {**row, "hint": "more menace"}, user_id=owner)

    assert status == 200, body
    assert (body["table"], body["key"], body["row_id"], body["status"]) == (
        "entities", npc["key"], str(npc["id"]), "applied",
    )  # fmt: skip
    assert_only_changed(before, world(conn, demo_world), ("entities", npc["key"]))
    assert [c["reroll_id"] for c in reroll_ledger(conn, body["reroll_id"])] == [uuid.UUID(body["reroll_id"])]

    status, undone = runtime.action("undoReroll", row, user_id=owner)

    assert (status, undone["status"], undone["reroll_id"]) == (200, "undone", body["reroll_id"])
    assert world(conn, demo_world) == before


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"table": "dragons"}, 400, "unknown-table"),
        ({"table": "generations"}, 400, "not-a-world-table"),
        ({"key": "nobody-at-all"}, 404, "unknown-key"),
        ({"campaign_id": str(uuid.UUID(int=7))}, 404, "campaign-not-found"),
        ({"table": None}, 400, "validation-failed"),
        ({"hint": "x" * 2001}, 400, "hint-too-long"),
        ({"table": "entities; DROP TABLE entities"}, 400, "unknown-table"),
        ({"table": "enti\u0000ties"}, 400, "unknown-table"),
        ({"key": "mira\u0000"}, 404, "unknown-key"),
    ],
)
def test_reroll_row_action_answers_bad_input_in_hasuras_shape(
    demo_world: uuid.UUID, conn: Any, runtime: LocalRuntime, change: dict[str, Any], status: int, code: str
) -> None:
    npc = busiest_npc(conn, demo_world)
    data = {"campaign_id": str(demo_world), "table": "entities", "key": npc["key"], **change}
    before = world(conn, demo_world)

    answered, body = runtime.action("rerollRow", data, user_id=owner_of(conn, demo_world))

    assert (answered, body["extensions"]) == (status, {"code": code})
    assert set(body) == {"message", "extensions"} and isinstance(body["message"], str)
    assert world(conn, demo_world) == before


def test_reroll_row_action_refuses_a_locked_row_another_owner_and_a_running_generation(
    demo_world: uuid.UUID, conn: Any, runtime: LocalRuntime
) -> None:
    npc = busiest_npc(conn, demo_world)
    owner = owner_of(conn, demo_world)
    row = {"campaign_id": str(demo_world), "table": "entities", "key": npc["key"]}
    before = world(conn, demo_world)

    assert runtime.action("rerollRow", row, user_id="someone-else")[0] == 404  # never confirms it exists
    conn.execute("UPDATE entities SET locked = true WHERE id = %s", (npc["id"],))
    conn.commit()
    status, body = runtime.action("rerollRow", row, user_id=owner)
    assert (status, body["extensions"]["code"]) == (409, "row-locked")
    conn.execute("UPDATE entities SET locked = false WHERE id = %s", (npc["id"],))
    conn.commit()
    state.create_generation(conn, demo_world, provider="procedural", phases=["3C"])  # pending: it runs
    status, body = runtime.action("rerollRow", row, user_id=owner)
    assert (status, body["extensions"]["code"]) == (409, "generation-active")
    status, body = runtime.action("undoReroll", row, user_id=owner)
    assert (status, body["extensions"]["code"]) == (409, "generation-active")

    after = world(conn, demo_world)
    assert after.keys() == before.keys()
    assert [k for k in before if before[k] != after[k]] == []  # locked was set and cleared again


# -- the command line --------------------------------------------------------------------------------


def worldgen(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env["WORLDGEN_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "worldgen.tools.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_reroll_undo_and_history(demo_world: uuid.UUID, conn: Any, db_url: str) -> None:
    npc = busiest_npc(conn, demo_world)
    name = conn.execute("SELECT name FROM campaigns WHERE id = %s", (demo_world,)).fetchone()["name"]
    conn.commit()
    before = world(conn, demo_world)

    rolled = worldgen("reroll", name, "entities", npc["key"], "--hint", "less dull", database_url=db_url)

    assert rolled.returncode == 0, rolled.stderr
    assert f"entities {npc['key']!r} rerolled by procedural" in rolled.stdout
    assert f"worldgen reroll --undo {demo_world} entities {npc['key']}" in rolled.stdout
    assert_only_changed(before, world(conn, demo_world), ("entities", npc["key"]))

    listed = worldgen("history", str(demo_world), database_url=db_url)
    assert listed.returncode == 0, listed.stderr
    [line] = [x for x in listed.stdout.splitlines() if npc["key"] in x]
    assert "applied" in line and "procedural" in line and "less dull" in line and "$  0.0000" in line

    undone = worldgen("reroll", "--undo", str(demo_world), "entities", npc["key"], database_url=db_url)
    assert undone.returncode == 0, undone.stderr
    assert world(conn, demo_world) == before
    again = worldgen("reroll", "--undo", str(demo_world), "entities", npc["key"], database_url=db_url)
    assert again.returncode == 2
    assert again.stderr == f"error: entities {npc['key']!r} has no reroll left to undo [nothing-to-undo]\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("entities", "nobody"), "has no entities row with key 'nobody' [unknown-key]"),
        (("campaigns", "x"), "'campaigns' is not a world table"),
        (("dragons", "x"), "no table 'dragons'"),
    ],
)
def test_cli_reroll_mistakes_are_one_line(
    demo_world: uuid.UUID, db_url: str, args: tuple[str, ...], expected: str
) -> None:
    result = worldgen("reroll", str(demo_world), *args, database_url=db_url)
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_cli_reroll_of_an_unknown_campaign_is_one_line(db_url: str) -> None:
    result = worldgen("reroll", "No Such Campaign", "entities", "x", database_url=db_url)
    unknown = "error: no campaign is named 'No Such Campaign': `worldgen campaigns` lists them\n"
    assert (result.returncode, result.stderr) == (2, unknown)


# -- exports ------------------------------------------------------------------------------------------


def test_an_export_after_a_reroll_carries_the_current_version_only_and_imports_without_history(
    demo_world: uuid.UUID, conn: Any
) -> None:
    from worldgen.tools.export.world import document_problems, export_world, import_world

    npc = busiest_npc(conn, demo_world)
    first = export_world(conn, demo_world)
    outcome = reroll_row(conn, demo_world, "entities", npc["key"], hint="a darker secret")
    current = conn.execute("SELECT name, description FROM entities WHERE id = %s", (npc["id"],)).fetchone()
    conn.commit()

    second = export_world(conn, demo_world)

    [old] = [r for r in first["world"]["entities"] if r["key"] == npc["key"]]
    [new] = [r for r in second["world"]["entities"] if r["key"] == npc["key"]]
    assert (new["name"], new["description"]) == (current["name"], current["description"])
    assert new["description"] != old["description"]
    assert {t: r for t, r in second["world"].items() if t != "entities"} == {
        t: r for t, r in first["world"].items() if t != "entities"
    }
    assert document_problems(second) == []
    assert outcome.reroll_id not in str(second)  # no history, no reroll ledger row in the file
    assert "reroll_id" not in str(second["generations"])

    copy = import_world(conn, second)
    conn.commit()
    assert conn.execute(
        "SELECT description FROM entities WHERE campaign_id = %s AND key = %s", (copy, npc["key"])
    ).fetchone() == {"description": current["description"]}
    assert reroll_history(conn, copy) == []


def test_undo_is_refused_once_a_regeneration_replaced_the_row(demo_world: uuid.UUID, conn: Any) -> None:
    from worldgen.pipeline import run_phase

    edge = conn.execute(
        "SELECT key FROM entity_relationships WHERE campaign_id = %s ORDER BY key LIMIT 1", (demo_world,)
    ).fetchone()["key"]
    conn.commit()
    reroll_row(conn, demo_world, "entity_relationships", edge)
    generation = state.create_generation(conn, demo_world, provider="procedural", phases=["3C"])
    run_phase(conn, generation, "3C")
    state.complete_generation(conn, generation, {"rows_total": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0})
    assert conn.execute(
        "SELECT 1 FROM entity_relationships WHERE campaign_id = %s AND key = %s", (demo_world, edge)
    ).fetchone()  # the regeneration wrote the same key again, a new row
    conn.commit()
    before = world(conn, demo_world)

    with pytest.raises(RerollRefused) as refused:
        undo_reroll(conn, demo_world, "entity_relationships", edge)

    assert refused.value.code == "row-replaced"
    assert world(conn, demo_world) == before


def test_the_tool_pins_references_without_a_hint_and_offers_every_valid_row_with_one(
    demo_world: uuid.UUID, conn: Any
) -> None:
    from worldgen.reroll import _neighbourhood, _whole_row, reroll_tool

    parent = conn.execute(
        "SELECT p.key, p.parent_location_id FROM locations p WHERE p.campaign_id = %s"
        " AND EXISTS (SELECT 1 FROM locations c WHERE c.parent_location_id = p.id)"
        # a place inside another, so that some place is neither it nor under it (a root may have none)
        " ORDER BY p.parent_location_id IS NULL, p.key LIMIT 1",
        (demo_world,),
    ).fetchone()
    children = {
        r["key"]
        for r in conn.execute(
            "WITH RECURSIVE under AS (SELECT id, key FROM locations WHERE parent_location_id ="
            " (SELECT id FROM locations WHERE campaign_id = %s AND key = %s)"
            " UNION SELECT l.id, l.key FROM locations l JOIN under u ON l.parent_location_id = u.id)"
            " SELECT key FROM under",
            (demo_world, parent["key"]),
        ).fetchall()
    }
    specs = table_specs(conn)
    whole = _whole_row(conn, demo_world, "locations", parent["key"])
    around = _neighbourhood(conn, demo_world, "locations", whole, specs)
    conn.commit()

    pinned = reroll_tool("locations", specs["locations"], around, parent["key"], open_references=False)
    opened = reroll_tool("locations", specs["locations"], around, parent["key"], open_references=True)

    def item(tool: dict[str, Any]) -> dict[str, Any]:
        return tool["input_schema"]["properties"]["locations"]["items"]["properties"]

    assert item(pinned)["key"]["enum"] == item(opened)["key"]["enum"] == [parent["key"]]
    for prop, schema in item(pinned).items():
        if prop.endswith("_key") and prop != "key":
            assert schema["enum"] == [around.row[prop]], prop  # the current value, nothing else
    assert ("parent_location_key" in item(pinned)) is (parent["parent_location_id"] is not None)
    offered = set(item(opened)["parent_location_key"]["enum"])
    all_locations = set(around.keys["locations"])
    assert offered == all_locations - children - {parent["key"]}  # never itself or a descendant
    assert children  # the test means something


class EditsTheRow:
    """The procedural model, but while it answers the game master edits the row through Hasura."""

    provider = "procedural"

    def __init__(self, db_url: str, row_id: Any) -> None:
        self.db_url, self.row_id = db_url, row_id

    def call(self, request: ModelRequest) -> ModelResponse:
        with psycopg.connect(self.db_url) as other:
            other.execute("UPDATE entities SET description = 'Edited at the table.' WHERE id = %s", (self.row_id,))
        return get_model("procedural").call(request)


def test_an_edit_during_the_call_is_kept_and_the_reroll_refused(demo_world: uuid.UUID, conn: Any, db_url: str) -> None:
    npc = busiest_npc(conn, demo_world)

    with pytest.raises(RerollRefused) as refused:
        reroll_row(conn, demo_world, "entities", npc["key"], model=EditsTheRow(db_url, npc["id"]))

    assert refused.value.code == "row-changed"
    edited = conn.execute("SELECT description FROM entities WHERE id = %s", (npc["id"],)).fetchone()
    assert edited == {"description": "Edited at the table."}


def test_the_row_rerolls_migration_goes_down_and_up_again_with_rerolls_recorded(
    demo_world: uuid.UUID, conn: Any, db_url: str
) -> None:
    from worldgen.repository.migrator import discover, migrate, migrate_down

    npc = busiest_npc(conn, demo_world)
    reroll_row(conn, demo_world, "entities", npc["key"])
    generation_calls = conn.execute("SELECT count(*) AS n FROM model_calls WHERE generation_id IS NOT NULL").fetchone()
    conn.commit()
    conn.close()

    names = [m.name for m in discover()]
    steps = len(names) - names.index("row_rerolls")  # it and the migrations after it, if any

    reverted = migrate_down(db_url, steps)
    assert reverted[-1].name == "row_rerolls"
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as after:
        assert after.execute("SELECT count(*) AS n FROM model_calls").fetchone() == generation_calls
    assert [m.name for m in migrate(db_url)] == names[-steps:]


def test_the_catalogs_rules_across_rows_count_the_rows_held_fixed(
    claude_world: uuid.UUID, conn: Any, standin: StandIn
) -> None:
    edges = conn.execute(
        "SELECT r.key, a.key AS entity_key, b.key AS related_entity_key, r.relationship_type, r.description"
        " FROM entity_relationships r JOIN entities a ON a.id = r.entity_id"
        " JOIN entities b ON b.id = r.related_entity_id"
        " WHERE r.campaign_id = %s ORDER BY r.key LIMIT 2",
        (claude_world,),
    ).fetchall()
    conn.commit()
    taken, mine = edges
    copy = {**{k: taken[k] for k in ("entity_key", "related_entity_key", "relationship_type")}, "key": mine["key"]}
    fixed = {k: mine[k] for k in ("key", "entity_key", "related_entity_key", "relationship_type")}
    standin.script(
        Answer.with_input({"entity_relationships": [{**copy, "description": "The same pair again."}]}),
        Answer.with_input({"entity_relationships": [{**fixed, "description": "A fresh take."}]}),
    )
    before = world(conn, claude_world)

    outcome = reroll_row(
        conn, claude_world, "entity_relationships", mine["key"], hint="another pair", provider="anthropic"
    )

    repair = standin.message_requests[1].body["messages"][-1]["content"][0]["content"]
    assert f"as row {taken['key']!r}: one row per combination" in repair  # found before the database
    assert outcome.model_calls == 2
    assert_only_changed(before, world(conn, claude_world), ("entity_relationships", mine["key"]))
