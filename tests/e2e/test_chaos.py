"""The short version of `make chaos`: one scenario of each kind, and not one invariant violated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worldgen.local.chaos import Chaos, Outcome, summary_table

pytestmark = pytest.mark.xdist_group("e2e")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    root = Path(tmp_path_factory.mktemp("chaos"))
    os.chmod(root, 0o755)  # pgserver runs PostgreSQL as its own user when the tests run as root
    chaos = Chaos(root, seed=3)
    try:
        found = chaos.run(len(Chaos.SCENARIOS))
    finally:
        chaos.close()
    print(summary_table(found))
    return found


def test_chaos_scenarios_leave_no_invariant_violated(outcomes: list[Outcome]) -> None:
    table = summary_table(outcomes)
    assert {o.scenario for o in outcomes} == set(Chaos.SCENARIOS)
    assert all(o.faults for o in outcomes), "every scenario injects its fault"
    assert [v for o in outcomes for v in o.violations] == [], table
    assert sum(o.stuck for o in outcomes) == 0
    assert sum(o.rows_lost for o in outcomes) == 0


def test_every_call_a_process_killed_mid_round_was_billed_for_is_in_the_ledger(outcomes: list[Outcome]) -> None:
    killed = [o for o in outcomes if o.scenario == "kill_mid_round"]
    assert killed and all(o.calls_elsewhere for o in killed), "the killed process paid for calls"
    assert [o.calls_not_in_ledger for o in killed] == [0] * len(killed), summary_table(outcomes)
