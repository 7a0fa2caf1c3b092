"""The one Logger, Tracer and Metrics of worldgen, created once and imported everywhere."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from worldgen.contracts import METRICS_NAMESPACE, SERVICE_NAME, MetricSpec

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def add_metric(spec: MetricSpec, value: float) -> None:
    """Emit one of the metrics of ``worldgen.contracts`` with its declared unit."""
    metrics.add_metric(name=spec.name, unit=spec.unit, value=value)
