"""A phase as a list of calls: its parts (``Phase.parts``; a phase in one call is a phase of one
part), after an outline call (``Phase.outline``) that fixes every row's key, each run by THE round
loop (``worldgen.rounds``).

Parts run side by side, each repaired alone; their answers are checked as they arrive (each against
its own tables and the keys dealt to it), recorded in ``phase_runs.parts`` for a retried attempt
(which reuses the outline and the part answers written against the same world), and merged into one
phase answer that is saved in ONE transaction. Calls side by side cannot see each other's rows, so
the outline's keys and the NPCs' room for new roles are dealt out between them first.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from worldgen import cost_cap, prompts, state
from worldgen import outline as outlines
from worldgen.db.problems import Problem
from worldgen.db.save import reference_keys
from worldgen.db.validation import invalid_output, validate_phase_input
from worldgen.errors import InvalidModelOutput, WorldgenError
from worldgen.ledger import Attempt, Ledger
from worldgen.model.base import ModelRequest, ModelResponse, WorldModel
from worldgen.model.families import find_family
from worldgen.observability import logger
from worldgen.phases import Phase, row_target
from worldgen.prompts import prompt_text
from worldgen.roles import ROLE_TABLES, role_room
from worldgen.rounds import Calls, at_the_door, check_time_for_a_round, outline_at_the_door, run_rounds
from worldgen.schema.spec import TableSpec
from worldgen.settings import get_settings


class Saver(Protocol):
    """How a phase's merged answer is judged across parts and saved (``pipeline``)."""

    def continuity(self, answer: dict[str, Any]) -> list[Problem]: ...
    def save(self, answer: dict[str, Any]) -> Any: ...
    def save_partially(self, answer: Any, unwritten: list[dict[str, str]]) -> Any | None: ...


@dataclass
class PhaseRun:
    """What every call of one attempt of a phase shares."""

    conn: psycopg.Connection[Any]
    attempt: Attempt
    ledger: Ledger
    specs: dict[str, TableSpec]
    repair_rounds: int
    saver: Saver

    @property
    def phase(self) -> Phase:
        return self.attempt.phase

    @property
    def model(self) -> WorldModel:
        assert self.attempt.model is not None, "the phase resolves its model before its calls"
        return self.attempt.model

    def before_round(self, round_number: int, problems: dict[int, list[Problem]]) -> None:
        """A repair round starts only if it fits the Lambda's time and the attempt may still commit
        (a cancelled phase stops paying for calls)."""
        check_time_for_a_round(self.phase, round_number, self.attempt.remaining_ms, problems)
        state.check_attempt_current(self.conn, self.attempt.generation_id, self.phase, self.attempt.number)


def run_parts(run: PhaseRun, request: ModelRequest) -> Any:
    """The phase's calls through the round loop, then its save; see the module's doc."""
    phase = run.phase
    calls = PhaseCalls(run, request.context.fingerprint)
    if len(phase.table_groups) == 1:  # a phase in one call: one part, its request as it is
        calls.tables = {0: phase.tables}
        return run_rounds(run.model, run.ledger, {0: request}, run.repair_rounds, calls)
    recorded = calls.recorded(request)
    if phase.outline:
        calls.outline = recorded.get("outline") or _outline(run, calls, request)
        dealt = outlines.deal(phase, calls.outline)
        calls.assigned = {i: rows for i, rows in enumerate(dealt) if rows}
        requests = {i: outlines.part_request(request, calls.outline, rows) for i, rows in calls.assigned.items()}
        calls.tables = {i: tuple(rows) for i, rows in calls.assigned.items()}
    else:
        requests = {i: outlines.table_part_request(request, tables) for i, tables in enumerate(phase.table_groups)}
        calls.tables = dict(enumerate(phase.table_groups))
        requests = deal_anchors(run, calls, requests, request)
    requests = deal_roles(phase, calls.tables, requests, request)
    # A retried attempt reuses what an earlier attempt already got (same generation, same context).
    calls.answers = {int(i): rows for i, rows in recorded.get("answers", {}).items() if int(i) in requests}
    calls.latest.update(calls.answers)
    if calls.answers:
        logger.info("phase parts reused", extra={"phase": phase.id, "parts": sorted(i + 1 for i in calls.answers)})
    pending = [i for i in requests if i not in calls.answers]
    if pending and phase.primes_cache:  # an outlined phase's outline call wrote the cache its parts read
        _prime(run, request)
    in_flight = parts_in_flight(run, [requests[i] for i in pending]) if pending else 1
    return run_rounds(
        run.model, run.ledger, requests, run.repair_rounds, calls,
        pending=pending, in_flight=in_flight, name=f"phase-{phase.slug}",
    )  # fmt: skip


