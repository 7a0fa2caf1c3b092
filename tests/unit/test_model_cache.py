"""get_model keeps one model per provider for a warm Lambda, rebuilt when the settings are reloaded,
and checks the model settings that the settings themselves do not (they load no model table)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import worldgen.model.factory as factory
from worldgen.errors import ConfigurationError
from worldgen.model.factory import get_model
from worldgen.model.simulated import SimulatedModel
from worldgen.settings import get_settings


def test_a_reloaded_setting_reaches_the_model_even_when_the_new_settings_reuse_a_freed_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model cached by id(settings) handed a stale simulator URL to a test whose new Settings
    object was allocated where the old one had been freed (a flaky Connection refused in CI).
    Every object here answers id() with the same number, as two objects at one address would."""
    monkeypatch.setattr(factory, "id", lambda _obj: 140000000000, raising=False)
    try:
        for url in ("http://127.0.0.1:1", "http://127.0.0.1:2"):
            monkeypatch.setenv("WORLDGEN_SIMULATOR_URL", url)
            get_settings.cache_clear()
            model = get_model("simulated")
            assert isinstance(model, SimulatedModel)
            assert str(model.claude.settings.anthropic_base_url) == url
            assert get_model("simulated") is model  # the same settings: the same warm model
    finally:
        get_settings.cache_clear()


def test_the_model_settings_are_checked_where_the_model_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", "claude-imaginary-9")
    get_settings.cache_clear()
    try:
        assert get_settings().default_model == "claude-imaginary-9"  # the settings load: they read no model table
        with pytest.raises(ConfigurationError) as raised:
            get_model("procedural")
        assert raised.value.message.startswith("WORLDGEN_DEFAULT_MODEL: unknown Claude model 'claude-imaginary-9'")
    finally:
        get_settings.cache_clear()


def test_loading_the_settings_loads_neither_the_model_table_nor_a_tool_schema() -> None:
    code = (
        "import sys\n"
        "from worldgen.settings import Settings\n"
        "Settings(strict_phases=['3C'], default_model='claude-sonnet-5-5')\n"
        "print(sorted(m for m in ('worldgen.model.families', 'worldgen.schema.tools') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
