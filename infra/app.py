"""CDK entry point: ``cdk synth -c env=dev``, or offline ``python infra/app.py -c env=dev``.

Context:
- ``env``: dev | staging | prod (required; see infra/environments.json).
- ``skip_dependencies_layer``: "true" to synthesize without the built dependencies layer (tests, CI
  without `make layers`); the stack description then says it is not deployable.
Synth makes no AWS calls: accounts and regions come from the config, the VPC is imported by id.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python infra/app.py` puts infra/ on sys.path; the repo root and the worldgen layer are needed.
_REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (_REPO_ROOT / "layers" / "worldgen" / "python", _REPO_ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import load_environment  # noqa: E402
from infra.stacks.worldgen_stack import WorldgenStack  # noqa: E402


def context_flag(app: cdk.App, key: str) -> bool:
    value = app.node.try_get_context(key)
    return str(value).lower() in {"1", "true", "yes"} if value is not None else False


def build_app(app: cdk.App) -> WorldgenStack:
    """Add the stack named by the ``env`` context to ``app``, checked by cdk-nag AwsSolutions."""
    env_name = app.node.try_get_context("env")
    if not env_name:
        raise SystemExit("choose an environment: cdk synth -c env=dev|staging|prod")
    stack = WorldgenStack(
        app,
        load_environment(str(env_name)),
        skip_dependencies_layer=context_flag(app, "skip_dependencies_layer"),
    )
    # A finding that is not acknowledged (with a reason) interrupts synthesis.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def cli_context(argv: list[str]) -> dict[str, str]:
    """``-c key=value`` pairs, so ``python infra/app.py -c env=dev`` works without the cdk CLI."""
    pairs = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in {"-c", "--context"}]
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def main() -> None:
    app = cdk.App(context=cli_context(sys.argv[1:]))
    build_app(app)
    app.synth()


if __name__ == "__main__":
    main()
