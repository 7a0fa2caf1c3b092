"""Campaign files: every problem a person can make is one line naming where it is (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worldgen.db.context import CHARS_PER_TOKEN, PhaseContext
from worldgen.local import campaigns
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, CampaignFileError, player_character_key, read_campaign_file
from worldgen.phases import PHASES


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE_CAMPAIGN.read_text())


def problems(tmp_path: Path, data: dict[str, Any] | str) -> list[str]:
    path = tmp_path / "campaign.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(CampaignFileError) as raised:
        read_campaign_file(path)
    return raised.value.problems


def pc(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "race": "human", "character_class": "fighter", "backstory": "A long enough past.", **extra}


def test_the_sample_campaign_is_valid() -> None:
    assert len(read_campaign_file(SAMPLE_CAMPAIGN).player_characters) >= 1


def test_the_key_is_the_name_slugged_with_accents_transliterated_or_numbered() -> None:
    assert player_character_key("Brother Teodor Vell") == "brother-teodor-vell"
    assert player_character_key("  O'Brien!! ") == "o-brien"
    assert player_character_key("Élodie d'Aubigné") == "elodie-d-aubigne"
    assert player_character_key("Ярослав", 3) == "pc-3"


def test_two_names_that_make_the_same_key_are_refused(tmp_path: Path) -> None:
    data = sample()
    data["player_characters"] = [pc("Lyra Ash"), pc("lyra-ash!")]
    assert problems(tmp_path, data) == [
        "the file: the name 'lyra-ash!' gives the same key 'lyra-ash' as 'Lyra Ash'; "
        "player characters need distinct names"
    ]


def test_the_same_name_twice_is_refused(tmp_path: Path) -> None:
    data = sample()
    data["player_characters"] = [pc("Kesh"), pc("Kesh")]
    assert problems(tmp_path, data) == [
        "the file: the name 'Kesh' gives the same name; player characters need distinct names"
    ]


def test_a_name_without_a_latin_letter_gets_a_numbered_key_and_is_accepted(tmp_path: Path) -> None:
    data = sample()
    data["player_characters"] = [pc("Élodie"), pc("Ярослав"), pc("李白")]
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    campaign = read_campaign_file(path)
    keys = [player_character_key(p.name, n) for n, p in enumerate(campaign.player_characters, start=1)]
    assert keys == ["elodie", "pc-2", "pc-3"]


def test_invalid_json_names_the_line_and_column(tmp_path: Path) -> None:
    assert problems(tmp_path, '{\n  "name": "x",,\n}') == [
        "invalid JSON at line 2, column 15: Expecting property name enclosed in double quotes"
    ]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(setting="s" * (campaigns.MAX_SETTING + 1)), "setting: String should have at most"),
        (
            lambda d: d["player_characters"][0].update(backstory="b" * (campaigns.MAX_BACKSTORY + 1)),
            "player_characters.0.backstory: String should have at most",
        ),
        (
            lambda d: d.update(player_characters=[pc(f"Hero {n}") for n in range(campaigns.MAX_PLAYER_CHARACTERS + 1)]),
            "player_characters: List should have at most 8 items",
        ),
        (lambda d: d.update(tone="grim\u0000"), "tone: contains the NUL character"),
        (lambda d: d.update(sidekick="Bob"), "sidekick: Extra inputs are not permitted"),
    ],
)
def test_sizes_beyond_the_limits_and_nul_characters_are_refused(tmp_path: Path, change: Any, where: str) -> None:
    data = sample()
    change(data)
    found = problems(tmp_path, data)
    assert any(p.startswith(where) for p in found), found


def test_the_largest_campaign_allowed_leaves_a_third_of_every_phase_context_budget_to_the_world() -> None:
    """The campaign's own text must leave room for the world generated so far in every prompt: as the
    context tells it (the party a table), the largest campaign is about 5,850 tokens, so a budget of
    10,000 keeps 4,150 for the world's rows, about 45 of them (issue 22)."""
    largest_pc = {
        "key": "k" * campaigns.MAX_SHORT_TEXT,
        "name": "n" * campaigns.MAX_SHORT_TEXT,
        "race": "r" * campaigns.MAX_LABEL,
        "character_class": "c" * campaigns.MAX_LABEL,
        "level": 20,
        "backstory": "b" * campaigns.MAX_BACKSTORY,
        "goals": "g" * campaigns.MAX_GOALS,
    }
    largest = PhaseContext(
        phase="2B",
        campaign={
            "name": "n" * campaigns.MAX_SHORT_TEXT,
            "setting": "s" * campaigns.MAX_SETTING,
            "tone": "t" * campaigns.MAX_SHORT_TEXT,
        },
        player_characters=[largest_pc] * campaigns.MAX_PLAYER_CHARACTERS,
        rows={},
        keys={},
    )
    tokens = len(largest.render()) // CHARS_PER_TOKEN
    assert tokens <= min(p.context_token_budget for p in PHASES) * 2 // 3, tokens
