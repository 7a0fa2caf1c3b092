"""The two Lambda layers: worldgen (the library) and its third-party dependencies."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import paths

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64


class WorldgenLayers(Construct):
    """``layers`` holds the worldgen layer and, unless skipped, the dependencies layer.

    The dependencies layer is built by ``make layers`` (pip for manylinux2014_aarch64 / 3.12);
    tests synthesize without it (``skip_dependencies``), and the stack says so in its description.
    """

    def __init__(self, scope: Construct, construct_id: str, *, skip_dependencies: bool) -> None:
        super().__init__(scope, construct_id)
        worldgen = lambda_.LayerVersion(
            self,
            "Worldgen",
            code=lambda_.Code.from_asset(str(paths.WORLDGEN_LAYER_DIR), exclude=list(paths.LAYER_EXCLUDES)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="worldgen library (layers/worldgen)",
        )
        self.layers: list[lambda_.ILayerVersion] = [worldgen]
        if skip_dependencies:
            return
        built = paths.DEPENDENCIES_LAYER_DIR / "python"
        if not built.is_dir() or not any(built.iterdir()):
            raise FileNotFoundError(
                f"{built} is empty: run `make layers` first, or synthesize with "
                "`-c skip_dependencies_layer=true` (not deployable)"
            )
        self.layers.append(
            lambda_.LayerVersion(
                self,
                "Dependencies",
                code=lambda_.Code.from_asset(str(paths.DEPENDENCIES_LAYER_DIR), exclude=["requirements.txt"]),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
                description="worldgen third-party dependencies (layers/dependencies/requirements.txt)",
            )
        )
