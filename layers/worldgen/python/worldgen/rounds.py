"""THE round loop: call -> record -> check -> repair, for every call a model is asked to make.

A phase is a list of calls: its parts (a phase in one call is a phase of one part), after an outline
call when it has one; a reroll is one call. Each round sends the pending calls side by side, writes
each call to the ledger when it ends, checks each answer as it arrives, and when every answer is
valid, finishes (the checks across answers and the save). Problems (``Problem``, data) go back to
the calls that wrote them as a repair turn; after the last repair round the caller gives up (a
partial save, or InvalidModelOutput). What differs between an outline, the parts and a reroll is
a ``Calls`` object, not a copy of the loop.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Generic, TypeVar

from worldgen.db import validation as rules
from worldgen.db.problems import Problem, listing
from worldgen.errors import InvalidModelOutput
from worldgen.ledger import Ledger
from worldgen.model.base import ModelRequest, ModelResponse, WorldModel
from worldgen.phases import SAVE_SECONDS, Phase
from worldgen.prompts import prompt_text
from worldgen.schema.spec import TableSpec

T = TypeVar("T")


class Calls(Generic[T]):
    """What a round loop is told of the calls it runs (``run_rounds``)."""

    def label(self, index: int) -> str | None:
        """The call as the ledger names it (``model_calls.part``); None for a phase's one call."""
        return None

    def prepare(self, request: ModelRequest, round_number: int) -> ModelRequest:
        """The request as this round sends it."""
        return dataclasses.replace(request, round=round_number)

    def check(self, index: int, response: ModelResponse) -> list[Problem]:
        """The problems of one answer, as it arrives (a valid one is kept, and may be recorded)."""
        raise NotImplementedError

    def finish(self, round_number: int) -> T:
        """Every answer is valid: the checks across them, then the save. InvalidModelOutput sends its
        problems back to the calls that wrote them (``reopen``)."""
        raise NotImplementedError

    def reopen(self, problems: Sequence[Problem]) -> dict[int, list[Problem]]:
        """The calls ``problems`` send back to the model (their answers forgotten), with theirs."""
        return {0: list(problems)}

    def before_round(self, round_number: int, problems: dict[int, list[Problem]]) -> None:
        """Before a repair round: raise to stop (no time left, the attempt superseded or cancelled)."""

    def give_up(self, problems: dict[int, list[Problem]]) -> T:
        """After the last repair round: what is saved anyway, or InvalidModelOutput."""
        raise NotImplementedError


def run_rounds(
    model: WorldModel,
    ledger: Ledger,
    requests: dict[int, ModelRequest],
    rounds: int,
    calls: Calls[T],
    *,
    pending: Sequence[int] | None = None,
    in_flight: int = 1,
    name: str = "calls",
) -> T:
    """``requests`` (``pending``: those still to send, all by default) through the first round and
    at most ``rounds`` repair rounds; see the module's doc."""
    requests = dict(requests)
    pending = list(requests if pending is None else pending)
    last: dict[int, ModelResponse] = {}  # each call's latest answer, for its repair turn
    for round_number in range(1, rounds + 2):
        responses, failure, problems = _round(model, ledger, requests, pending, round_number, calls, in_flight, name)
        last.update(responses)
        if failure is not None:
            raise failure
        if not problems:
            try:
                return calls.finish(round_number)
            except InvalidModelOutput as exc:  # a check across answers, or a rule only PostgreSQL knows
                problems = calls.reopen(exc.problems or [Problem("", exc.message)])
        if round_number > rounds:
            return calls.give_up(problems)
        calls.before_round(round_number + 1, problems)
        for index, found in problems.items():
            response = last.get(index)  # this round's answer, or the earlier one a later check refused
            if response is not None:
                repaired = requests[index].messages + repair_messages(response, found)
                requests[index] = dataclasses.replace(requests[index], messages=repaired)
        pending = sorted(problems)
    raise AssertionError("unreachable")


