"""Prompt templates: one system prompt and one template per phase, as text files."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from worldgen.db.context import PhaseContext
from worldgen.phases import Phase, row_target, row_targets


@cache
def _template(name: str) -> str:
    return resources.files("worldgen.prompts").joinpath(name).read_text(encoding="utf-8")


def prompt_text(name: str) -> str:
    """A sentence of the engine's own turns (a repair turn, a part's share of the roles), as written."""
    return _template(name)


def system_prompt() -> str:
    return _template("system.txt").strip()


def size_hint(phase: Phase, pc_count: int) -> str:
    """The row targets of ``phase`` for a party of ``pc_count`` (its profile's, ``phases.row_targets``)."""
    targets = row_targets(phase.profile)
    lines = [f"Rows to aim for with {pc_count} player character(s) (more only where the story needs it):"]
    for table in phase.tables:
        note = targets[table].note if table in targets else ""
        rows = row_target(table, pc_count, phase.max_rows_per_table, phase.profile)
        lines.append(f"- {table}: about {rows}" + (f" ({note})" if note else ""))
    return "\n".join(lines)


def pc_connection_example(context: PhaseContext) -> str:
    """An example pc_connections row made of this campaign's own keys (a PC, a faction), never of
    another campaign's: a model copies examples, and another campaign's keys do not exist here."""
    pc = next(iter(context.keys.get("player_characters", [])), "a-player-character-key")
    faction = next(iter(context.keys.get("factions", [])), "a-faction-key")
    row = {
        "key": f"{pc}-owes-{faction}",
        "player_character_key": pc,
        "faction_key": faction,
        "connection_type": "debt",
        "description": "...",
    }
    return json.dumps(row, ensure_ascii=False)


def phase_prompt(phase: Phase, context: PhaseContext, size_hint: str) -> str:
    return (
        _template(f"phase_{phase.slug}.txt")
        .format(
            phase_id=phase.id,
            phase_name=phase.name,
            focus=phase.focus,
            tables=", ".join(phase.tables),
            tool_name=phase.tool_name,
            size_hint=size_hint,
            pc_connection_example=pc_connection_example(context),
            context=context.render(),
        )
        .strip()
    )


NO_HINT = "(none: a fresh take on the same row)"


def reroll_prompt(
    *, table: str, key: str, hint: str | None, tool_name: str, campaign: str, row: str, refers_to: str, referred_by: str
) -> str:
    """The request of a reroll: one row written anew, with the rows around it whole."""
    return (
        _template("reroll.txt")
        .format(
            table=table,
            key=key,
            hint=hint or NO_HINT,
            tool_name=tool_name,
            campaign=campaign,
            row=row,
            refers_to=refers_to or "(none)",
            referred_by=referred_by or "(none)",
        )
        .strip()
    )
