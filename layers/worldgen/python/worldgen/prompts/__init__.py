"""Prompt templates: one system prompt and one template per phase, as text files."""

from __future__ import annotations

from functools import cache
from importlib import resources

from worldgen.db.context import PhaseContext
from worldgen.phases import Phase


@cache
def _template(name: str) -> str:
    return resources.files("worldgen.prompts").joinpath(name).read_text(encoding="utf-8")


def system_prompt() -> str:
    return _template("system.txt").strip()


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
            context=context.render(),
        )
        .strip()
    )
