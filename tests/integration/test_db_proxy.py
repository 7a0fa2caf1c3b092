"""Behind RDS Proxy, connections never prepare statements server-side (a prepared statement pins)."""

from __future__ import annotations

import pytest

from worldgen.db.connection import connect
from worldgen.settings import get_settings


def test_connections_prepare_statements_only_when_not_behind_rds_proxy(
    settings_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect() as direct:
        assert direct.prepare_threshold is not None
        for _ in range(direct.prepare_threshold + 2):
            direct.execute("SELECT 1").fetchone()
        assert direct.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 1}

    monkeypatch.setenv("WORLDGEN_DATABASE_PROXY_ENDPOINT", "worldgen.proxy-abc.eu-west-1.rds.amazonaws.com")
    get_settings.cache_clear()
    with connect(settings_env) as proxied:
        assert proxied.prepare_threshold is None
        for _ in range(10):
            proxied.execute("SELECT 1").fetchone()
        assert proxied.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 0}