def _round(
    model: WorldModel,
    ledger: Ledger,
    requests: dict[int, ModelRequest],
    pending: list[int],
    round_number: int,
    calls: Calls[Any],
    in_flight: int,
    name: str,
) -> tuple[dict[int, ModelResponse], BaseException | None, dict[int, list[Problem]]]:
    """The pending calls, side by side (at most ``in_flight`` at once): each reaches the ledger when
    it ends and its answer is checked as it arrives, even when another failed or is still in flight.
    Returns the answers, the first failure and the problems of each invalid answer."""
    began = time.perf_counter()
    responses: dict[int, ModelResponse] = {}
    problems: dict[int, list[Problem]] = {}
    failure: BaseException | None = None

    def ended(index: int, call: Callable[[], ModelResponse]) -> None:
        nonlocal failure
        try:
            response = call()
        except Exception as exc:
            ledger.add_failure(exc, model, requests[index].phase, calls.label(index))
            failure = failure or exc
            return
        responses[index] = response
        ledger.add(dataclasses.replace(response.usage, part=calls.label(index)))
        found = calls.check(index, response)
        if found:
            problems[index] = found

    try:
        if len(pending) == 1:
            only = pending[0]
            ended(only, lambda: model.call(calls.prepare(requests[only], round_number)))
        else:
            with ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix=name) as pool:
                futures = {pool.submit(model.call, calls.prepare(requests[i], round_number)): i for i in pending}
                for future in as_completed(futures):
                    ended(futures[future], future.result)
    finally:
        ledger.model_seconds += time.perf_counter() - began
    return responses, failure, problems


def repair_messages(
    response: ModelResponse, problems: Sequence[Problem | str], problem_count: int | None = None
) -> list[dict[str, Any]]:
    """The rejected answer, then a user turn listing the problems (a tool_result for a tool call),
    bounded (MAX_PROBLEMS_LISTED, each clipped) however many and however large: 10,000 bad rows
    must not make a megabyte prompt."""
    count = len(problems) if problem_count is None else problem_count
    if response.tool_input is None and response.problem:
        problems, count = [response.problem], 1
    listed = "\n".join(f"- {p}" for p in listing(problems, count))
    if response.request_mode == "structured_output":
        answer = [b for b in response.assistant_content if b.get("type") != "text" or b.get("text")]
        return [
            {"role": "assistant", "content": answer or [{"type": "text", "text": "(no answer)"}]},
            {"role": "user", "content": prompt_text("repair_json.txt").format(problems=listed)},
        ]
    text = prompt_text("repair_tool.txt").format(problems=listed)
    if response.tool_use_id is None:
        return [
            {"role": "assistant", "content": response.assistant_content or [{"type": "text", "text": "(no answer)"}]},
            {"role": "user", "content": prompt_text("repair_no_tool.txt").format(rejected=text)},
        ]
    return [
        {"role": "assistant", "content": response.assistant_content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": response.tool_use_id, "is_error": True, "content": text}
            ],
        },
    ]


def at_the_door(phase: Phase, specs: dict[str, TableSpec], response: ModelResponse) -> tuple[Any, list[Problem]]:
    """An answer as every check sees it: its keys and key references slugged (``Iron_Marches`` is
    ``iron-marches``), with the keys that collide once slugged; None and why when there is none."""
    if response.tool_input is None:
        return None, [Problem("", response.problem or "the answer did not call the tool")]
    return rules.slug_keys(phase, specs, response.tool_input)


def outline_at_the_door(response: ModelResponse) -> tuple[Any, list[Problem]]:
    """An outline answer with its keys and the player characters it names slugged."""
    if response.tool_input is None:
        return None, [Problem("", response.problem or "the answer did not call the tool")]
    slugged: dict[str, Any] = {}
    for table, rows in response.tool_input.items():
        if not isinstance(rows, list):
            slugged[table] = rows
            continue
        slugged[table] = [
            {p: _slugged(v) if p in ("key", "player_character_key") else v for p, v in row.items()}
            if isinstance(row, dict)
            else row
            for row in rows
        ]
    return slugged, []


def _slugged(value: Any) -> Any:
    return rules.slug(value) if isinstance(value, str) and rules.slug(value) else value


def check_time_for_a_round(
    phase: Phase, round_number: int, remaining_ms: Callable[[], int] | None, problems: dict[int, list[Problem]]
) -> None:
    """Stop cleanly (a permanent error, recorded) rather than be killed by the Lambda timeout mid-save."""
    if remaining_ms is None:
        return
    left = remaining_ms() / 1000
    needed = phase.stream_deadline_seconds + SAVE_SECONDS
    if left < needed:
        found = [p for listed in problems.values() for p in listed]
        raise InvalidModelOutput(
            f"phase {phase.id}: no time left for repair round {round_number - 1} ({left:.0f} s left in the"
            f" Lambda, a round and the save need {needed} s): " + "; ".join(str(p) for p in found[:10]),
            problems=found,
        )
