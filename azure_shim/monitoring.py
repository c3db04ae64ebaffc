"""Application Insights through OpenTelemetry, only when the operator turns it on.

The pipeline's telemetry (pipeline/telemetry.py) is plain `logging` records and opentelemetry-api
spans, which cost nothing until an SDK is configured. Azure Monitor's distro
(azure-monitor-opentelemetry) is that SDK here, and it costs ~20 MB of memory per worker, so it is
loaded only when the app setting PIPELINE_AZURE_MONITOR is true (function_app.py calls
configure_from_settings once, at start). It then exports the "pipeline" loggers (their records are
already redacted; a record's fields become customDimensions) and the spans, to the
APPLICATIONINSIGHTS_CONNECTION_STRING the distro reads. Its automatic instrumentations stay off:
they record request URLs, and a blob URL may carry a SAS token.
"""

from __future__ import annotations

import os

SETTING = "PIPELINE_AZURE_MONITOR"
# Every instrumentation the distro knows (1.8; a test compares this with the installed distro's
# list): none is wanted, see above.
INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "httpx", "httpx2", "psycopg2", "requests", "urllib",
                    "urllib3")


def enabled(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get(SETTING, "").strip().lower() in ("1", "true", "yes")


def configure_from_settings(environ=None) -> bool:
    """Configure the distro if the setting asks for it; returns whether it did."""
    if not enabled(environ):
        return False
    import logging

    from azure.monitor.opentelemetry import configure_azure_monitor

    # The records are INFO; the root logger's level (WARNING unless the host sets it) must not drop them.
    pipeline_logger = logging.getLogger("pipeline")
    if pipeline_logger.level == logging.NOTSET:
        pipeline_logger.setLevel(logging.INFO)

    configure_azure_monitor(logger_name="pipeline", enable_live_metrics=False,
                            instrumentation_options={name: {"enabled": False} for name in INSTRUMENTATIONS})
    return True
