"""get_model keeps one model per provider for a warm Lambda, rebuilt when the settings are reloaded."""

from __future__ import annotations

import pytest

import worldgen.model.base as base
from worldgen.model.base import get_model
from worldgen.model.simulated import SimulatedModel
from worldgen.settings import get_settings


def test_a_reloaded_setting_reaches_the_model_even_when_the_new_settings_reuse_a_freed_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model cached by id(settings) handed a stale simulator URL to a test whose new Settings
    object was allocated where the old one had been freed (a flaky Connection refused in CI).
    Every object here answers id() with the same number, as two objects at one address would."""
    monkeypatch.setattr(base, "id", lambda _obj: 140000000000, raising=False)
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
