"""Build and workstation tools: the CLI, the ASL and README writers, the tool-schema generator,
Hasura introspection and metadata, the deploy rehearsal and the world exports.

They need the repository (migrations, functions, the committed ASL: ``worldgen.repository``), so the
Lambda layer asset excludes this package (and ``worldgen.local``, ``worldgen.repository``); nothing a
handler imports may import from here. The top of the import graph: ``tools -> local``, never back.
"""
