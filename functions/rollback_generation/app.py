"""Lambda adapter: the Catch branch; marks the generation failed (the phases that succeeded stay for resume)."""

from worldgen.handlers.generation import rollback_generation

handler = rollback_generation
