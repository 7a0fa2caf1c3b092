"""The HTML report of a generated world for each audience: the players' page holds no secret tie."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.worlds import generate_sample_world
from worldgen.tools.export import world
from worldgen.tools.export.html import html_report, report_data


def test_the_players_report_of_a_generated_world_leaves_out_its_secret_memberships(settings_env: str, conn: Any):
    campaign_id: uuid.UUID = generate_sample_world(conn)
    document = world.export_world(conn, campaign_id)
    schema = world.committed_schema()
    memberships = document["world"]["entity_factions"]
    secret = [row for row in memberships if row.get("is_secret") is True]
    assert secret and len(secret) < len(memberships)  # the sample world has both kinds

    gm = report_data(document, schema, audience="gm")
    players = report_data(document, schema, audience="players")
    page = html_report(document, schema, audience="players")

    def membership_keys(data: dict[str, Any]) -> set[str]:
        return {e["k"] for e in data["edges"] if e["f"] == "entity_factions"}

    assert membership_keys(gm) == {row["key"] for row in memberships}
    assert membership_keys(players) == {row["key"] for row in memberships} - {row["key"] for row in secret}
    assert not any(f'"k":"{row["key"]}"' in page for row in secret)
    assert len(players["nodes"]) == len(gm["nodes"])  # no thing of the sample world is secret itself
