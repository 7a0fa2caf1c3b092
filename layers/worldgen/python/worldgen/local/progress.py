"""Live progress and summaries of a generation, read from generations / phase_runs / model_calls."""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, TextIO

import psycopg

from worldgen.generations import PARTS_PROGRESS_COLUMNS
from worldgen.phases import ALL_PHASES, get_phase

_MARK = {"running": "…", "succeeded": "✓", "failed": "✗", "rolled_back": "↺"}
NAME_WIDTH = max(len(phase.name) for phase in ALL_PHASES) + 1  # phase names in a column


def parts_label(phase_id: str, status: str, outline_kept: bool, parts_kept: int) -> str:
    """How a phase is generated (``outline + 5`` parts, ``1`` call) and, while it runs or after it
    failed, what it already has: the outline and the parts answered, which a retry reuses."""
    phase = get_phase(phase_id)
    planned = (f"outline + {len(phase.table_groups)}" if phase.outline else f"{len(phase.table_groups)}") + " parts"
    if len(phase.table_groups) == 1 and not phase.outline:
        planned = "1 call"
    if status == "succeeded" or not (outline_kept or parts_kept):
        return planned
    done = (["outline"] if outline_kept else []) + [f"{parts_kept}/{len(phase.table_groups)} parts"]
    return f"{planned}; has {', '.join(done)}"


def provider_label(provider: str) -> str:
    if provider == "procedural":
        return "procedural (offline generator, not Claude)"
    if provider == "simulated":
        return "simulated (paced Claude simulator on loopback, procedural answers, not Claude)"
    return provider


class ProgressPrinter:
    """Prints one line per phase whenever its status changes (polled from the database)."""

    def __init__(
        self, url: str, generation_id: uuid.UUID | str, out: TextIO = sys.stdout, *, verbose: bool = False
    ) -> None:
        self.url, self.generation_id, self.out, self.verbose = url, str(generation_id), out, verbose
        self.conn: psycopg.Connection[Any] | None = None
        self.seen: dict[str, tuple[str, int, bool, int]] = {}
        self.started = time.perf_counter()
        self.database_away = False

    def poll(self) -> None:
        """One look at the phase runs. A database outage is reported once and polled through:
        progress is a view, it must never end the generation it shows."""
        from worldgen.db.connection import connect

        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = connect(self.url)
            rows = self.conn.execute(
                "SELECT phase, status, attempt, rows_total, duration_ms, error_type, "
                + PARTS_PROGRESS_COLUMNS
                + " FROM phase_runs WHERE generation_id = %s",
                (self.generation_id,),
            ).fetchall()
        except Exception:  # psycopg errors and DatabaseUnavailable alike
            if not self.database_away:
                print("  (database unavailable: progress will resume when it is back)", file=self.out, flush=True)
            self.database_away = True
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return
        self.database_away = False
        for row in sorted(rows, key=lambda r: [p.id for p in ALL_PHASES].index(r["phase"])):
            seen = (row["status"], row["attempt"], row["outline_kept"], row["parts_kept"])
            if self.seen.get(row["phase"]) == seen:
                continue
            self.seen[row["phase"]] = seen
            phase = get_phase(row["phase"])
            line = f"  {_MARK.get(row['status'], '?')} {phase.id} {phase.name:<{NAME_WIDTH}} {row['status']:<11}"
            if row["status"] == "succeeded":
                line += f" {row['rows_total']:>5} rows  {(row['duration_ms'] or 0) / 1000:6.2f} s"
            elif (row["outline_kept"] or row["parts_kept"]) and self.verbose:  # a phase in parts, as they arrive
                line += "  " + parts_label(phase.id, row["status"], row["outline_kept"], row["parts_kept"])
            elif row["outline_kept"] or row["parts_kept"]:
                line += f"  {row['parts_kept']} of {len(phase.table_groups)} parts written"
            if row["attempt"] > 1:
                line += f"  (attempt {row['attempt']})"
            if row["error_type"]:
                line += f"  {row['error_type']}"
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:6.2f} s]{line}", file=self.out, flush=True)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _cap_label(options: dict[str, Any] | None) -> str:
    from worldgen.cost_cap import cap_of

    cap = cap_of(options)
    return f" of a ${cap:.2f} cap (max_cost_usd)" if cap is not None else " (no cost cap)"


