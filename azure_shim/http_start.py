"""The HTTP starter: POST /api/pipelines (function key) with a run request (pipeline.request).

    400  {"errors": ["config.processors[0].processor_config.src: ..."]}   nothing started
    202  Location + {"id", "statusQueryGetUri", ...}                     poll statusQueryGetUri

With an `instance_id` the POST is idempotent: if that instance exists and has not failed (it is
pending, running or completed), it is not started again and the same 202 points at it; a failed,
terminated or canceled one is started afresh under the same id (that is what a retry wants).
"""

from __future__ import annotations

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from azure_shim.names import ORCHESTRATOR, START_ROUTE, STARTER
from pipeline.config import ConfigError
from pipeline.request import orchestration_input, validate_request
from pipeline.settings import redact

bp = df.Blueprint()
log = logging.getLogger("pipeline.start")

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
