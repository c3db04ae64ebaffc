"""Azure Functions entry point (Python v2 programming model): a Durable Functions app made of the
blueprints azure_shim/ defines. Everything else lives in the cloud-agnostic core."""

from azure_shim import build_app
from azure_shim.monitoring import configure_from_settings

configure_from_settings()  # Application Insights via OpenTelemetry, only if PIPELINE_AZURE_MONITOR is true
app = build_app()
