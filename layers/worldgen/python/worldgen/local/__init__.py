"""Local runtime: embedded PostgreSQL, in-process AWS (moto), the action endpoint and the CLI.

Not shipped in the Lambda layer.
"""
