"""Making the world model of a provider, after the checks of the settings that need the model table
or the tool schemas (``settings.py`` loads neither: a configuration module does not load what it
configures).

Each check fails with one ``ConfigurationError`` line naming the setting, as the CLI prints it.
"""

from __future__ import annotations

from worldgen.errors import ConfigurationError
from worldgen.model.base import WorldModel
from worldgen.settings import MODEL_PROVIDERS, Settings, get_settings


def check_model_settings(settings: Settings, provider: str | None = None) -> None:
    """The models named in ``settings`` (the simulator's too, for the ``simulated`` provider) are
    known and still served, every strict phase's tool fits the limits of strict tool use, and every
    phase whose model answers in structured outputs fits them in each of its parts (refused here,
    never by the API in the middle of a generation)."""
    from worldgen.model.families import STRUCTURED_OUTPUT, UnknownModel, check_model, family_of
    from worldgen.phases import ALL_PHASES, get_phase
    from worldgen.schema.tools import load_tool, part_limit_problems

    named = {"WORLDGEN_DEFAULT_MODEL": settings.default_model}
    named |= {f"WORLDGEN_PHASE_MODELS[{phase}]": model for phase, model in settings.phase_models.items()}
    if (provider or settings.model_provider) == "simulated":
        named["WORLDGEN_SIMULATOR_MODEL"] = settings.simulator_model
    for setting, model in named.items():
        if model is None:
            continue
        try:
            check_model(model)
        except UnknownModel as exc:
            raise ConfigurationError(f"{setting}: {exc}", setting=setting, model=model) from exc

    for phase_id in settings.strict_phases:
        phase = get_phase(phase_id)
        problems = part_limit_problems(phase, load_tool(phase))
        if problems:
            raise ConfigurationError(
                f"WORLDGEN_STRICT_PHASES: phase {phase.id} cannot use strict tools: " + "; ".join(problems),
                setting="WORLDGEN_STRICT_PHASES",
            )

    for phase in ALL_PHASES:  # every profile
        model = settings.phase_models.get(phase.id) or settings.default_model or phase.model
        if family_of(model).request_mode != STRUCTURED_OUTPUT:
            continue
        problems = part_limit_problems(phase, load_tool(phase))
        if problems:
            raise ConfigurationError(
                f"phase {phase.id} cannot run on {model} (structured outputs): " + "; ".join(problems),
                setting="WORLDGEN_PHASE_MODELS",
            )


# provider -> (the settings it was built from, the model). The settings object itself is kept and
# compared, not its id(): a reloaded Settings may be allocated at a freed object's address.
_models: dict[str, tuple[Settings, WorldModel]] = {}


def get_model(provider: str | None = None) -> WorldModel:
    """The model for ``provider``, kept per execution environment so a warm Lambda reuses its
    HTTP connections (rebuilt, and the settings checked again, when the settings are reloaded)."""
    settings = get_settings()
    name = provider or settings.model_provider
    cached = _models.get(name)
    if cached is not None and cached[0] is settings:
        return cached[1]
    check_model_settings(settings, name)
    model: WorldModel
    if name == "procedural":
        from worldgen.model.procedural import ProceduralModel

        model = ProceduralModel()
    elif name in ("anthropic", "bedrock"):
        from worldgen.model.claude import ClaudeModel

        model = ClaudeModel(provider=name)
    elif name == "simulated":
        from worldgen.model.simulated import SimulatedModel

        model = SimulatedModel(settings)
    else:
        raise ConfigurationError(f"unknown model provider {name!r}; valid: {', '.join(MODEL_PROVIDERS)}")
    _models[name] = (settings, model)
    return model
