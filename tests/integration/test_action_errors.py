"""What a Hasura client is told when the database is down: that, and nothing of the server's insides."""

from __future__ import annotations

import json

from worldgen.functions_registry import START_FUNCTION
from worldgen.local.aws_objects import function_url_event
from worldgen.local.runtime import LocalRuntime


def test_a_database_error_is_answered_as_unavailable_without_host_port_or_libpq_text(settings_env, monkeypatch):
    unreachable = "postgresql://worldgen:hunter2@127.0.0.1:1/worldgen"
    monkeypatch.setenv("WORLDGEN_DATABASE_URL", unreachable)
    with LocalRuntime(environment={"WORLDGEN_DATABASE_URL": unreachable}) as runtime:
        body = json.dumps(
            {
                "action": {"name": "generateWorld"},
                "input": {"campaign_id": "0b9e5c1e-0000-4000-8000-000000000000"},
                "session_variables": {"x-hasura-role": "user", "x-hasura-user-id": "someone"},
            }
        )
        response = runtime.invoke(START_FUNCTION, function_url_event(body, runtime.action_secret))

    answer = json.loads(response["body"])
    assert response["statusCode"] == 409
    assert answer == {
        "message": "the database is unavailable, try again",
        "extensions": {"code": "database-unavailable"},
    }
    for inside in ("127.0.0.1", "port", "hunter2", "connection", "refused"):
        assert inside not in response["body"]
