"""The words of the procedural model: made-up names from seeded syllables, the campaign's own
nouns, adjectives and proper names, and the label of each table, so that a campaign's world sounds
like its setting (``worldgen.model.procedural`` writes the rows)."""

from __future__ import annotations

import random
import re
from typing import Any

SYLLABLES = [
    "al",
    "ar",
    "bel",
    "cor",
    "dra",
    "el",
    "en",
    "fa",
    "gor",
    "hal",
    "ir",
    "ka",
    "lor",
    "mar",
    "nor",
    "or",
    "pa",
    "quel",
    "ra",
    "sil",
    "tor",
    "ul",
    "vae",
    "wy",
    "xan",
    "yr",
    "zan",
    "the",
    "mo",
    "rin",
    "das",
    "ker",
    "lys",
]
# Neutral words, for names the campaign's own words do not fill: none of them belongs to one kind
# of setting (no sea, no ice, no desert), so a campaign's world sounds like its setting, not the sample's.
ADJECTIVES = [
    "Ashen",
    "Gilded",
    "Hollow",
    "Iron",
    "Silent",
    "Crimson",
    "Veiled",
    "Thorned",
    "Amber",
    "Pale",
    "Broken",
    "Radiant",
]
# Endings of the setting's and tone's words that are adjectives often enough for a placeholder name.
_ADJECTIVE_ENDINGS = ("en", "ed", "ic", "al", "ous", "ful", "ish", "less", "ant", "ent", "ive", "ern", "y")
_NOT_ADJECTIVES = {"when", "then", "been", "even", "often", "between", "every", "many", "only", "very", "they", "each"}
LABELS = {
    "calendar_systems": "calendar",
    "planes": "plane",
    "geography_regions": "region",
    "historical_periods": "era",
    "economic_systems": "economy",
    "legal_systems": "code of law",
    "celestial_bodies": "celestial body",
    "races": "people",
    "character_classes": "calling",
    "feats": "feat",
    "backgrounds": "background",
    "languages": "tongue",
    "cultures": "culture",
    "factions": "faction",
    "pantheons": "pantheon",
    "deities": "deity",
    "entities": "figure",
    "locations": "place",
    "dungeons": "dungeon",
    "buildings": "building",
    "items": "item",
    "item_effects": "power",
    "sentient_item_properties": "awakened mind",
    "quest_hooks": "quest hook",
    "encounters": "encounter",
    "shops": "shop",
    "taverns": "tavern",
    "temples": "temple",
}
# {P} a made-up name, {A} an adjective (the campaign's, else a neutral one), {N} a noun of the
# campaign's setting, {L} the table's label, {w:a,b} one of the words listed.
NAME_PATTERNS = {
    "geography_regions": ["The {P} {w:Marches,Vale,Highlands,Fens,Expanse,Wilds}", "The {A} {N}"],
    "factions": [
        "The {A} {w:Circle,Compact,Syndicate,Conclave,Covenant,Guild}",
        "The {N} {w:Compact,Conclave,Guild}",
        "The {C} {w:Compact,Conclave,Guild}",
    ],
    "pantheons": ["The {A} {w:Court,Choir,Host,Circle}"],
    "deities": ["{P}, the {A} {w:Watcher,Keeper,Judge,Flame,Wanderer}", "{P} of the {N}"],
    "entities": ["{P} {P}"],
    "locations": ["{P}{w:hold,ford,gate,spire,fall,moor,stead}", "{C}"],
    "dungeons": ["The {A} {w:Barrow,Catacombs,Warrens,Sepulchre,Deeps}", "The {N} {w:Barrow,Deeps}"],
    "taverns": ["The {A} {w:Stag,Cauldron,Raven,Kettle}", "The {A} {N}"],
    "shops": ["{P}'s {w:Curios,Provisions,Forge,Apothecary,Maps}"],
    "temples": ["Temple of the {A} {w:Dawn,Ember,Veil}", "Shrine of the {N}"],
    "items": ["{P}'s {w:Blade,Torch,Circlet,Compass,Mantle,Sigil}"],
    "historical_periods": ["The {A} {w:Age,Reckoning,Dominion,Sundering}"],
    "celestial_bodies": ["{P}, the {A} {w:Moon,Wheel,Comet,Eye}"],
    "quest_hooks": ["The {A} {w:Promise,Oath,Map,Summons,Ledger,Secret}", "The {N} {w:Promise,Oath,Ledger}"],
    "encounters": ["{A} {w:Ambush,Parley,Riddle,Vigil,Pursuit}", "{N} {w:Ambush,Parley,Vigil}"],
    "buildings": ["The {A} {w:Tower,Warehouse,Chapel,Hall}", "The {N} {w:Tower,Hall}"],
    "languages": ["{P} {w:Cant,Tongue,Speech,Sign}"],
    "cultures": ["The {P} {w:Folk,Clans,Tribes,Kin}"],
}
_STOPWORDS = set(
    [
        "there",
        "their",
        "which",
        "where",
        "these",
        "those",
        "about",
        "after",
        "before",
        "under",
        "while",
        "world",
        "setting",
        "with",
        "from",
        "into",
    ]
)


