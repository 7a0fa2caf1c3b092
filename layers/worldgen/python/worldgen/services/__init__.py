"""What a game master's request does (the Hasura actions): typed requests in, typed results out,
refusals as ``worldgen.errors.RequestRefused``. No HTTP here: ``worldgen.handlers.actions`` is the edge."""
