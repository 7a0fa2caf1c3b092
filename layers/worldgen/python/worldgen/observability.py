"""The one Logger, Tracer and Metrics of worldgen, created once and imported everywhere."""

from __future__ import annotations

import logging
import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from worldgen.contracts import METRICS_NAMESPACE, SERVICE_NAME, MetricSpec

MASK = "*****"
# Header names whose values are credentials (the action secret, Hasura's admin secret, a bearer
# token, an API key, a cookie): masked wherever an event or a log record carries them.
SECRET_NAME = re.compile(r"secret|authorization|token|api[-_]?key|cookie|password", re.IGNORECASE)


def masked(value: Any) -> Any:
    """``value`` with every credential-named entry of every nested dict replaced by MASK."""
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and SECRET_NAME.search(k) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


class MaskSecrets(logging.Filter):
    """Masks credentials in a logged event (POWERTOOLS_LOGGER_LOG_EVENT logs the whole event) and
    in the ``extra`` keys of a record, before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, (dict, list)):
            record.msg = masked(record.msg)
        for name, value in list(record.__dict__.items()):
            if isinstance(value, dict):
                record.__dict__[name] = masked(value)
            elif isinstance(value, str) and SECRET_NAME.search(name):
                record.__dict__[name] = MASK
        return True


logger = Logger(service=SERVICE_NAME)
logger.addFilter(MaskSecrets())
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def add_metric(spec: MetricSpec, value: float) -> None:
    """Emit one of the metrics of ``worldgen.contracts`` with its declared unit."""
    metrics.add_metric(name=spec.name, unit=spec.unit, value=value)
