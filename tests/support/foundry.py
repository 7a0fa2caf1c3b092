"""Whether Foundry's CLI can run here: the Foundry module tests are skipped, with the reason, where not."""

from __future__ import annotations

import shutil

import pytest

from worldgen.tools.export.commands import FOUNDRY_CLI_DIR

NODE_REASON = None
if shutil.which("node") is None:
    NODE_REASON = "Node.js is not installed: the Foundry module is built with Foundry's CLI, which runs on Node"
elif not (FOUNDRY_CLI_DIR / "node_modules" / "@foundryvtt" / "foundryvtt-cli").is_dir():
    NODE_REASON = "Foundry's CLI is not installed: `make foundry-cli` (which `make test` runs) installs it"
needs_foundry_cli = pytest.mark.skipif(NODE_REASON is not None, reason=NODE_REASON or "")