def label_of(table: str) -> str:
    """What a row of ``table`` is called in a sentence: place, deity, quest hook."""
    return LABELS.get(table, table.rstrip("s"))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "row"


class CampaignWords:
    """The words of one campaign the rows are written with: the nouns of its setting, its tone's first
    word, its own adjectives and proper names, and its setting's sentences."""

    def __init__(self, campaign: dict[str, Any], pcs: list[dict[str, Any]]) -> None:
        # Words after an article or preposition are mostly nouns ("the sunken capital" -> capital).
        after = re.findall(
            r"\b(?:the|a|an|of|for|over|with|like|at|in|on)\s+(?:[a-z]+\s+)?([A-Za-z][a-z]{3,})\b",
            campaign["setting"],
        )
        words = list(dict.fromkeys(w.lower() for w in after if w.lower() not in _STOPWORDS))
        self.setting_words = words or ["frontier", "road", "ruin"]
        self.tone_word = (re.findall(r"[a-z]+", campaign["tone"].lower()) or ["storied"])[0]
        self.adjectives = _campaign_adjectives(campaign["setting"], campaign["tone"])
        self.proper_names = _proper_names(
            [campaign["setting"], *(pc.get("backstory", "") for pc in pcs)],
            {word for pc in pcs for word in pc["name"].split()},
        )
        self.setting_sentences = [
            s.strip() for s in re.split(r"(?<=[.!?])\s+", campaign["setting"]) if len(s.strip()) > 20
        ] or [campaign["setting"]]

    def name(self, table: str, rng: random.Random) -> str:
        patterns = NAME_PATTERNS.get(table, ["{P} {L}"])
        pattern = rng.choice(patterns)

        def fill(match: re.Match[str]) -> str:
            token = match.group(1)
            if token == "P":
                return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
            if token == "A":  # the campaign's own adjectives as often as the neutral ones
                return rng.choice(self.adjectives) if self.adjectives and rng.random() < 0.5 else rng.choice(ADJECTIVES)
            if token == "C":  # a name the setting or a backstory gives (a made-up one when none does)
                if self.proper_names:
                    return rng.choice(self.proper_names)
                return "".join(rng.choice(SYLLABLES) for _ in range(2)).capitalize()
            if token == "N":
                return rng.choice(self.setting_words).capitalize()
            if token == "L":
                return label_of(table).title()
            return rng.choice(token[2:].split(","))

        return re.sub(r"\{(P|A|N|C|L|w:[^}]*)\}", fill, pattern)


def _campaign_adjectives(setting: str, tone: str) -> list[str]:
    """Adjectives of the campaign's own words: the tone's first word and the setting's and tone's
    words with an adjective's ending (frozen, northern, bleak), capitalized, for names."""
    tone_words = re.findall(r"[A-Za-z]+", tone)
    found = [tone_words[0]] if tone_words and len(tone_words[0]) > 3 else []
    for word in re.findall(r"\b[a-z]{4,}\b", f"{setting} {tone}"):
        if word.endswith(_ADJECTIVE_ENDINGS) and word not in _STOPWORDS | _NOT_ADJECTIVES and not word.endswith("ly"):
            found.append(word)
    return list(dict.fromkeys(word.capitalize() for word in found))


def _proper_names(texts: list[str], pc_words: set[str]) -> list[str]:
    """Names the campaign's texts give (capitalized words inside a sentence: "Port Calder", "Varn"),
    without the PCs' own names, for names of places and factions."""
    found = []
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            words = sentence.split()[1:]  # a sentence's first word is capitalized anyway
            run: list[str] = []
            for word in [*words, ""]:
                bare = word.strip(".,;:!?\"'()")
                if re.fullmatch(r"[A-Z][a-z]{2,}", bare) and bare not in pc_words and bare not in ("The", "And"):
                    run.append(bare)
                    if bare != word:  # punctuation ends a name
                        found.append(" ".join(run))
                        run = []
                    continue
                if run:
                    found.append(" ".join(run))
                run = []
    return list(dict.fromkeys(found))


def roman(number: int) -> str:
    numerals = [(10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = ""
    for value, letters in numerals:
        while number >= value:
            out += letters
            number -= value
    return out
