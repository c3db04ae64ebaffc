"""A run request: what a caller (Airflow, curl, a test) POSTs to start a pipeline.

    {"config": <sourcemart/table processors config>,
     "instance_id": "optional; makes a retried POST idempotent",
     "retry": {"max_attempts": 3, "interval_seconds": 5},
     "max_parallel_units": 32}

Validated here, in the core, so the Azure HTTP starter and the local `serve` endpoint answer the
same 400 with the same JSON paths before anything starts, the operator's policy included. The orchestration receives
`orchestration_input(request)`: the config and run parameters, never the instance id (Durable
owns that) and never a secret (configs name app settings only).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeline.config import ConfigError, PipelineConfig, _Strict, validate_model

# Durable instance ids end up in URL paths and storage keys: keep them to characters that need no
# escaping anywhere. Airflow run ids (`manual__2026-11-24T10:00:00+00:00`) are sanitised by the DAG.
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"


class RetryPolicy(_Strict):
    """How a failed unit (an activity) is retried by Durable Functions before the run fails.
    Retries cover transient failures (a storage hiccup, an instance recycled mid-unit); units are
    idempotent, so a retry overwrites what a failed attempt may have staged."""

    max_attempts: int = Field(default=3, ge=1, le=10, description="attempts per unit, the first included")
    # The Python SDK's RetryOptions carry only these two; the wait between attempts is fixed.
    interval_seconds: float = Field(default=5.0, gt=0, le=3600, allow_inf_nan=False, description="wait before each retry")


class RunRequest(_Strict):
    config: PipelineConfig
    instance_id: str | None = Field(default=None, pattern=INSTANCE_ID_PATTERN)
    retry: RetryPolicy = RetryPolicy()
    # Units of one processor run in waves of this many: it bounds what one run puts on the
    # activity queue at once (other pipelines share the app) and sets how often progress updates.
    max_parallel_units: int = Field(default=32, ge=1, le=1000)


def validate_request(data: Any, source: str = "request") -> RunRequest:
    """Raise pipeline.config.ConfigError naming each bad field's JSON path (e.g. config.processors[0]...):
    the request's shape, then everything it would reach beyond the operator's policy (pipeline.policy)."""
    from pipeline.policy import config_errors

    request = validate_model(RunRequest, data, source)
    errors = config_errors(request.config.model_dump(mode="json", exclude_none=True), prefix="config.")
    if errors:
        raise ConfigError(errors, source)
    return request


def orchestration_input(request: RunRequest) -> dict:
    return request.model_dump(mode="json", exclude_none=True, exclude={"instance_id"})
