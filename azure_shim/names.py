"""Function names shared by the shim's modules and by the local `serve` endpoint."""

ORCHESTRATOR = "pipeline"
STARTER = "start_pipeline"
START_ROUTE = "pipelines"  # POST /api/pipelines
STATUS = "pipeline_status"
STATUS_ROUTE = "pipelines/{instance_id}"  # GET /api/pipelines/{instance_id}
TERMINATOR = "terminate_pipeline"
TERMINATE_ROUTE = "pipelines/{instance_id}/terminate"  # POST /api/pipelines/{instance_id}/terminate
