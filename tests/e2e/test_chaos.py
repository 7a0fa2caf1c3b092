"""The short version of `make chaos`: one scenario of each kind, and not one invariant violated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worldgen.local.chaos import Chaos, summary_table

pytestmark = pytest.mark.xdist_group("e2e")


def test_chaos_scenarios_leave_no_invariant_violated(tmp_path_factory, capsys):
    root = Path(tmp_path_factory.mktemp("chaos"))
    os.chmod(root, 0o755)  # pgserver runs PostgreSQL as its own user when the tests run as root
    chaos = Chaos(root, seed=3)
    try:
        outcomes = chaos.run(len(Chaos.SCENARIOS))
    finally:
        chaos.close()
    table = summary_table(outcomes)
    print(table)
    assert {o.scenario for o in outcomes} == set(Chaos.SCENARIOS)
    assert all(o.faults for o in outcomes), "every scenario injects its fault"
    assert [v for o in outcomes for v in o.violations] == [], table
    assert sum(o.stuck for o in outcomes) == 0
    assert sum(o.rows_lost for o in outcomes) == 0