class PhaseCalls(Calls[Any]):
    """The parts of a phase as the round loop runs them."""

    def __init__(self, run: PhaseRun, fingerprint: str) -> None:
        self.run = run
        self.fingerprint = fingerprint  # of the context this attempt's answers are written against
        self.tables: dict[int, tuple[str, ...]] = {}  # the tables each part writes
        self.outline: outlines.Outline = {}
        self.assigned: dict[int, dict[str, list[str]]] = {}  # outlined: the keys each part writes
        self.anchors: dict[int, dict[str, tuple[str, tuple[str, ...]]]] = {}  # no outline: see deal_anchors
        self.answers: dict[int, dict[str, Any]] = {}  # each part's valid answer
        self.latest: dict[int, Any] = {}  # each part's last answer, slugged, for a partial save
        self.round = 1

    @property
    def split(self) -> bool:
        """A phase in parts (else a phase in one call: its one answer is checked by the save)."""
        return len(self.run.phase.table_groups) > 1

    def label(self, index: int) -> str | None:
        """A part as the ledger names it: its tables, and every key it writes of a table split between
        parts (which rows each paid call wrote)."""
        if not self.split:
            return None
        label = ",".join(self.tables[index])
        shared = [t for t in self.assigned.get(index, {}) if sum(t in tables for tables in self.tables.values()) > 1]
        keys = [key for table in shared for key in self.assigned[index][table]]
        keys += [key for _, anchored in self.anchors.get(index, {}).values() for key in anchored]
        return f"{label}:{','.join(keys)}" if keys else label

    def check(self, index: int, response: ModelResponse) -> list[Problem]:
        """Keys slugged at the door; a part's answer checked against its own tables and keys."""
        run, tables = self.run, self.tables[index]
        view = dataclasses.replace(run.phase, tables=tables)
        if self.split:
            extra = {"phase": run.phase.id, "part": index + 1, "round": self.round, "tables": list(tables)}
            logger.info("phase part answered", extra={**extra, "output_tokens": response.usage.output_tokens})
        given, found = at_the_door(view, run.specs, response)
        if not isinstance(given, dict):
            if not self.split:
                self.latest.pop(index, None)
            return self._of(index, found)
        self.latest[index] = given
        if not self.split:  # the save checks a phase's one answer
            if not found:
                self.answers[index] = given
            return found
        phase_tables = set(run.phase.tables)
        with run.conn.transaction():
            existing = reference_keys(run.conn, run.attempt.campaign_id, run.phase, run.specs)  # kept rows too
        extra_tables = [t for t, rows in given.items() if t in phase_tables and t not in tables and rows]
        own = {t: given[t] for t in given if t not in phase_tables or t in tables}
        found = [*found, *validate_phase_input(view, run.specs, own, self._known(index, existing))]
        found += [Problem(t, "not a table of this call") for t in extra_tables]
        if index in self.assigned:
            found += [Problem("", p) for p in outlines.assigned_problems(own, self.assigned[index])]
        for table, (prop, keys) in self.anchors.get(index, {}).items():
            found += [
                Problem(
                    table,
                    f"{row.get(prop)!r} is written by another call: only rows for {list(keys)}",
                    key=row.get("key"),
                    column=prop,
                )
                for row in own.get(table) or []
                if isinstance(row, dict) and row.get(prop) not in keys
            ]
        if found:
            return self._of(index, found)
        self.answers[index] = {t: own[t] for t in tables}
        self._record({"answers": {str(index): self.answers[index]}})  # a process killed later loses none
        return []

    def prepare(self, request: ModelRequest, round_number: int) -> ModelRequest:
        self.round = round_number
        return super().prepare(request, round_number)

    def finish(self, round_number: int) -> Any:
        merged = self.merged(self.answers)
        if round_number <= self.run.repair_rounds:
            found = self.run.saver.continuity(merged)
            if found:
                raise InvalidModelOutput("continuity findings", problems=found)
        return self.run.saver.save(merged)

    def reopen(self, problems: Sequence[Problem]) -> dict[int, list[Problem]]:
        """Each problem back to the part that wrote its row: the part it names, else the part dealt its
        key, else the first part writing its table; those parts' answers are asked for again."""
        found: dict[int, list[Problem]] = {}
        for problem in problems:
            holders = [i for i, tables in self.tables.items() if problem.table in tables]
            owner = next((i for i in holders if problem.key in self.assigned.get(i, {}).get(problem.table, [])), None)
            index = problem.part if problem.part is not None else owner
            index = index if index is not None else (holders[0] if holders else min(self.tables))
            found.setdefault(index, []).append(dataclasses.replace(problem, part=index))
        for index in found:
            self.answers.pop(index, None)
        return found

    def before_round(self, round_number: int, problems: dict[int, list[Problem]]) -> None:
        self.run.before_round(round_number, problems)

    def give_up(self, problems: dict[int, list[Problem]]) -> Any:
        """The parts' last answers saved without their few invalid rows (partial success), or
        InvalidModelOutput with every problem."""
        if len(self.latest) == len(self.tables):
            if self.split:
                merged: Any = self.merged(
                    {i: {t: a.get(t, []) for t in self.tables[i]} for i, a in self.latest.items()}
                )
            else:
                merged = self.latest[0]
            saved = self.run.saver.save_partially(merged, self._unwritten(merged))
            if saved is not None:
                return saved
        found = [p for listed in problems.values() for p in listed]
        raise invalid_output(
            f"phase {self.run.phase.id}: tool input still invalid after {self.run.repair_rounds} repair round(s)"
            f" ({len(found)} problem(s))",
            found,
        )

    def merged(self, answers: dict[int, dict[str, Any]]) -> dict[str, Any]:
        """The parts' rows as one phase answer, every table present, in the order of the parts."""
        if not self.split:
            return answers.get(0, {})
        return {t: [row for i in sorted(answers) for row in answers[i].get(t, [])] for t in self.run.phase.tables}

    def _of(self, index: int, problems: list[Problem]) -> list[Problem]:
        return [dataclasses.replace(p, part=index) for p in problems] if self.split else problems

    def _known(self, index: int, existing: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The keys a part may refer to: earlier phases' rows (``existing``), and the outline's rows
        of other parts."""
        known: dict[str, dict[str, Any]] = dict(existing)
        mine = self.assigned.get(index, {})
        for table, rows in self.outline.items():
            others = {r["key"]: None for r in rows if r["key"] not in mine.get(table, [])}
            known[table] = {**known.get(table, {}), **others}
        return known

    def _unwritten(self, merged: Any) -> list[dict[str, str]]:
        """The outline's rows no part's answer has: dropped rows too, each with its reason."""
        unwritten = []
        for index, assigned in sorted(self.assigned.items()):
            for table, keys in assigned.items():
                written = {row.get("key") for row in merged.get(table, []) if isinstance(row, dict)}
                reason = f"in the outline, never written by part {index + 1}"
                unwritten += [
                    {"table": table, "key": key, "reason": f"{table}[key={key}]: {reason}"}
                    for key in keys
                    if key not in written
                ]
        return unwritten

    def _record(self, progress: dict[str, Any]) -> None:
        a = self.run.attempt
        total = len(self.tables) or len(a.phase.table_groups)
        state.record_phase_parts(self.run.conn, a.generation_id, a.phase, a.number, progress, self.fingerprint, total)

    def recorded(self, request: ModelRequest) -> dict[str, Any]:
        """What earlier attempts of this phase run recorded (``phase_runs.parts``), when it was written
        against the world this attempt sees (same context fingerprint) and its outline still fits the
        kept rows; else nothing (the record is cleared and the model asked again)."""
        a, conn = self.run.attempt, self.run.conn
        recorded = state.recorded_phase_parts(conn, a.generation_id, a.phase)
        if not recorded:
            return {}
        why = ""
        if recorded.get("fingerprint") != self.fingerprint:
            why = "the world it was written against changed (rows, locks or kept keys)"
        elif "outline" in recorded:
            taken = {t: {r["key"] for r in rows} for t, rows in request.context.kept.items()}
            problems = outlines.check_outline(a.phase, recorded["outline"], taken)[1]
            if problems:
                why = "its outline no longer fits the kept rows: " + "; ".join(problems[:3])
        if not why:
            return recorded
        logger.info("recorded parts dropped", extra={"phase": a.phase.id, "reason": why})
        state.clear_phase_parts(conn, a.generation_id, a.phase, a.number)
        return {}


class OutlineCalls(Calls[outlines.Outline]):
    """The outline call, repaired like a phase's answer; every problem is the outline's own."""

    def __init__(self, run: PhaseRun, parts: PhaseCalls, request: ModelRequest) -> None:
        self.run, self.parts = run, parts
        self.taken = {t: {r["key"] for r in rows} for t, rows in request.context.kept.items()}
        self.party = request.context.keys.get("player_characters", [])
        self.outline: outlines.Outline = {}
        self.round = 1

    def label(self, index: int) -> str | None:
        return "outline"

    def prepare(self, request: ModelRequest, round_number: int) -> ModelRequest:
        self.round = round_number
        return super().prepare(request, round_number)

    def check(self, index: int, response: ModelResponse) -> list[Problem]:
        answer, refused = outline_at_the_door(response)
        self.outline, found = outlines.check_outline(self.run.phase, answer, self.taken, self.party)
        problems = refused or [Problem("", p) for p in found]
        rows = sum(len(r) for r in self.outline.values())
        extra = {"phase": self.run.phase.id, "round": self.round, "rows": rows, "problems": len(problems)}
        logger.info("phase outline answered", extra={**extra, "output_tokens": response.usage.output_tokens})
        return problems

    def finish(self, round_number: int) -> outlines.Outline:
        self.parts._record({"outline": self.outline})
        return self.outline

    def before_round(self, round_number: int, problems: dict[int, list[Problem]]) -> None:
        self.run.before_round(round_number, problems)

    def give_up(self, problems: dict[int, list[Problem]]) -> outlines.Outline:
        raise invalid_output(
            f"phase {self.run.phase.id}: the outline is still invalid after {self.run.repair_rounds} repair round(s)",
            [p for listed in problems.values() for p in listed],
        )


def _outline(run: PhaseRun, parts: PhaseCalls, request: ModelRequest) -> outlines.Outline:
    calls = OutlineCalls(run, parts, request)
    return run_rounds(run.model, run.ledger, {0: outlines.outline_request(request)}, run.repair_rounds, calls)


def deal_anchors(
    run: PhaseRun, calls: PhaseCalls, requests: dict[int, ModelRequest], request: ModelRequest
) -> dict[int, ModelRequest]:
    """A table in several parts of a phase without an outline (3C's ``entity_locations``): the rows its
    first required reference points at (its NPCs) are dealt out between those parts in turn, and each
    part writes its share of the table's rows, for its own, so a long table is written side by side
    without overlap."""
    for table in run.phase.tables:
        holders = [i for i in requests if table in calls.tables[i]]
        anchor = _first_required_reference(run, table) if len(holders) > 1 else None
        if anchor is None:
            continue
        prop, target = anchor
        keys = sorted(request.context.keys.get(target, []))
        pcs = len(request.context.keys.get("player_characters", []))
        wanted = row_target(table, pcs, run.phase.max_rows_per_table, run.phase.profile)
        for n, index in enumerate(holders):
            mine = tuple(keys[n :: len(holders)])
            rows = max(1, round(wanted * len(mine) / len(keys))) if mine else 0  # this part's share
            fields = {"table": table, "target": target, "prop": prop, "keys": ", ".join(mine) or "none", "rows": rows}
            marker = {"anchors_marker": outlines.ANCHORS_MARKER, "anchors_json": json.dumps({table: [prop, mine]})}
            line = "\n" + prompts.text("parts", "anchors", **fields, **marker)
            first, *rest = requests[index].messages
            messages = [{**first, "content": str(first["content"]) + line}, *rest]
            anchors = {**requests[index].anchors, table: (prop, mine)}
            requests[index] = dataclasses.replace(requests[index], anchors=anchors, messages=messages)
            calls.anchors.setdefault(index, {})[table] = (prop, mine)
    return requests


def _first_required_reference(run: PhaseRun, table: str) -> tuple[str, str] | None:
    """(property, referenced table) of ``table``'s first required reference to an earlier phase's rows."""
    for column in run.specs[table].foreign_keys:
        if column.references and column.references not in run.phase.tables and not column.nullable:
            return column.property_name, column.references
    return None


def deal_roles(
    phase: Phase, tables: dict[int, tuple[str, ...]], requests: dict[int, ModelRequest], request: ModelRequest
) -> dict[int, ModelRequest]:
    """Calls side by side cannot see each other's rows: each NPC's room for new roles (a ruler,
    an owner, a boss, a priest, a quest giver; at most ROLE_LIMIT in all, shared with the
    phases beside this one) is dealt out between the parts that hand roles out, in proportion
    to their role rows, least busy NPCs first, and each part is told whom it may choose."""
    givers = {i: _role_rows(phase, requests[i]) for i in requests if ROLE_TABLES.intersection(tables[i])}
    npcs = request.context.npc_roles  # every NPC, also those the context left out for length
    if not givers or not npcs:
        return requests
    units = [
        npc
        for npc, roles in sorted(npcs.items(), key=lambda item: (item[1], item[0]))
        for _ in range(role_room(phase.id, npc, roles))
    ]
    quota: dict[int, list[str]] = {i: [] for i in givers}
    for npc in units:  # to the part furthest from its need, in proportion
        index = min(givers, key=lambda i: (len(quota[i]) / max(givers[i], 1), i))
        quota[index].append(npc)
    for index, chosen in quota.items():
        counts = {npc: chosen.count(npc) for npc in dict.fromkeys(chosen)}
        listing = ", ".join(f"{npc} (up to {n})" if n > 1 else npc for npc, n in counts.items()) or "none"
        first, *rest = requests[index].messages
        line = prompt_text("part_roles.txt").format(npcs=listing)
        messages = [{**first, "content": str(first["content"]) + line}, *rest]
        requests[index] = dataclasses.replace(requests[index], role_npcs=tuple(chosen), messages=messages)
    return requests


def _role_rows(phase: Phase, request: ModelRequest) -> int:
    """The rows a part will write in the tables that give roles: its outline rows, or its targets."""
    tables = [t for t in request.tables or phase.tables if t in ROLE_TABLES]
    if request.assigned:
        return sum(len(request.assigned.get(t, [])) for t in tables)
    pcs = len(request.context.player_characters)
    return sum(row_target(t, pcs, phase.max_rows_per_table) for t in tables)


def _prime(run: PhaseRun, request: ModelRequest) -> None:
    """Write the parts' shared prefix to the prompt cache with a one-token request, so the
    parts (sent at once) read it instead of each paying for it in full. Only a model with a
    prompt cache (``prime``) does anything; a failure is logged and the parts go on without."""
    prime = getattr(run.model, "prime", None)
    if prime is None:
        return
    began = time.perf_counter()
    try:
        run.ledger.add(dataclasses.replace(prime(outlines.primer_request(request)), part="primer"))
    except WorldgenError as exc:
        run.ledger.add_failure(exc, run.model, run.phase, part="primer")
        logger.warning("prompt cache not primed", extra={"phase": run.phase.id, "error": type(exc).__name__})
    finally:
        run.ledger.model_seconds += time.perf_counter() - began


def parts_in_flight(run: PhaseRun, requests: list[ModelRequest]) -> int:
    """How many parts may stream at once: the API reserves each request's ``max_tokens`` (in the
    family's tokens) against the output-tokens-per-minute limit when it starts, so the parts in
    flight reserve at most ``WORLDGEN_OUTPUT_TOKENS_PER_MINUTE`` (the others start as they finish)."""
    family = find_family(cost_cap.model_name(run.model, run.phase))
    factor = family.tokenizer_factor if family else 1.0
    reserved = max(r.max_tokens for r in requests) * factor
    return max(1, min(len(requests), int(get_settings().output_tokens_per_minute // reserved)))
