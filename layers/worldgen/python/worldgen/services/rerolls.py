"""Reroll one row of a campaign the caller owns, or undo its latest reroll: one model call (and at
most one repair) made inside the request, within ``reroll.REROLL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from worldgen import reroll
from worldgen.errors import (
    InvalidModelOutput,
    ModelOutputTruncated,
    ModelRefused,
    RequestRefused,
    RerollFailed,
    RerollPostponed,
    WorldgenError,
)
from worldgen.reroll import RerollOutcome
from worldgen.services.generations import load_campaign
from worldgen.services.models import Caller, RerollInput, RowInput
from worldgen.services.reconcile import reconcile_active

MAX_MESSAGE_CHARS = 2000


def _edit(
    conn: psycopg.Connection[Any], request: RowInput, caller: Caller, edit: Callable[[], RerollOutcome]
) -> RerollOutcome:
    """A reroll or its undo of a campaign the caller owns; the model's failures as refusals."""
    load_campaign(conn, request.campaign_id, caller)
    reconcile_active(conn, request.campaign_id)
    try:
        return edit()
    except RequestRefused:
        raise
    except (InvalidModelOutput, ModelRefused, ModelOutputTruncated) as exc:
        raise RerollFailed(f"{type(exc).__name__}: {exc.message}"[:MAX_MESSAGE_CHARS]) from exc
    except WorldgenError as exc:  # the model is unavailable (rate limit, overload, timeout): later
        raise RerollPostponed(f"{type(exc).__name__}: {exc.message} (try again)"[:MAX_MESSAGE_CHARS]) from exc


def reroll_row(conn: psycopg.Connection[Any], request: RerollInput, caller: Caller) -> RerollOutcome:
    return _edit(
        conn,
        request,
        caller,
        lambda: reroll.reroll_row(conn, request.campaign_id, request.table, request.key, hint=request.hint),
    )


def undo_reroll(conn: psycopg.Connection[Any], request: RowInput, caller: Caller) -> RerollOutcome:
    return _edit(
        conn, request, caller, lambda: reroll.undo_reroll(conn, request.campaign_id, request.table, request.key)
    )
