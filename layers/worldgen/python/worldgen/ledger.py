"""The ledger of model calls (``model_calls``): what each call of a phase or a reroll cost.

A call is paid for whatever happens next, so a phase's call is written to the ledger when it ends,
on a connection of its own (the phase's may be inside a transaction, or broken): a process killed
mid-round leaves every call that ended in the ledger. A row's id is a function of (generation, phase,
attempt, call number), so writing a call again (the save, the failure path) leaves one row.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from worldgen import state
from worldgen.db.connection import connect
from worldgen.errors import DatabaseUnavailable, WorldgenError
from worldgen.model.base import ModelUsage, WorldModel
from worldgen.observability import logger
from worldgen.phases import Phase


@dataclass(frozen=True)
class Attempt:
    """One attempt of a phase of a generation: what every call of it is made and recorded for."""

    generation: dict[str, Any]
    phase: Phase
    number: int
    model: WorldModel | None = None  # None until the phase resolves the generation's model
    remaining_ms: Callable[[], int] | None = None  # the Lambda's time left (None: no deadline)
    started: float = field(default_factory=time.perf_counter)

    @property
    def generation_id(self) -> Any:
        return self.generation["id"]

    @property
    def campaign_id(self) -> Any:
        return self.generation["campaign_id"]


def usage_of_failure(exc: BaseException, model: WorldModel, phase: Phase, part: str | None = None) -> ModelUsage:
    """What a failed request cost, for the ledger: a refused or truncated answer with the tokens it
    streamed (``details["usage"]``, taken so it is counted once), an API error with none."""
    usage = exc.details.pop("usage", None) if isinstance(exc, WorldgenError) else None
    if isinstance(usage, dict):
        cost = ModelUsage(**usage)
    else:
        model_id = getattr(model, "model_id", None)
        name = model_id(phase) if callable(model_id) else model.provider
        cost = ModelUsage(provider=model.provider, model=str(name), stop_reason="error")
    return dataclasses.replace(cost, part=part)


class Ledger:
    """The calls of one attempt of a phase (``of_attempt``) or of one reroll (``of_reroll``), in the
    order they ended. A phase's call is written to ``model_calls`` as it ends (``add``); a reroll's
    calls are written with the reroll's row, which they refer to (``write``)."""

    def __init__(self, owner: dict[str, Any], ids: Callable[[int], uuid.UUID], *, write_each: bool) -> None:
        self.owner = owner  # campaign_id, phase_id, generation_id (a phase's calls)
        self.calls: list[ModelUsage] = []
        self.model_seconds = 0.0  # time spent waiting for the model
        self._ids = ids
        self._write_each = write_each
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    @classmethod
    def of_attempt(cls, attempt: Attempt) -> Ledger:
        key = f"worldgen:{attempt.generation_id}:{attempt.phase.id}:{attempt.number}"
        owner = {"campaign_id": attempt.campaign_id, "phase_id": attempt.phase.id}
        owner["generation_id"] = attempt.generation_id
        return cls(owner, lambda n: uuid.uuid5(uuid.NAMESPACE_URL, f"{key}:{n}"), write_each=True)

    @classmethod
    def of_reroll(cls, reroll_id: uuid.UUID, campaign_id: Any, phase: Phase) -> Ledger:
        owner = {"campaign_id": campaign_id, "phase_id": phase.id}
        key = f"worldgen:reroll:{reroll_id}"
        return cls(owner, lambda n: uuid.uuid5(uuid.NAMESPACE_URL, f"{key}:{n}"), write_each=False)

    def add(self, usage: ModelUsage) -> None:
        """A call that ended; a phase's reaches the ledger now (a failure to write it is logged:
        the save or the failure path writes it again)."""
        with self._lock:
            self.calls.append(usage)
            number = len(self.calls)
            if not self._write_each:
                return
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = connect()
                with self._conn.transaction():
                    record_model_calls(self._conn, [(number, usage)], self._ids, **self.owner)
            except (psycopg.Error, WorldgenError):  # unreachable or not configured: written with the rest later
                extra = {"phase": self.owner["phase_id"], "call": number}
                logger.warning("model call not recorded yet: the save or the failure records it", extra=extra)

    def ids(self) -> list[uuid.UUID]:
        """The ledger ids of the calls so far."""
        with self._lock:
            return [self._ids(n) for n in range(1, len(self.calls) + 1)]

    def add_failure(self, exc: BaseException, model: WorldModel, phase: Phase, part: str | None = None) -> None:
        self.add(usage_of_failure(exc, model, phase, part))

    def write(self, conn: psycopg.Connection[Any], *, reroll_id: Any = None, error: str | None = None) -> None:
        """Every call, inside ``conn``'s transaction; ``error`` goes on the last call."""
        with self._lock:
            calls = list(enumerate(self.calls, start=1))
        record_model_calls(conn, calls, self._ids, reroll_id=reroll_id, error=error, **self.owner)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None


