"""The registry's budgets fit: every call can finish inside its deadline, every Lambda outlives its
calls and its save, every state outlives its Lambda. Checked for every phase."""

from __future__ import annotations

import pytest

from worldgen import phases
from worldgen.model.claude import max_output_tokens
from worldgen.phases import ALL_PHASES, Phase
from worldgen.settings import Settings


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile
def test_max_tokens_holds_the_expected_answer_with_headroom(phase: Phase) -> None:
    assert phase.max_tokens >= phase.expected_output_tokens * phases.MAX_TOKENS_HEADROOM
    assert phase.max_tokens <= max_output_tokens(phase.model)


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile
def test_a_call_reaches_max_tokens_inside_its_deadline_at_the_assumed_rate(phase: Phase) -> None:
    streaming = phase.max_tokens / phases.ASSUMED_OUTPUT_TOKENS_PER_SECOND
    assert phase.stream_deadline_seconds >= streaming + phases.FIRST_TOKEN_ALLOWANCE_SECONDS


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile
def test_the_lambda_outlives_every_round_at_its_deadline_plus_the_save(phase: Phase) -> None:
    rounds = phase.repair_rounds + 1
    calls = phase.stream_deadline_seconds * rounds  # the parts of a round side by side
    outline = phases.stream_deadline_seconds(phases.OUTLINE_MAX_TOKENS) * rounds if phase.outline else 0
    primer = phases.stream_deadline_seconds(1) if phase.primes_cache else 0
    assert phase.lambda_timeout_seconds >= calls + outline + primer + phases.SAVE_SECONDS
    assert phase.lambda_timeout_seconds <= phases.LAMBDA_MAX_SECONDS


@pytest.mark.parametrize("phase", [p for p in ALL_PHASES if p.parts], ids=lambda p: p.id)
def test_every_wide_phase_keeps_its_repair_rounds_and_the_outline_fits_its_budget(phase: Phase) -> None:
    assert phase.repair_rounds == phases.REPAIR_ROUNDS  # in parts, short calls leave room for every round
    assert phase.max_tokens <= 6000  # the largest call the customer wants
    generous_outline_tokens = 60 * 12  # ~60 keys of about 12 tokens each
    assert generous_outline_tokens * phases.MAX_TOKENS_HEADROOM <= phases.OUTLINE_MAX_TOKENS


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile
def test_the_state_outlives_its_lambda(phase: Phase) -> None:
    assert phase.state_timeout_seconds > phase.lambda_timeout_seconds


def test_repair_rounds_never_exceed_the_configured_default() -> None:
    assert all(p.repair_rounds <= Settings().repair_rounds for p in ALL_PHASES)


def test_a_longer_answer_gets_a_longer_deadline_and_fewer_rounds_not_a_longer_lambda() -> None:
    short = Phase("X", "x", ("t",), (), "x", expected_output_tokens=4000)
    long = Phase("Y", "y", ("t",), (), "y", expected_output_tokens=30000)
    assert long.stream_deadline_seconds > short.stream_deadline_seconds
    assert long.repair_rounds < short.repair_rounds
    assert long.lambda_timeout_seconds <= phases.LAMBDA_MAX_SECONDS
