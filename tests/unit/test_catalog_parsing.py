"""Parsing of PostgreSQL's stored CHECK definitions (pg_get_constraintdef output, PostgreSQL 16)."""

from __future__ import annotations

import pytest

from worldgen.db.catalog import parse_bounds, parse_in_list


def test_text_in_list_becomes_its_values_with_quotes_unescaped() -> None:
    definition = "CHECK ((kind = ANY (ARRAY['a'::text, 'b''s'::text, 'c d'::text])))"
    assert parse_in_list(definition) == ("kind", ["a", "b's", "c d"])


def test_integer_in_list_becomes_integers() -> None:
    assert parse_in_list("CHECK ((hit_die = ANY (ARRAY[6, 8, 10, 12])))") == ("hit_die", [6, 8, 10, 12])


@pytest.mark.parametrize(
    "definition",
    [
        "CHECK (((recommended_min_level >= 1) AND (recommended_min_level <= 20)))",
        "CHECK ((floor_count > 0))",
        "CHECK ((key ~ '^[a-z0-9][a-z0-9-]*$'::text))",
        "CHECK ((num_nonnulls(entity_id, location_id, item_id) = 1))",
    ],
)
def test_definitions_that_are_not_in_lists_are_not_enums(definition: str) -> None:
    assert parse_in_list(definition) is None


def test_between_becomes_inclusive_bounds() -> None:
    assert parse_bounds("CHECK (((level >= 1) AND (level <= 20)))") == ("level", 1, 20)


def test_greater_than_zero_on_an_integer_means_at_least_one() -> None:
    assert parse_bounds("CHECK ((floor_count > 0))") == ("floor_count", 1, None)


def test_at_least_zero_is_an_inclusive_lower_bound() -> None:
    assert parse_bounds("CHECK ((population >= 0))") == ("population", 0, None)


def test_fractional_bound_is_kept_as_is() -> None:
    assert parse_bounds("CHECK ((weight >= 0.5))") == ("weight", 0.5, None)


@pytest.mark.parametrize(
    "definition",
    [
        # dungeons: a rule across two columns is the database's to enforce, not a per-column bound.
        "CHECK (((recommended_min_level IS NULL) OR (recommended_max_level IS NULL)"
        " OR (recommended_min_level <= recommended_max_level)))",
        "CHECK ((min_level <= max_level))",
        "CHECK (((a >= 1) AND (b <= 5)))",
        "CHECK ((entity_id <> related_entity_id))",
        "CHECK ((num_nonnulls(entity_id, location_id, item_id, faction_id, quest_hook_id) = 1))",
    ],
)
def test_multi_column_checks_have_no_bounds(definition: str) -> None:
    assert parse_bounds(definition) is None
