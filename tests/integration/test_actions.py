"""The Hasura action endpoint: its contract, its refusals, and resume / regenerate / cancel."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from worldgen import state
from worldgen.functions_registry import START_FUNCTION
from worldgen.local.aws_objects import function_url_event
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime
from worldgen.phases import PHASES, get_phase
from worldgen.pipeline import run_phase

OWNER = "demo-game-master"


@pytest.fixture
def campaign_id(settings_env: str, conn: Any) -> uuid.UUID:
    return insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))


@pytest.fixture
def runtime(settings_env: str):
    with LocalRuntime(environment={"WORLDGEN_DATABASE_URL": settings_env}) as local:
        yield local


def post(runtime: LocalRuntime, body: str, secret: str | None = "default") -> tuple[int, dict[str, Any]]:
    event = function_url_event(body, runtime.action_secret if secret == "default" else secret)
    response = runtime.invoke(START_FUNCTION, event)
    return response["statusCode"], json.loads(response["body"])


def action_body(name: str, data: dict[str, Any], user: str | None = OWNER, role: str = "user") -> str:
    session = {"x-hasura-role": role, **({"x-hasura-user-id": user} if user else {})}
    return json.dumps({"action": {"name": name}, "input": data, "session_variables": session, "request_query": ""})


@pytest.mark.parametrize(
    ("label", "body", "secret", "status", "code"),
    [
        ("not JSON", "{not json", "default", 400, "invalid-payload"),
        ("no campaign_id", action_body("generateWorld", {}), "default", 400, "validation-failed"),
        ("not a UUID", action_body("generateWorld", {"campaign_id": "abc"}), "default", 400, "validation-failed"),
        ("wrong type", action_body("generateWorld", {"campaign_id": 42}), "default", 400, "validation-failed"),
        ("unknown campaign", action_body("generateWorld", {"campaign_id": str(uuid.uuid4())}), "default", 404,
         "campaign-not-found"),
        ("missing secret", action_body("generateWorld", {"campaign_id": "CAMPAIGN"}), None, 401, "unauthorized"),
        ("wrong secret", action_body("generateWorld", {"campaign_id": "CAMPAIGN"}), "guess", 401, "unauthorized"),
        ("unknown action", action_body("destroyWorld", {"campaign_id": "CAMPAIGN"}), "default", 400, "unknown-action"),
        ("no user id", action_body("generateWorld", {"campaign_id": "CAMPAIGN"}, user=None), "default", 403,
         "forbidden"),
        ("10 MB body", "x" * (10 * 1024 * 1024), "default", 413, "payload-too-large"),
        ("missing action", json.dumps({"input": {}}), "default", 400, "invalid-payload"),
    ],
)  # fmt: skip
def test_bad_action_requests_get_a_4xx_in_hasura_error_shape_and_write_nothing(
    runtime, campaign_id, settings_env, label, body, secret, status, code
):
    answer_status, answer = post(runtime, body.replace("CAMPAIGN", str(campaign_id)), secret)

    assert (answer_status, answer["extensions"]["code"]) == (status, code), label
    assert 400 <= answer_status < 500
    assert isinstance(answer["message"], str) and answer["message"]
    with psycopg.connect(settings_env) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (0,)


def test_another_users_campaign_looks_like_a_missing_one(runtime, campaign_id):
    status, answer = post(runtime, action_body("generateWorld", {"campaign_id": str(campaign_id)}, user="intruder"))
    assert status == 404
    assert answer["extensions"]["code"] == "campaign-not-found"


def test_generate_world_answers_at_once_with_the_generation_and_execution(runtime, campaign_id, settings_env):
    status, answer = post(runtime, action_body("generateWorld", {"campaign_id": str(campaign_id)}))
    assert status == 200
    assert set(answer) == {"generation_id", "execution_arn", "status"}
    assert answer["execution_arn"].endswith(answer["generation_id"])
    assert runtime.wait(answer["execution_arn"])["status"] == "SUCCEEDED"


def test_resume_refuses_running_and_succeeded_generations(runtime, campaign_id):
    status, started = post(runtime, action_body("generateWorld", {"campaign_id": str(campaign_id)}))
    runtime.wait(started["execution_arn"])
    status, answer = post(runtime, action_body("resumeGeneration", {"generation_id": started["generation_id"]}))
    assert status == 409
    assert answer["extensions"]["code"] == "not-resumable"


def test_cancel_refuses_a_finished_generation_and_stops_a_running_one(runtime, campaign_id, settings_env):
    status, started = post(runtime, action_body("generateWorld", {"campaign_id": str(campaign_id)}))
    runtime.wait(started["execution_arn"])
    status, answer = post(runtime, action_body("cancelGeneration", {"generation_id": started["generation_id"]}))
    assert (status, answer["extensions"]["code"]) == (409, "not-cancellable")

    gate, entered = threading.Event(), threading.Event()
    from worldgen.handlers.phase import make_phase_handler

    real = make_phase_handler()

    def slow(event: dict[str, Any], context: Any) -> Any:
        entered.set()
        gate.wait(10)
        return real(event, context)

    runtime.overrides[get_phase("1A").function_id] = slow
    status, second = post(runtime, action_body("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "1a"}))
    assert status == 200
    assert entered.wait(10)  # the execution is inside phase 1A
    status, answer = post(runtime, action_body("cancelGeneration", {"generation_id": second["generation_id"]}))
    gate.set()
    assert (status, answer["status"]) == (200, "cancelled")
    execution = runtime.wait(second["execution_arn"])
    # AWS aborts at once; moto lets the in-flight task finish, and the phase then refuses to run.
    assert execution["status"] == "ABORTED" or execution["error"] == "GenerationCancelled"
    with psycopg.connect(settings_env) as conn:
        row = conn.execute("SELECT status FROM generations WHERE id = %s", (second["generation_id"],)).fetchone()
    assert row == ("cancelled",)


def test_regenerate_refuses_an_unknown_phase_and_lists_the_valid_ones(runtime, campaign_id):
    status, answer = post(runtime, action_body("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "9Z"}))
    assert (status, answer["extensions"]["code"]) == (400, "unknown-phase")
    assert all(p.id in answer["message"] for p in PHASES)


def test_regenerate_keeps_upstream_rows_and_replaces_the_phase_and_everything_downstream(
    runtime, campaign_id, settings_env
):
    status, first = post(runtime, action_body("generateWorld", {"campaign_id": str(campaign_id)}))
    runtime.wait(first["execution_arn"])
    with psycopg.connect(settings_env) as conn:
        before: dict[str, Any] = dict(conn.execute("SELECT key, id FROM entities").fetchall())
        old_locations = {r[0] for r in conn.execute("SELECT id FROM locations").fetchall()}

    status, second = post(runtime, action_body("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "2B"}))
    assert status == 200
    assert runtime.wait(second["execution_arn"])["status"] == "SUCCEEDED"
    with psycopg.connect(settings_env) as conn:
        assert dict(conn.execute("SELECT key, id FROM entities").fetchall()) == before  # 2A kept
        new_locations = {r[0] for r in conn.execute("SELECT id FROM locations").fetchall()}
        assert new_locations and not new_locations & old_locations
        owners = conn.execute("SELECT DISTINCT generation_id::text FROM shops").fetchall()
        assert owners == [(second["generation_id"],)]
        calls = conn.execute(
            "SELECT phase FROM model_calls WHERE generation_id = %s ORDER BY phase", (second["generation_id"],)
        ).fetchall()
        rerun = ["2B", "2C", "3A", "3B", "3C"]  # the phase and everything downstream, nothing upstream
        assert [c[0] for c in calls] == [p for p in rerun for _ in range(get_phase(p).planned_calls)]


def test_replacing_locations_applies_the_foreign_keys_on_delete_rules_downstream(conn, campaign_id):
    """What docs/architecture.md promises: NOT NULL references cascade, nullable ones are set to NULL."""
    first = state.create_generation(conn, campaign_id, provider="procedural")
    for phase in PHASES:
        run_phase(conn, first, phase.id)
    conn.execute("UPDATE generations SET status = 'succeeded' WHERE id = %s", (first,))
    assert conn.execute("SELECT count(*) AS n FROM shops").fetchone()["n"] > 0
    assert conn.execute("SELECT count(*) AS n FROM items WHERE origin_location_id IS NOT NULL").fetchone()["n"] > 0

    again = state.create_generation(
        conn, campaign_id, provider="procedural", options={"seed": 99}, phases=["2B", "2C", "3A", "3B", "3C"]
    )
    run_phase(conn, again, "2B")  # only 2B has committed its new rows so far

    assert conn.execute("SELECT count(*) AS n FROM shops").fetchone()["n"] == 0  # location_id NOT NULL: cascade
    assert conn.execute("SELECT count(*) AS n FROM items").fetchone()["n"] > 0  # items stay...
    assert conn.execute("SELECT count(*) AS n FROM items WHERE origin_location_id IS NOT NULL").fetchone()["n"] == 0
    assert conn.execute("SELECT count(*) AS n FROM entities").fetchone()["n"] > 0  # upstream untouched


def test_worldgen_serve_speaks_the_action_contract_over_http(runtime, campaign_id):
    """The real ActionServer of `worldgen serve` (not a copy) on an ephemeral port."""
    from worldgen.local.server import ActionServer

    server = ActionServer(("127.0.0.1", 0), runtime)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    body = action_body("generateWorld", {"campaign_id": str(campaign_id)}).encode()
    try:
        wrong = urllib.request.Request(url, data=body, headers={"x-worldgen-action-secret": "wrong"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, timeout=10)
        assert refused.value.code == 401
        assert json.loads(refused.value.read())["extensions"]["code"] == "unauthorized"

        right = urllib.request.Request(
            url, data=body, headers={"x-worldgen-action-secret": runtime.action_secret}, method="POST"
        )
        with urllib.request.urlopen(right, timeout=30) as answer:
            started = json.loads(answer.read())
        assert answer.status == 200 and started["status"] == "running"
        runtime.wait(started["execution_arn"])
    finally:
        server.shutdown()
        server.server_close()


def test_after_a_rotation_the_new_and_the_previous_secret_are_accepted_without_a_restart(
    settings_env, campaign_id, monkeypatch
):
    import boto3

    with LocalRuntime(environment={"WORLDGEN_DATABASE_URL": settings_env}) as local:
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="worldgen/action", SecretString="first-secret")["ARN"]
        monkeypatch.delenv("WORLDGEN_ACTION_SECRET")
        monkeypatch.setenv("WORLDGEN_ACTION_SECRET_ARN", arn)
        monkeypatch.setenv("POWERTOOLS_PARAMETERS_MAX_AGE", "0")
        from worldgen.settings import get_settings

        get_settings.cache_clear()
        body = action_body("generateWorld", {"campaign_id": str(uuid.uuid4())})
        assert post(local, body, "first-secret")[0] == 404  # past the secret check: the campaign is unknown

        client.put_secret_value(SecretId=arn, SecretString="second-secret")  # rotation: first is AWSPREVIOUS
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        from worldgen.handlers import actions

        actions._previous_versions.cache_clear()
        assert post(local, body, "second-secret")[0] == 404
        assert post(local, body, "first-secret")[0] == 404
        assert post(local, body, "third-secret")[0] == 401


def test_a_bug_in_an_action_answers_hasuras_error_shape_with_the_request_id(runtime, campaign_id, monkeypatch):
    from worldgen.handlers import actions

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(actions.ACTIONS, "generateWorld", replace(actions.ACTIONS["generateWorld"], run=broken))
    status, answer = post(runtime, action_body("generateWorld", {"campaign_id": str(campaign_id)}))

    assert status == 500
    assert answer["extensions"]["code"] == "internal-error"
    assert "request " in answer["message"] and "a bug" not in answer["message"]


def test_cancel_is_kept_when_stopping_the_execution_fails(runtime, campaign_id, settings_env, monkeypatch):
    from worldgen import orchestrator

    generation_id = state.create_generation(
        psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row),
        campaign_id,
        provider="procedural",
    )
    with psycopg.connect(settings_env, autocommit=True) as conn:
        conn.execute(
            "UPDATE generations SET status = 'running', execution_arn = 'arn:x' WHERE id = %s", (str(generation_id),)
        )

    class FailingStepFunctions:
        def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
            return {"status": "RUNNING"}

        def stop_execution(self, **kwargs: Any) -> None:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url="https://states")

    with monkeypatch.context() as patched:
        patched.setattr(orchestrator, "sfn_client", lambda: FailingStepFunctions())
        status, answer = post(runtime, action_body("cancelGeneration", {"generation_id": str(generation_id)}))

    assert status == 200, answer
    with psycopg.connect(settings_env) as conn:
        assert conn.execute("SELECT status FROM generations WHERE id = %s", (str(generation_id),)).fetchone() == (
            "cancelled",
        )
