"""Lambda adapter: the last state; marks the generation succeeded and stores its summary."""

from worldgen.handlers.generation import complete_generation

handler = complete_generation
