"""The real Hasura files in ``../shared/fixtures/hasura``: beside CI's checkout, absent from a plain clone."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
HASURA_FIXTURES = SHARED_FIXTURES / "hasura"

requires_hasura_fixtures = pytest.mark.skipif(
    not HASURA_FIXTURES.is_dir(),
    reason=f"{HASURA_FIXTURES} is absent: the real Hasura files sit beside CI's checkout, not in a plain clone",
)


R = TypeVar("R")


def one_row(cursor: psycopg.Cursor[R]) -> R:
    """The row of a statement that always returns one (a None would be a bug of the test itself)."""
    row = cursor.fetchone()
    assert row is not None, "the statement returned no row"
    return row
