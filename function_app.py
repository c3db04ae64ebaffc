"""Azure Functions entry point (Python v2 programming model): a Durable Functions app made of the
blueprints azure_shim/ defines. Everything else lives in the cloud-agnostic core."""

from azure_shim import build_app

app = build_app()
