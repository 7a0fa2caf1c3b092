"""Export a campaign's world (JSON, Markdown vault, HTML report) and import a JSON export.

Workstation tools: not part of the Lambda layer.
"""
