"""Build and workstation tools: the CLI, the migrator, the ASL and README writers, the tool-schema
generator, Hasura introspection and the deploy rehearsal.

They need the repository (migrations, functions, the committed ASL), so the Lambda layer asset
excludes this package (and ``worldgen.local``); nothing a handler imports may import from here.
"""
