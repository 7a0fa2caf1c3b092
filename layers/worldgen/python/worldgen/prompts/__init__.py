"""Every sentence the model reads, as files of this folder: the system prompt (``system.txt``), each
phase's guidance (``phase_<id>.txt``) inside the frame its profile shares (``phase_frame.txt``; a
quick-profile file is whole), the reroll request (``reroll.txt``), and the shorter texts of the
engine by the module that sends them (``context.toml``: the world so far; ``parts.toml``: the
outline, the parts and the primer of a phase in parts).

Below the modules that send these texts: it imports nothing but the phase registry.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from importlib import resources
from typing import Any, Protocol

from worldgen.phases import Phase, row_target, row_targets


class PhaseContext(Protocol):
    """What a prompt reads of ``worldgen.db.context.PhaseContext`` (which sends sentences of this
    folder, so this folder does not import it back)."""

    keys: dict[str, list[str]]

    def render(self) -> str: ...


# The frame each profile's phase files are written into; a profile without one has whole files.
PHASE_FRAMES = {"full": "phase_frame.txt"}


@cache
def _template(name: str) -> str:
    return resources.files("worldgen.prompts").joinpath(name).read_text(encoding="utf-8")


@cache
def _texts(name: str) -> dict[str, Any]:
    return tomllib.loads(_template(f"{name}.toml"))


def text(file: str, key: str, /, **fields: Any) -> str:
    """The text ``key`` of ``<file>.toml`` (a dotted ``key`` names a table's entry), its fields filled."""
    found: Any = _texts(file)
    for part in key.split("."):
        found = found[part]
    return str(found).format(**fields)


def phase_template(phase: Phase) -> str:
    """The prompt template of ``phase``: its guidance inside its profile's frame."""
    own = _template(f"phase_{phase.slug}.txt")
    frame = PHASE_FRAMES.get(phase.profile)
    return _template(frame).replace("{guidance}", own.rstrip("\n")) if frame else own


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
        phase_template(phase)
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
