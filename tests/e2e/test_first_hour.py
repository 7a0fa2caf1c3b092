"""A game master's first hour (issue 28): one home for the worlds, campaigns as things, every
command checked before it starts, exports that do what their file name says."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.e2e.test_cli import assert_one_clean_error
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime
from worldgen.tools.cli import build_parser, phase_argument, uuid_argument

pytestmark = pytest.mark.xdist_group("e2e")

PASSWORD = "hunter2-e7c1"
MISTYPED_URL = f"postgressql://gm:{PASSWORD}@localhost/worldgen"


def worldgen(
    *args: str, database_url: str | None, home: Path | None = None, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    if database_url is not None:
        env["WORLDGEN_DATABASE_URL"] = database_url
    env["WORLDGEN_HOME"] = str(home) if home else os.environ["WORLDGEN_HOME"]
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "worldgen.tools.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def count(database_url: str, query: str, *params: object) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])


# -- one home for the worlds -------------------------------------------------------------------


def test_a_world_made_in_one_folder_is_seen_by_status_from_another(tmp_path):
    home, first, second = tmp_path / "home", tmp_path / "campaigns", tmp_path / "elsewhere"
    first.mkdir()
    (second / ".worldgen" / "pgdata").mkdir(parents=True)  # an older worldgen's database, never ignored

    made = worldgen("demo", "--profile", "quick", database_url=None, home=home, cwd=first)
    assert made.returncode == 0, made.stderr
    status = worldgen("status", database_url=None, home=home, cwd=second)
    where = worldgen("where", database_url=None, home=home, cwd=second)

    assert status.returncode == 0, status.stderr
    assert "campaign 'The Drowned Crown'" in status.stdout
    assert "status: succeeded" in status.stdout
    assert f"note: worlds made before are in {second / '.worldgen' / 'pgdata'}" in status.stderr
    assert "`worldgen where --move-old` moves them" in status.stderr
    assert not (first / ".worldgen").exists()
    assert (home / "pgdata").is_dir()
    assert f"worldgen home: {home.resolve()}" in where.stdout


def test_an_old_database_in_the_working_folder_is_named_and_moved_never_ignored(tmp_path):
    old = tmp_path / "project" / ".worldgen" / "pgdata"
    old.mkdir(parents=True)
    (old / "PG_VERSION").write_text("16\n")
    home = tmp_path / "home"

    where = worldgen("where", database_url=None, home=home, cwd=old.parent.parent)
    moved = worldgen("where", "--move-old", database_url=None, home=home, cwd=old.parent.parent)
    again = worldgen("where", "--move-old", database_url=None, home=home, cwd=old.parent.parent)

    assert f"an older database is in {old}" in where.stdout
    assert moved.returncode == 0, moved.stderr
    assert (home / "pgdata" / "PG_VERSION").read_text() == "16\n" and not old.exists()
    assert_one_clean_error(again, "no older database in")


def test_an_old_database_is_not_moved_over_the_homes_own(tmp_path):
    old = tmp_path / "project" / ".worldgen" / "pgdata"
    old.mkdir(parents=True)
    (tmp_path / "home" / "pgdata").mkdir(parents=True)

    refused = worldgen("where", "--move-old", database_url=None, home=tmp_path / "home", cwd=tmp_path / "project")

    assert_one_clean_error(refused, "already holds a database")
    assert old.is_dir()


# -- campaigns as things -----------------------------------------------------------------------


def test_a_second_demo_adds_no_campaign_and_campaigns_lists_then_removes_it(db_url):
    for _ in range(2):
        demo = worldgen("demo", "--profile", "quick", database_url=db_url)
        assert demo.returncode == 0, demo.stderr
    assert "a new generation of it" in demo.stdout
    assert count(db_url, "SELECT count(*) FROM campaigns") == 1
    assert count(db_url, "SELECT count(*) FROM generations") == 2

    listed = worldgen("campaigns", database_url=db_url)
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith("The Drowned Crown")]
    assert "succeeded (quick, procedural)" in line and " 4 " in line

    unconfirmed = worldgen("campaigns", "remove", "the drowned crown", database_url=db_url)
    assert_one_clean_error(unconfirmed, "needs --yes")
    assert count(db_url, "SELECT count(*) FROM campaigns") == 1

    removed = worldgen("campaigns", "remove", "The Drowned Crown", "--yes", database_url=db_url)
    assert removed.returncode == 0, removed.stderr
    assert "removed campaign 'The Drowned Crown'" in removed.stdout
    assert count(db_url, "SELECT count(*) FROM campaigns") == 0
    assert count(db_url, "SELECT count(*) FROM entities") == 0
    assert "no campaigns yet" in worldgen("campaigns", database_url=db_url).stdout


def test_an_ambiguous_campaign_name_lists_the_matching_ids(db_url):
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        ids = [insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN)) for _ in range(2)]

    for command in (["export", "The Drowned Crown"], ["status", "The Drowned Crown"]):
        result = worldgen(*command, database_url=db_url)
        assert_one_clean_error(result, "2 campaigns are named 'The Drowned Crown': give one of their ids")
        assert all(str(campaign_id) in result.stderr for campaign_id in ids)


def test_new_writes_a_commented_template_that_generate_accepts(db_url, tmp_path):
    path = tmp_path / "frozen.json"

    written = worldgen("new", str(path), database_url=db_url)
    again = worldgen("new", str(path), database_url=db_url)
    generated = worldgen("generate", "--campaign", str(path), "--profile", "quick", database_url=db_url)

    assert written.returncode == 0, written.stderr
    assert path.read_text().startswith("// A worldgen campaign.")
    assert_one_clean_error(again, "exists")
    assert generated.returncode == 0, generated.stderr
    assert "campaign 'The Frozen Marches'" in generated.stdout


# -- every command checks before it starts ---------------------------------------------------


def _arguments_of(command: str, parser: argparse.ArgumentParser, tmp_path: Path) -> list[str]:
    """The fewest arguments ``command`` parses with: every required one given a plausible value."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command_parser = sub.choices[command]
    args = [command]
    for action in command_parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            args.append(next(iter(action.choices)))
        elif not action.option_strings and action.nargs not in ("?", "*"):
            if action.choices:
                args.append(next(iter(action.choices)))
            elif action.type is uuid_argument:
                args.append(str(uuid.uuid4()))
            else:
                args.append("2A" if action.type is phase_argument else "The Drowned Crown")
        elif action.option_strings and action.required:
            args += [action.option_strings[-1], str(SAMPLE_CAMPAIGN)]
    if command == "import":
        args[1] = str(tmp_path / "world.json")
        (tmp_path / "world.json").write_text("{}")
    return args


