"""Prompts belong to the campaign at hand (issue 24): every request of every phase (outline, parts,
single calls; both profiles) of one campaign names nothing that belongs only to another campaign."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest

from worldgen import state
from worldgen.local.campaigns import (
    SAMPLE_CAMPAIGN,
    CampaignFile,
    PlayerCharacterFile,
    insert_campaign,
    read_campaign_file,
)
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.outline import primer_request
from worldgen.phases import WORLD_TABLES, profile_phases
from worldgen.pipeline import run_phase

# A campaign with nothing in common with the sample one: another setting, another party.
DESERT = CampaignFile(
    name="Salt and Cinder",
    owner_id="second-game-master",
    setting=(
        "A caravan road across a glass desert where dead suns once fell. Oasis cities sell water by the"
        " cup, sand-priests read omens in dunes, and nomad clans guard the shards of the fallen stars."
    ),
    tone="Sun-bleached adventure with a streak of dread",
    player_characters=[
        PlayerCharacterFile(
            name="Zahir Quennet",
            race="Human",
            character_class="Ranger",
            level=5,
            backstory="A caravan scout whose clan was buried by a sandstorm the omen-readers did not foresee.",
            goals="Learn who paid the omen-readers to stay silent.",
        ),
        PlayerCharacterFile(
            name="Ottoline Brask",
            race="Gnome",
            character_class="Artificer",
            level=5,
            backstory="A glassblower who melts star-shards into lenses and owes the Ember Syndicate a fortune.",
            goals="Build a lens that shows where the next star will fall.",
        ),
    ],
)


class Recording:
    """The offline model, recording every request it is sent."""

    provider = "procedural"

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []
        self.inner = ProceduralModel()
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            self.requests.append(request)
        return self.inner.call(request)


def rendered(request: ModelRequest) -> str:
    """Everything a request sends a model: system, the shared prompt, the messages and the tools."""
    parts = [request.system, request.shared_prompt or "", json.dumps(request.messages), json.dumps(request.tool)]
    parts.append(json.dumps(request.tools or []))
    return "\n".join(parts)


def own_names(conn: Any, campaign_id: Any) -> set[str]:
    """The campaign's name, its PCs' names and keys, and every key and name of its world."""
    found = {str(conn.execute("SELECT name FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()["name"])}
    for row in conn.execute("SELECT key, name FROM player_characters WHERE campaign_id = %s", (campaign_id,)):
        found |= {row["key"], row["name"]}
    for table in WORLD_TABLES:
        for row in conn.execute(f"SELECT to_jsonb(t) AS r FROM {table} t WHERE campaign_id = %s", (campaign_id,)):
            found |= {v for k, v in row["r"].items() if k in ("key", "name") and isinstance(v, str)}
    conn.commit()
    return found


def generate(conn: Any, campaign: CampaignFile, profile: str) -> tuple[Any, list[str]]:
    """``campaign``'s world in ``profile``, and every request its phases sent, rendered."""
    campaign_id = insert_campaign(conn, campaign)
    generation_id = state.create_generation(conn, campaign_id, provider="procedural", profile=profile)
    model = Recording()
    for phase in profile_phases(profile):
        assert run_phase(conn, generation_id, phase.id, model).status == "succeeded"
    texts = [rendered(r) for r in model.requests]
    texts += [rendered(primer_request(r)) for r in model.requests if r.shared_prompt]  # the cache primers
    return campaign_id, texts


def leaks(texts: list[str], foreign: set[str]) -> list[str]:
    """The foreign names or keys the texts carry (as whole words)."""
    found = set()
    for text in texts:
        for term in foreign:
            if re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text):
                found.add(term)
    return sorted(found)


@pytest.mark.parametrize("profile", ["full", "quick"])
def test_no_request_of_a_campaign_names_a_row_of_another_campaign(settings_env, conn, profile):
    sample_id, sample_texts = generate(conn, read_campaign_file(SAMPLE_CAMPAIGN), profile)
    desert_id, desert_texts = generate(conn, DESERT, profile)
    sample_names, desert_names = own_names(conn, sample_id), own_names(conn, desert_id)
    only_sample, only_desert = sample_names - desert_names, desert_names - sample_names

    assert len(sample_texts) > len(profile_phases(profile))  # outlines and parts, not one call a phase
    assert {"isolde-marrow", "Isolde Marrow"} <= only_sample and {"zahir-quennet"} <= only_desert
    assert any("zahir-quennet" in t for t in desert_texts)  # a campaign's requests name its own rows
    assert leaks(desert_texts, only_sample) == []
    assert leaks(sample_texts, only_desert) == []


def test_the_pc_connections_example_is_made_of_the_campaign_s_own_keys(settings_env, conn):
    _, texts = generate(conn, DESERT, "full")
    example = next(t for t in texts if "Example pc_connections row" in t)
    line = example.split("Example pc_connections row", 1)[1].split("\n", 1)[0]
    row = json.loads(line.split(": ", 1)[1])
    assert row["player_character_key"] == "ottoline-brask"  # the campaign's first PC by key
    assert row["faction_key"] in example and row["key"] == f"ottoline-brask-owes-{row['faction_key']}"
