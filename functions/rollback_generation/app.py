"""Lambda adapter: the Catch branch; removes what the failed generation wrote and marks it failed."""

from worldgen.handlers.generation import rollback_generation

handler = rollback_generation
