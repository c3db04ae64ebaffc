"""Azure Functions entry point (Python v2 programming model): a Durable Functions app made of the
blueprints azure_shim/ defines. Everything else lives in the cloud-agnostic core."""

import azure.durable_functions as df
import azure.functions as func

from azure_shim import BLUEPRINTS

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
