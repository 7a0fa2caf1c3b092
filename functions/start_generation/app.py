"""Lambda adapter: the Hasura action endpoint (Function URL), all four generation actions."""

from worldgen.handlers.actions import start_generation

handler = start_generation