# Every command but `asl`, which opens no database (needs_database=False) and rewrites the committed
# state machines (other tests read them meanwhile).
PARSER_COMMANDS = sorted(
    set(next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices) - {"asl"}
)


@pytest.mark.parametrize("command", PARSER_COMMANDS)
def test_a_mistyped_database_url_never_shows_its_password(command, tmp_path):
    """Every command: a database URL with a typo is refused before anything runs, and the password
    in it appears in no output (a command that opens no database runs and prints none of it)."""
    parser = build_parser()
    args = _arguments_of(command, parser, tmp_path)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    opens_database = sub.choices[command].get_default("needs_database") is not False

    result = worldgen(*args, database_url=MISTYPED_URL, home=tmp_path / "home", cwd=tmp_path)

    assert PASSWORD not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if opens_database:
        assert_one_clean_error(result, "is not a PostgreSQL URL")


def test_status_of_an_unknown_generation_or_campaign_exits_non_zero(db_url):
    unknown_id = worldgen("status", str(uuid.uuid4()), database_url=db_url)
    unknown_name = worldgen("audit", "No Such Campaign", database_url=db_url)
    nothing_yet = worldgen("status", database_url=db_url)

    assert_one_clean_error(unknown_id, "no campaign or generation has the id")
    assert_one_clean_error(unknown_name, "no campaign is named 'No Such Campaign'")
    assert_one_clean_error(nothing_yet, "no generations yet: run `worldgen demo`")


