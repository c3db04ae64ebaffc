"""The orchestrator: the core's one portable orchestration on a DurableOrchestrationContext.

It only yields activity calls (no I/O, no clock, no randomness), so Durable's replay re-runs it
to the same actions every time. Each unit is an activity retried by Durable itself
(call_activity_with_retry): a retried unit overwrites what a failed attempt staged."""

from __future__ import annotations

import azure.durable_functions as df

from azure_shim.names import ORCHESTRATOR
from pipeline.orchestration import LIST_ACTIVITY
from pipeline.request import RetryPolicy
from pipeline.telemetry import observed_orchestration

bp = df.Blueprint()


class RetryingActivities:
    """The context shape the core expects (call_activity, task_all, set_custom_status), with every
    activity call made through Durable's retry."""

    def __init__(self, context: df.DurableOrchestrationContext, retry: RetryPolicy):
        self._context = context
        self._retry = df.RetryOptions(first_retry_interval_in_milliseconds=max(1, round(retry.interval_seconds * 1000)),
                                      max_number_of_attempts=retry.max_attempts)

    def call_activity(self, name: str, payload):
        # Results are plain JSON; naming their type keeps the SDK's strict-typing mode content.
        result_type = list if name == LIST_ACTIVITY else dict
        return self._context.call_activity_with_retry(name, self._retry, payload, expected_type=result_type)

    def task_all(self, tasks):
        return self._context.task_all(tasks)

    def set_custom_status(self, status) -> None:
        self._context.set_custom_status(status)

    # What pipeline.telemetry reads for the run's record: replay-safe values of the Durable context.
    @property
    def instance_id(self) -> str:
        return self._context.instance_id

    @property
    def current_utc_datetime(self):
        return self._context.current_utc_datetime

    @property
    def is_replaying(self) -> bool:
        return self._context.is_replaying


@bp.function_name(ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", input_type=dict)
def pipeline(context: df.DurableOrchestrationContext):
    request = context.get_input()  # pipeline.request.orchestration_input(...), checked by the starter
    retry = RetryPolicy.model_validate(request.get("retry", {}))
    # The core's orchestration, with the run's telemetry record and span (written once, not on replay).
    return (yield from observed_orchestration(RetryingActivities(context, retry), request))
