"""World models: given a phase request, return the rows it answered (the tool input) and the usage."""

from __future__ import annotations

from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage, WorldModel
from worldgen.model.factory import get_model

__all__ = ["ModelRequest", "ModelResponse", "ModelUsage", "WorldModel", "get_model"]