def test_status_audit_and_export_take_a_campaign_id_or_a_generation_id(db_url, tmp_path):
    demo = worldgen("demo", "--profile", "quick", database_url=db_url)
    assert demo.returncode == 0, demo.stderr
    with psycopg.connect(db_url) as conn:
        campaign_id, generation_id = conn.execute("SELECT campaign_id, id FROM generations").fetchone()  # type: ignore[misc]

    by_campaign = worldgen("status", str(campaign_id), database_url=db_url)
    audit = worldgen("audit", str(campaign_id), database_url=db_url)
    exported = worldgen("export", str(generation_id), "-o", str(tmp_path / "w.json"), database_url=db_url)

    assert f"generation {generation_id}" in by_campaign.stdout
    assert f"world of generation {generation_id}" in audit.stdout
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "w.json").read_text())["campaign"]["name"] == "The Drowned Crown"


def fail_on_a_missing_key(database_url: str) -> str:
    """The sample campaign's world started on --model anthropic with no key: its generation fails."""
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    environment = {"WORLDGEN_DATABASE_URL": database_url, "WORLDGEN_MODEL_PROVIDER": "anthropic"}
    with LocalRuntime(environment=environment) as runtime:
        status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id="demo-game-master")
        assert status == 200, body
        assert runtime.wait(body["execution_arn"], timeout=120)["status"] == "FAILED"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status, model_provider FROM generations").fetchone() == ("failed", "anthropic")
    return str(body["generation_id"])


def test_resume_with_another_model_finishes_a_world_that_failed_on_a_missing_key(settings_env):
    fail_on_a_missing_key(settings_env)

    resumed = worldgen("resume", "The Drowned Crown", "--model", "procedural", database_url=settings_env)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "execution SUCCEEDED" in resumed.stdout
    with psycopg.connect(settings_env) as conn:
        assert conn.execute("SELECT status, model_provider FROM generations").fetchone() == (
            "succeeded",
            "procedural",
        )
    again = worldgen("resume", "The Drowned Crown", database_url=settings_env)
    assert_one_clean_error(again, "only a failed one resumes")


