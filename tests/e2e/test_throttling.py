"""moto executes the committed ASL's throttling retrier: a rate limit outlasting the general retries waits."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ScriptedModel, fast_retry_definition, start_and_wait
from worldgen.errors import ModelRateLimited
from worldgen.phases import get_phase
from worldgen.tools.statemachine import RETRY_POLICY, THROTTLING_RETRY_POLICY

pytestmark = pytest.mark.xdist_group("e2e")


def test_rate_limit_outlasting_the_general_retries_is_waited_out_by_the_throttling_retrier(
    make_runtime, settings_env, campaign_id
):
    # More 429s in a row than the general retrier allows, fewer than the throttling retrier allows.
    throttled = int(RETRY_POLICY["MaxAttempts"]) + 2
    assert throttled < THROTTLING_RETRY_POLICY["MaxAttempts"]
    model = ScriptedModel({"1B": [ModelRateLimited("429 rate limited")] * throttled})
    runtime = make_runtime(model, definition=fast_retry_definition())
    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    assert model.calls.count("1B") == throttled + get_phase("1B").planned_calls  # then the outline and parts
