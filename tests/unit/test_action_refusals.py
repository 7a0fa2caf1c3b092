"""The action edge's one table of refusals: every refusal a service can raise is a 4xx in Hasura's shape."""

from __future__ import annotations

import inspect

import pytest

from worldgen import errors, state
from worldgen.handlers.actions import REFUSED, handle_action_request, refusal_of
from worldgen.services import generations, reconcile, rerolls

REFUSAL_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.RequestRefused)
]


@pytest.mark.parametrize("error", REFUSAL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_request_refusal_has_a_4xx_and_a_code(error: type[errors.RequestRefused]) -> None:
    exc = errors.RerollRefused("row-locked", "locked") if error is errors.RerollRefused else error("why")
    refusal = refusal_of(exc)
    assert 400 <= refusal.status < 500 and refusal.code
    assert refusal.message == exc.message


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.CampaignNotFound("campaign x does not exist"), 404, "campaign-not-found"),
        (errors.GenerationNotFound("no"), 404, "generation-not-found"),
        (errors.UnknownChoice("no", code="unknown-phase"), 400, "unknown-phase"),
        (state.GenerationActive("busy"), 409, "generation-active"),
        (errors.PhaseDependencyMissing("no 1A"), 409, "phase-dependency-missing"),
        (errors.NewerGeneration("newer"), 409, "newer-generation"),
        (errors.TransitionRefused("no", code="not-revertible"), 409, "not-revertible"),
        (errors.OrchestratorUnavailable("no", code="execution-not-started"), 409, "execution-not-started"),
        (errors.RerollRefused("unknown-key", "no such row", 404), 404, "unknown-key"),
        (errors.RerollFailed("invalid"), 422, "reroll-failed"),
        (errors.RerollPostponed("429"), 409, "model-unavailable"),
    ],
)
def test_the_table_answers_each_refusal_as_before(exc: Exception, status: int, code: str) -> None:
    assert isinstance(exc, REFUSED)
    refusal = refusal_of(exc)
    assert (refusal.status, refusal.code) == (status, code)


def test_the_services_know_nothing_of_http() -> None:
    for module in (generations, reconcile, rerolls):
        source = inspect.getsource(module)
        for word in ("status_code", "statusCode", "HttpRefusal", "409", "404", "400"):
            assert word not in source, (module.__name__, word)


def test_a_get_is_refused_before_the_secret_is_read() -> None:
    answer = handle_action_request({"requestContext": {"http": {"method": "GET"}}})
    assert answer["statusCode"] == 405
    assert '"code": "method-not-allowed"' in answer["body"]
