"""What needs the repository checkout: its paths (``paths``) and the migrator that applies the
Hasura-format migrations kept in it (``migrator``).

Below both ``worldgen.local`` and ``worldgen.tools``, which use it; it imports neither. Like them it
is not shipped in the Lambda layer: nothing a handler imports may import from here.
"""