def test_export_infers_the_format_from_the_file_name_and_refuses_what_it_cannot_write(db_url, tmp_path):
    demo = worldgen("demo", "--profile", "quick", database_url=db_url)
    assert demo.returncode == 0, demo.stderr

    html = worldgen("export", "The Drowned Crown", "-o", str(tmp_path / "world.html"), database_url=db_url)
    markdown_to_terminal = worldgen("export", "The Drowned Crown", "--format", "markdown", database_url=db_url)
    unknown_extension = worldgen("export", "The Drowned Crown", "-o", str(tmp_path / "w.txt"), database_url=db_url)

    assert html.returncode == 0, html.stderr
    assert (tmp_path / "world.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert_one_clean_error(markdown_to_terminal, "give it one, e.g. -o vault/")
    assert markdown_to_terminal.stdout == ""
    assert_one_clean_error(unknown_extension, "which format is")
    assert not (tmp_path / "w.txt").exists()


def test_a_re_export_into_a_vault_removes_the_notes_of_rows_gone_and_nothing_else(db_url, tmp_path):
    demo = worldgen("demo", database_url=db_url)
    assert demo.returncode == 0, demo.stderr
    vault = tmp_path / "vault"
    first = worldgen("export", "The Drowned Crown", "-o", str(vault), database_url=db_url)
    assert first.returncode == 0, first.stderr
    notes_before = {p.relative_to(vault) for p in vault.rglob("*.md")}
    (vault / "my own note.md").write_text("mine")
    with psycopg.connect(db_url) as conn:  # one row of a table that keeps others (its index note stays)
        table = next(t for t in ("taverns", "shops", "temples") if count(db_url, f"SELECT count(*) FROM {t}") > 1)
        (key,) = conn.execute(
            f"DELETE FROM {table} WHERE key = (SELECT min(key) FROM {table}) RETURNING key"
        ).fetchone()  # type: ignore[misc]

    second = worldgen("export", "The Drowned Crown", "-o", str(vault), database_url=db_url)

    assert second.returncode == 0, second.stderr
    notes_after = {p.relative_to(vault) for p in vault.rglob("*.md")}
    gone = notes_before - notes_after
    assert gone == {Path(table) / f"{key}.md"}, gone
    assert (vault / "my own note.md").read_text() == "mine"
    assert "removed 1 of rows now gone" in second.stderr


def test_a_misspelled_command_gets_the_nearest_one_and_help_puts_a_game_masters_commands_first(db_url):
    typo = worldgen("staus", database_url=db_url)
    help_text = worldgen("--help", database_url=db_url).stdout
    export_help = worldgen("export", "--help", database_url=db_url).stdout

    assert_one_clean_error(typo, "unknown command 'staus'; did you mean `worldgen status`?")
    gm, tools = help_text.index("a game master's commands:"), help_text.index("build and operations tools:")
    assert gm < tools
    for command in ("demo", "generate", "campaigns", "status", "audit", "export", "import", "resume", "discard"):
        assert gm < help_text.index(f"\n  {command} ") < tools, command
    assert help_text.index("\n  asl ") > tools
    assert "example:\n  worldgen export" in export_help


def test_an_unreachable_anthropic_api_is_said_within_a_few_tries_with_progress(db_url):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = worldgen(
        "demo",
        "--model",
        "anthropic",
        database_url=db_url,
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}",
    )

    assert result.returncode == 2
    assert f"error: cannot reach the Anthropic API at 127.0.0.1:{port}" in result.stderr
    assert "trying again (2/3)" in result.stderr and "trying again (3/3)" in result.stderr
    assert count(db_url, "SELECT count(*) FROM generations") == 0


def test_a_discarded_generation_is_no_longer_offered_for_resuming(settings_env):
    generation_id = fail_on_a_missing_key(settings_env)
    failed = worldgen("status", "The Drowned Crown", database_url=settings_env)
    assert f"[resumable: `worldgen resume {generation_id}`]" in failed.stdout

    discarded = worldgen("discard", "The Drowned Crown", database_url=settings_env)
    status = worldgen("status", generation_id, database_url=settings_env)
    resumed = worldgen("resume", generation_id, database_url=settings_env)

    assert discarded.stdout.strip() == f"generation {generation_id}: discarded"
    assert "status: discarded" in status.stdout and "resum" not in status.stdout
    assert_one_clean_error(resumed, "only a failed one resumes")


def remove_at_a_terminal(database_url: str, answer: str) -> subprocess.CompletedProcess[str]:
    """`worldgen campaigns remove` with a terminal on its input (a pseudo-terminal), answering ``answer``."""
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env.update(WORLDGEN_DATABASE_URL=database_url, WORLDGEN_HOME=os.environ["WORLDGEN_HOME"])
    try:
        os.write(primary, answer.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "worldgen.tools.cli", "campaigns", "remove", "The Drowned Crown"],
            stdin=secondary,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(primary)
        os.close(secondary)


def test_campaigns_remove_asks_at_a_terminal_and_removes_only_on_yes(db_url):
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))

    kept = remove_at_a_terminal(db_url, "n")
    assert kept.returncode == 1 and "kept it" in kept.stdout
    assert count(db_url, "SELECT count(*) FROM campaigns") == 1

    removed = remove_at_a_terminal(db_url, "y")
    assert removed.returncode == 0, removed.stderr
    assert "removed campaign 'The Drowned Crown'" in removed.stdout
    assert count(db_url, "SELECT count(*) FROM campaigns") == 0
