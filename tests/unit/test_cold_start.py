"""Cold start: importing a handler does no I/O and keeps the anthropic SDK (1+ s) off the path."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["worldgen.handlers.actions", "worldgen.handlers.generation", "worldgen.handlers.phase"],
)
def test_importing_a_handler_does_not_import_the_anthropic_sdk_or_connect(module):
    code = (
        f"import sys, socket\n"
        f"socket.socket.connect = lambda *a: (_ for _ in ()).throw(AssertionError('I/O at import'))\n"
        f"import {module}\n"
        f"print('anthropic' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
