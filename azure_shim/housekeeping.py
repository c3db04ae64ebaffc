"""Housekeeping: a timer-triggered function that purges the history of finished orchestrations.

Durable Functions on Azure Storage keeps every instance's history and state in the task hub's
tables and blobs until someone purges them, so a hub running many small runs grows without limit
(and slows status queries). Once a day this function asks the Durable extension, through the
same durable client the starter uses, to purge instances that are Completed, Failed or Terminated
and were created more than PIPELINE_PURGE_AFTER_DAYS days ago (default 30). Running and pending
instances are never purged, whatever their age.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()
log = logging.getLogger("pipeline.housekeeping")

PURGE_FUNCTION = "purge_history"
PURGE_SCHEDULE = "0 30 2 * * *"  # NCRONTAB (with seconds): every day at 02:30 UTC
AGE_SETTING = "PIPELINE_PURGE_AFTER_DAYS"
DEFAULT_AGE_DAYS = 30
FINISHED = [df.OrchestrationRuntimeStatus.Completed, df.OrchestrationRuntimeStatus.Failed,
            df.OrchestrationRuntimeStatus.Terminated]
# The extension wants a lower bound; nothing in a hub is older than this.
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def purge_age(environ=None) -> dt.timedelta:
    """The age past which finished instances are purged: PIPELINE_PURGE_AFTER_DAYS (1 to 3650)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(AGE_SETTING, "").strip()
    if not raw:
        return dt.timedelta(days=DEFAULT_AGE_DAYS)
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= 3650:
        raise ValueError(f"app setting {AGE_SETTING} must be a whole number of days from 1 to 3650, not {raw[:20]!r}")
    return dt.timedelta(days=days)


@bp.function_name(PURGE_FUNCTION)
@bp.timer_trigger(arg_name="timer", schedule=PURGE_SCHEDULE, run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def purge_history(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    cutoff = dt.datetime.now(dt.timezone.utc) - purge_age()
    result = await client.purge_instance_history_by(created_time_from=EPOCH, created_time_to=cutoff,
                                                    runtime_status=FINISHED)
    log.info("purged the history of %d finished instance(s) created before %s", result.instances_deleted,
             cutoff.isoformat(timespec="seconds"))
