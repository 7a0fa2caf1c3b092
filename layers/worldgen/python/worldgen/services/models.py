"""The requests and results of the actions: the fields of each action's input and output types in
``infra/hasura/metadata/actions.graphql`` (a test holds the two together)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from worldgen.settings import ModelProvider


@dataclass(frozen=True)
class Caller:
    """Who asks, from Hasura's session variables: an admin acts on every campaign, a user on their own."""

    role: str
    user_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def owns(self, owner_id: str | None) -> bool:
        return self.is_admin or owner_id == self.user_id


class CampaignInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: uuid.UUID


class GenerationInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generation_id: uuid.UUID


class ResumeInput(GenerationInput):
    model_provider: ModelProvider | None = None  # another model for the rest (default: the generation's)
    max_cost_usd: float | None = Field(default=None, gt=0)  # a new cost cap (a generation stopped at its cap)


class GenerateInput(CampaignInput):
    profile: str | None = None  # full | quick; default: WORLDGEN_DEFAULT_PROFILE
    max_cost_usd: float | None = Field(default=None, gt=0)  # default: WORLDGEN_DEFAULT_MAX_COST_USD


class RegenerateInput(CampaignInput):
    phase: str


class RowInput(CampaignInput):
    table: str = Field(max_length=63)  # PostgreSQL's identifier length
    key: str = Field(max_length=200)


class RerollInput(RowInput):
    hint: str | None = None


class GenerationStarted(BaseModel):
    """The generation an action started or acted on (GraphQL ``GenerationStarted``)."""

    generation_id: str
    execution_arn: str | None
    status: str


class GenerationUndone(GenerationStarted):
    """A cancel, revert or discard: also the rows the game master locked, edited or added since the
    generation's snapshot, which the restore kept as they were."""

    kept: list[str]
