"""The HTTP functions, all with the function key (AuthLevel.FUNCTION):

POST /api/pipelines with a run request (pipeline.request):
    400  {"errors": ["config.processors[0].processor_config.src: ..."]}   nothing started
    202  Location + {"id", "statusQueryGetUri", ...}                     poll statusQueryGetUri

GET /api/pipelines/{instance_id}: the instance's status, with the codes and body of the Durable
extension's status URL (202 Pending/Running, 200 Completed/Failed/Terminated, 404 unknown). This is
what Airflow polls: a function route wants the function key, which the caller already holds and
sends as a header, where statusQueryGetUri carries a *system* key (code=) in its URL, and a URL
ends up in logs, XCom and rendered fields. statusQueryGetUri stays for other clients.

POST /api/pipelines/{instance_id}/terminate: terminate a running instance (202; 404 unknown; 410
already finished). Airflow calls it when its wait task is killed, cleared or times out, so no
orchestration keeps running for a DAG run that gave up on it.

With an `instance_id` the POST is idempotent: if that instance exists and has not failed (it is
pending, running or completed), it is not started again and the same 202 points at it; a failed,
terminated or canceled one is started afresh under the same id (that is what a retry wants).
"""

from __future__ import annotations

import json
import logging

import azure.durable_functions as df
import azure.functions as func

import re

from azure_shim.names import ORCHESTRATOR, START_ROUTE, STARTER, STATUS, STATUS_ROUTE, TERMINATE_ROUTE, TERMINATOR
from pipeline.config import ConfigError
from pipeline.request import INSTANCE_ID_PATTERN, orchestration_input, validate_request
from pipeline.settings import redact

bp = df.Blueprint()
log = logging.getLogger("pipeline.start")

_IN_PROGRESS = {df.OrchestrationRuntimeStatus.Pending, df.OrchestrationRuntimeStatus.Running,
                df.OrchestrationRuntimeStatus.ContinuedAsNew}
_RUNNING_OR_DONE = {df.OrchestrationRuntimeStatus.Pending, df.OrchestrationRuntimeStatus.Running,
                    df.OrchestrationRuntimeStatus.Suspended, df.OrchestrationRuntimeStatus.ContinuedAsNew,
                    df.OrchestrationRuntimeStatus.Completed}


def _bad_request(errors: list[str]) -> func.HttpResponse:
    body = {"error": "the run request is invalid; nothing was started", "errors": [redact(e) for e in errors]}
    return func.HttpResponse(json.dumps(body), status_code=400, mimetype="application/json")


@bp.function_name(STARTER)
@bp.route(route=START_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def start_pipeline(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        body = req.get_json()
    except (ValueError, RecursionError):  # not JSON, a 5,000-digit integer, nesting beyond the parser's depth
        return _bad_request(["(root): the body is not a JSON document this service reads"])
    try:
        request = validate_request(body)
    except ConfigError as exc:
        return _bad_request(exc.errors)

    instance_id = request.instance_id
    if instance_id:
        existing = await client.get_status(instance_id)
        if existing and existing.runtime_status in _RUNNING_OR_DONE:
            log.info("instance %s is %s: not started again", instance_id, existing.runtime_status.value)
            return client.create_check_status_response(req, instance_id)
    instance_id = await client.start_new(ORCHESTRATOR, instance_id, orchestration_input(request))
    log.info("started %s for %s/%s", instance_id, request.config.sourcemart, request.config.table)
    return client.create_check_status_response(req, instance_id)


def _json(status_code: int, body) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status_code, mimetype="application/json")


async def _existing(req: func.HttpRequest, client: df.DurableOrchestrationClient, **options):
    """(instance id, its status) named by the route, or (None, the 400/404 answer to give)."""
    instance_id = req.route_params.get("instance_id") or ""
    if not re.fullmatch(INSTANCE_ID_PATTERN, instance_id):
        return None, _json(400, {"error": f"an instance id matches {INSTANCE_ID_PATTERN}"})
    status = await client.get_status(instance_id, **options)
    if status is None or status.runtime_status is None:
        return None, _json(404, {"error": f"no instance {instance_id}"})
    return instance_id, status


@bp.function_name(STATUS)
@bp.route(route=STATUS_ROUTE, methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def pipeline_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id, status = await _existing(req, client, show_input=True)
    if instance_id is None:
        return status
    body = status.to_json()
    body.pop("history", None)
    return _json(202 if status.runtime_status in _IN_PROGRESS else 200, body)


@bp.function_name(TERMINATOR)
@bp.route(route=TERMINATE_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def terminate_pipeline(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id, status = await _existing(req, client)
    if instance_id is None:
        return status
    if status.runtime_status not in _IN_PROGRESS:
        return _json(410, {"error": f"instance {instance_id} is {status.runtime_status.value}: nothing to terminate"})
    reason = (req.params.get("reason") or "terminated by its caller")[:200]
    await client.terminate(instance_id, reason)
    log.info("terminating %s: %s", instance_id, reason)
    return _json(202, {"id": instance_id, "terminating": True})