def record_model_calls(
    conn: psycopg.Connection[Any],
    calls: list[tuple[int, ModelUsage]],
    ids: Callable[[int], uuid.UUID],
    *,
    campaign_id: Any,
    phase_id: str,
    generation_id: Any = None,
    reroll_id: Any = None,
    error: str | None = None,
) -> None:
    """The ledger rows of ``calls`` ((call number, usage), numbers from 1, ``ids`` by number), made
    for a generation's phase or for a reroll (exactly one of the two); ``error`` goes on the last."""
    if not calls:
        return
    last = calls[-1][0]
    rows = [
        (
            ids(n), generation_id, reroll_id, campaign_id, phase_id, n, u.provider, u.model,
            u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.latency_ms,
            u.stop_reason, u.cost_usd, error if n == last else None, u.part,
        )
        for n, u in calls
    ]  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO model_calls (id, generation_id, reroll_id, campaign_id, phase, round, provider, model,
                input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, latency_ms,
                stop_reason, cost_usd, error_type, part)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET error_type = coalesce(EXCLUDED.error_type, model_calls.error_type)
            """,
            rows,
        )


def record_failure(attempt: Attempt, ledger: Ledger, conn: psycopg.Connection[Any], exc: BaseException) -> None:
    """Record the failed attempt and what its model calls cost; never mask the original error.

    The calls were paid for whatever happened to the attempt, so they reach the ledger even when
    the phase's connection broke: on a fresh connection, retried through about 30 s of outage
    (a database restart with crash recovery), well inside the Lambda's timeout.
    """
    error_type = type(exc).__name__
    message = exc.message if isinstance(exc, WorldgenError) else str(exc)
    # The next attempt clears the row's error: this line is what stays of it besides the execution's history.
    extra = {"phase": attempt.phase.id, "attempt": attempt.number, "error_type": error_type, "calls": len(ledger.calls)}
    logger.warning("phase attempt failed", extra={**extra, "error": message[:500]})
    for delay in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0):
        time.sleep(delay)
        try:
            if conn.broken or conn.closed:
                with connect() as fresh:
                    _write_failure(fresh, attempt, ledger, error_type, message)
            else:
                conn.rollback()
                _write_failure(conn, attempt, ledger, error_type, message)
            return
        except (psycopg.Error, DatabaseUnavailable):
            continue
    logger.error(
        "model calls not recorded: the database stayed unavailable",
        extra={"phase": attempt.phase.id, "attempt": attempt.number, "calls": [asdict(c) for c in ledger.calls]},
    )


def _write_failure(
    conn: psycopg.Connection[Any], attempt: Attempt, ledger: Ledger, error_type: str, message: str
) -> None:
    with conn.transaction():
        state.fail_phase_attempt(conn, attempt.generation_id, attempt.phase, attempt.number, error_type, message)
        ledger.write(conn, error=error_type)
