"""Function names shared by the shim's modules and by the local `serve` endpoint."""

ORCHESTRATOR = "pipeline"
STARTER = "start_pipeline"
START_ROUTE = "pipelines"  # POST /api/pipelines
