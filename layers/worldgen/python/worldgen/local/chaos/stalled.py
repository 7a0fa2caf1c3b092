"""A worldgen process whose model stalls in the middle of a phase's round, for `make chaos`
(``kill_mid_round``), which runs it with ``python -m`` and kills it there.

It generates the world of an existing campaign on the local runtime with the procedural model,
except in ``--phase``: the first ``--answer`` parts of the round answer, every later part streams
forever. Like a provider's bill, ``--bill`` gets a JSON line for every call that finished
(``paid``), for every part that stalls (``streaming``), and for the generation it started.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from worldgen.handlers.phase import make_phase_handler
from worldgen.local.chaos.harness import part_of
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES


@dataclass(frozen=True)
class BilledCall:
    event: str  # paid, streaming, started
    phase: str = ""
    part: str = ""
    generation_id: str = ""


def read_bill(path: Path) -> list[BilledCall]:
    """The lines of a bill so far (the last one may be half written: it is left for the next read)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    calls = []
    for line in lines:
        try:
            calls.append(BilledCall(**json.loads(line)))
        except ValueError:
            break
    return calls


class StallingModel:
    """The procedural model, except that in ``phase`` only the first ``answering`` parts answer."""

    provider = "procedural"

    def __init__(self, phase: str, answering: int, bill: Path) -> None:
        self.inner = ProceduralModel()
        self.phase, self.answering = phase, answering
        self.bill = bill.open("a", buffering=1)  # a line reaches the file as it is written
        self.lock = threading.Lock()
        self.parts = 0

    def write(self, call: BilledCall) -> None:
        with self.lock:
            self.bill.write(json.dumps(call.__dict__) + "\n")

    def call(self, request: ModelRequest) -> ModelResponse:
        part = part_of(request)
        if request.phase.id == self.phase and part != "outline":
            with self.lock:
                self.parts += 1
                stalls = self.parts > self.answering
            if stalls:
                self.write(BilledCall("streaming", request.phase.id, part))
                threading.Event().wait()  # a stream that never ends: the process is killed in it
        response = self.inner.call(request)
        self.write(BilledCall("paid", request.phase.id, part))
        return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaign-id", required=True)
    parser.add_argument("--phase", required=True)
    parser.add_argument("--answer", type=int, required=True)
    parser.add_argument("--bill", type=Path, required=True)
    args = parser.parse_args(argv)
    model = StallingModel(args.phase, args.answer, args.bill)
    handler = make_phase_handler(lambda: model)
    # the database and the log level come in the process's environment (WORLDGEN_DATABASE_URL)
    with LocalRuntime({phase.function_id: handler for phase in PHASES}) as runtime:
        status, body = runtime.action("generateWorld", {"campaign_id": args.campaign_id}, role="admin")
        if status != 200:
            print(f"generation refused: {body}", file=sys.stderr)
            return 1
        model.write(BilledCall("started", generation_id=str(body["generation_id"])))
        runtime.wait(body["execution_arn"], timeout=3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