def generation_report(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, *, verbose: bool = False) -> str:
    """A generation in a game master's words: each phase by name with its rows, time and cost, the
    rows per table and the audit; ``verbose`` adds the internals (model and database seconds,
    calls, tokens, parts)."""
    from worldgen.generations import generation_summary

    generation = conn.execute(
        "SELECT g.*, c.name AS campaign_name FROM generations g JOIN campaigns c ON c.id = g.campaign_id"
        " WHERE g.id = %s",
        (str(generation_id),),
    ).fetchone()
    if generation is None:
        return f"no generation {generation_id}"
    summary = generation_summary(conn, generation_id)
    conn.commit()
    resumable = generation["status"] == "failed"  # a failed generation resumes (a discarded one does not)
    lines = [
        f"generation {generation['id']}  campaign {generation['campaign_name']!r}",
        f"  status: {generation['status']}"
        + (f"  ({generation['error_type']}: {generation['error_message']})" if generation["error_type"] else "")
        + (
            f"  [redrivable: `worldgen redrive {generation['id']}` or `worldgen resume {generation['id']}`]"
            if resumable and generation["redrivable"]
            else (f"  [resumable: `worldgen resume {generation['id']}`]" if resumable else "")
        ),
        f"  model: {provider_label(generation['model_provider'])}  profile: {generation['profile']}",
        f"  cost: ${summary['cost_usd']:.4f} spent" + _cap_label(generation["options"]),
        "",
    ]
    calls: dict[str, dict[str, float]] = {}  # per phase, every call of every attempt and model
    for row in summary["model_calls"]:
        total = calls.setdefault(row["phase"], {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        for name in total:
            total[name] += float(row.get(name) or 0)
    if verbose:
        lines.append(
            f"  {'phase':<6}{'status':<12}{'rows':>6}{'seconds':>9}{'model s':>9}{'db s':>7}{'calls':>6}"
            f"{'in tok':>9}{'out tok':>9}{'cost $':>10}  parts"
        )
        for run in summary["phases"]:
            call = calls.get(run["phase"], {})
            lines.append(
                f"  {run['phase']:<6}{run['status']:<12}{run['rows_total'] or 0:>6}"
                f"{(run['duration_ms'] or 0) / 1000:>9.2f}{(run['model_ms'] or 0) / 1000:>9.2f}"
                f"{(run['db_ms'] or 0) / 1000:>7.2f}{int(call.get('calls', 0)):>6}"
                f"{int(call.get('input_tokens') or 0):>9}"
                f"{int(call.get('output_tokens') or 0):>9}{float(call.get('cost_usd') or 0):>10.4f}  "
                + parts_label(run["phase"], run["status"], run["outline_kept"], run["parts_kept"])
            )
        lines.append(
            f"  {'total':<18}{summary['rows_total']:>6}{'':>31}{summary['input_tokens']:>9}"
            f"{summary['output_tokens']:>9}{summary['cost_usd']:>10.4f}"
        )
    else:
        width = NAME_WIDTH + 4
        lines.append(f"  {'phase':<{width}}{'status':<12}{'rows':>6}{'time':>10}{'cost':>10}")
        for run in summary["phases"]:
            phase = get_phase(run["phase"])
            cost = float(calls.get(run["phase"], {}).get("cost_usd") or 0)
            kept = run["status"] != "succeeded" and (run["outline_kept"] or run["parts_kept"])
            lines.append(
                f"  {phase.id + ' ' + phase.name:<{width}}{run['status']:<12}{run['rows_total'] or 0:>6}"
                f"{(run['duration_ms'] or 0) / 1000:>8.1f} s{'$' + format(cost, '.2f'):>10}"
                # what a retry or a resume will reuse of a phase in parts
                + (
                    "  " + parts_label(run["phase"], run["status"], run["outline_kept"], run["parts_kept"])
                    if kept
                    else ""
                )
            )
        seconds = sum((run["duration_ms"] or 0) for run in summary["phases"]) / 1000
        lines.append(
            f"  {'total':<{width + 12}}{summary['rows_total']:>6}{seconds:>8.1f} s"
            f"{'$' + format(summary['cost_usd'], '.2f'):>10}"
        )
        lines.append("  (`--verbose` adds model and database time, tokens and parts per phase)")
    tables: dict[str, int] = {}
    for run in summary["phases"]:
        if run["status"] == "succeeded":
            tables.update(run["rows_per_table"] or {})
    if tables:
        lines += ["", "  rows per table:"]
        items = [f"{t} {n}" for t, n in tables.items()]
        for start in range(0, len(items), 4):
            lines.append("    " + ", ".join(items[start : start + 4]))
    from worldgen.audit import audit_world

    lines += ["", audit_world(conn, generation_id).render()]
    return "\n".join(lines)
