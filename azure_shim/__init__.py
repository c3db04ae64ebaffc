"""The Azure Durable Functions face of the pipeline: the only package that imports
azure.functions / azure.durable_functions. function_app.py exposes build_app(): a DFApp with BLUEPRINTS registered.

    http_start          POST /api/pipelines -> validate -> start the "pipeline" orchestration
    orchestrator        "pipeline": the core's pipeline.orchestration.orchestrate, retried activities
    activity_triggers   "list", "copy", "decompress", "transform" -> adapters/ -> the core
    housekeeping        "purge_history": daily timer, purges finished instances' history

Another cloud means another shim beside this one; the core does not change.
"""

import logging

from azure_shim.activity_triggers import bp as activity_triggers
from azure_shim.housekeeping import bp as housekeeping
from azure_shim.http_start import bp as http_start
from azure_shim.orchestrator import bp as orchestrator

BLUEPRINTS = (http_start, orchestrator, activity_triggers, housekeeping)


def build_app():
    """A DFApp with every blueprint registered: function_app.app, and a fresh one per local server
    (a FunctionApp indexes its functions once: get_functions() refuses a second call)."""
    import azure.durable_functions as df
    import azure.functions as func

    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    for blueprint in BLUEPRINTS:
        app.register_functions(blueprint)
    return app

# The storage SDK logs every HTTP request at INFO; in Application Insights that is noise and cost.
logging.getLogger("azure").setLevel(logging.WARNING)
