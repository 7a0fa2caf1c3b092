"""The phase registry's graph helpers: ancestors, descendants, get_phase and the derived timeouts."""

from __future__ import annotations

import pytest

from worldgen.phases import PHASES, ancestors, descendants, get_phase


def test_ancestors_are_the_transitive_closure_of_depends_on() -> None:
    assert ancestors("1A") == frozenset()
    assert ancestors("1C") == {"1A", "1B"}
    # 2C declares only 2B; everything 2B needs comes with it.
    assert ancestors("2C") == {"1A", "1B", "1C", "2A", "2B"}
    assert ancestors("3C") == {"1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B"}


def test_descendants_of_2b_are_2b_and_every_phase_downstream_in_registry_order() -> None:
    assert descendants("2B") == ["2B", "2C", "3A", "3B", "3C"]


def test_descendants_of_a_leaf_is_only_itself() -> None:
    assert descendants("3C") == ["3C"]


def test_descendants_of_the_root_is_every_phase() -> None:
    assert descendants("1A") == [p.id for p in PHASES]


def test_get_phase_accepts_lowercase_ids() -> None:
    assert get_phase("2b").id == "2B"


def test_get_phase_error_lists_every_valid_phase() -> None:
    with pytest.raises(KeyError) as raised:
        get_phase("4Z")
    message = str(raised.value)
    assert "'4Z'" in message
    assert "valid phases: 1A, 1B, 1C, 2A, 2B, 2C, 3A, 3B, 3C" in message


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.id)
def test_state_timeout_outlasts_the_lambda_timeout(phase) -> None:
    # A Step Functions retry must never start while the timed-out attempt may still be running.
    assert phase.state_timeout_seconds > phase.lambda_timeout_seconds
