"""`python -m local_runner serve`: the function app's HTTP contract on 127.0.0.1, for development
and tests (an Airflow DAG can run against it on a laptop). Production is Azure Durable Functions.

    POST /api/pipelines                                   the app's own HTTP starter function, called
                                                          with a real DurableOrchestrationClient
    GET  /runtime/webhooks/durabletask/instances/{id}     statusQueryGetUri: 202 Pending/Running,
                                                          200 Completed/Failed/Terminated, 404 unknown
    POST /durabletask/orchestrators/{name}[/{id}]         the extension's RPC that the client calls
    GET  /durabletask/instances/{id}                      (start, status), served by TaskHub

The starter's client binding points its rpcBaseUrl back at this server, so the same start code
(validation, idempotent instance ids, create_check_status_response) runs here and on Azure.
Function keys are not checked, as with `func start`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("local_host.server")

WEBHOOK = "/runtime/webhooks/durabletask/"  # the public management API (statusQueryGetUri)
RPC = "/durabletask/"  # what the client binding's rpcBaseUrl points at (the host's local RPC)


class FunctionAppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app, host: str = "127.0.0.1", port: int = 7071, workers: int = 4,
                 hub_name: str = "pipelineslocal", system_key: str | None = None):
        """system_key: like the Durable extension's system key, put in the management URLs as
        code= and required by them; lets a caller (an Airflow DAG, a test) see that it is kept
        secret. None: no key, as with `func start`."""
        from azure_shim.local_host.taskhub import TaskHub

        super().__init__((host, port), _Handler)
        self.system_key = system_key
        functions = self.hub_functions = app.get_functions()
        self.hub = TaskHub(functions, workers=workers, name=hub_name)
        self.http_functions = {}
        for fn in functions:
            trigger = fn.get_trigger()
            if trigger.type == "httpTrigger":
                methods = [str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"])]
                self.http_functions[trigger.route or fn.get_function_name()] = (fn, methods)
        # One event loop for the async starter: the SDK's client keeps one aiohttp session bound to it.
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="starter-loop", daemon=True)
        self._loop_thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def _query(self) -> str:
        return f"taskHub={self.hub.name}&connection=Storage" + (f"&code={self.system_key}" if self.system_key else "")

    def management_urls(self, instance_id: str = "INSTANCEID") -> dict:
        """The management URLs of an instance (with the placeholder id: the binding's templates)."""
        instances, query = f"{self.base_url}{WEBHOOK}instances/{instance_id}", self._query()
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{instances}?{query}",
            "sendEventPostUri": f"{instances}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instances}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instances}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instances}?{query}",
            "restartPostUri": f"{instances}/restart?{query}",
            "suspendPostUri": f"{instances}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instances}/resume?reason={{text}}&{query}",
        }

    def client_binding(self) -> str:
        """The JSON the Functions host hands a durableClient binding, pointing at this server."""
        start, query = f"{self.base_url}{WEBHOOK}orchestrators/{{functionName}}[/{{instanceId}}]", self._query()
        return json.dumps({
            "taskHubName": self.hub.name,
            "creationUrls": {
                "createNewInstancePostUri": f"{start}?{query}",
                "createAndWaitOnNewInstancePostUri":
                    f"{start}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}",
            },
            "managementUrls": self.management_urls(),
            "baseUrl": f"{self.base_url}{WEBHOOK}",
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": f"{self.base_url}{RPC}",
        })

    def call_http_function(self, fn, method: str, url: str, headers: dict, body: bytes):
        import azure.functions as func

        parts = urlsplit(url)
        req = func.HttpRequest(method=method, url=url, headers=headers, params=dict(parse_qsl(parts.query)),
                               route_params={}, body=body)
        kwargs = {}
        for binding in fn.get_bindings():
            if binding.type == "httpTrigger":
                kwargs[binding.name] = req
            elif binding.type == "durableClient":
                kwargs[binding.name] = self.client_binding()
        result = fn.get_user_function()(**kwargs)
        if asyncio.iscoroutine(result):
            result = asyncio.run_coroutine_threadsafe(result, self.loop).result()
        return result

    def server_close(self) -> None:
        from azure.durable_functions.models.utils import http_utils

        super().server_close()
        asyncio.run_coroutine_threadsafe(http_utils._close_session(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(10)
        self.hub.close()


class _Handler(BaseHTTPRequestHandler):
    server: FunctionAppServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # access log at DEBUG; query strings may carry a code= key
        log.debug("%s %s", self.command, urlsplit(self.path).path)

    def _send(self, status: int, body: bytes | str | None = b"", headers: dict | None = None) -> None:
        data = body.encode() if isinstance(body, str) else (body or b"")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if not any(k.lower() == "content-type" for k in (headers or {})) and data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, resource: str) -> tuple[str | None, bool]:
        """(the rest of the path after the management API's or the RPC's `resource`, or None;
        whether the caller may use it). The public management API wants the system key, when
        there is one; the local RPC does not."""
        parts = urlsplit(self.path)
        for prefix in (WEBHOOK, RPC):
            if parts.path.startswith(prefix + resource):
                key = self.server.system_key
                allowed = prefix == RPC or not key or dict(parse_qsl(parts.query)).get("code") == key
                return parts.path[len(prefix + resource):], allowed
        return None, True

    def do_GET(self):
        rest, allowed = self._route("instances/")
        if not allowed:
            return self._send(401, json.dumps({"error": "a valid code= is required"}))
        if rest is not None:
            return self._status(rest)
        return self._http_function("GET")

    def _status(self, instance_id: str) -> None:
        inst = self.server.hub.get(instance_id)
        if inst is None:
            return self._send(404)
        status = inst.status()
        self._send(202 if status["runtimeStatus"] in ("Pending", "Running") else 200, json.dumps(status))

    def do_POST(self):
        rest, allowed = self._route("orchestrators/")
        if not allowed:
            return self._send(401, json.dumps({"error": "a valid code= is required"}))
        if rest is not None:
            return self._start(rest)
        return self._http_function("POST")

    def _start(self, rest: str) -> None:
        from azure_shim.local_host.taskhub import TaskHubError

        name, _, instance_id = rest.partition("/")
        body = self._body()
        data = json.loads(body) if body.strip() else None
        # The SDK posts its df_dumps'ed input as a JSON string; the extension keeps that text.
        input_json = data if isinstance(data, str) or data is None else json.dumps(data)
        try:
            inst = self.server.hub.start(name, instance_id or uuid.uuid4().hex, input_json)
        except TaskHubError as exc:
            return self._send(400, json.dumps({"ExceptionMessage": str(exc)}))
        payload = self.server.management_urls(inst.instance_id)
        return self._send(202, json.dumps(payload), {"Location": payload["statusQueryGetUri"]})

    def _http_function(self, method: str) -> None:
        parts = urlsplit(self.path)
        route = parts.path[len("/api/"):] if parts.path.startswith("/api/") else None
        found = self.server.http_functions.get(route)
        if found is None:
            return self._send(404, json.dumps({"error": f"no function at {parts.path}"}))
        fn, methods = found
        if method not in methods:
            return self._send(405, json.dumps({"error": f"{parts.path} accepts {', '.join(methods)}"}))
        url = f"{self.server.base_url}{self.path}"
        try:
            resp = self.server.call_http_function(fn, method, url, dict(self.headers), self._body())
        except Exception as exc:  # what the host does with an unhandled exception: 500, logged
            log.exception("function %s failed", fn.get_function_name())
            return self._send(500, json.dumps({"error": f"{type(exc).__name__} in {fn.get_function_name()}"}))
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
        if resp.mimetype and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = resp.mimetype
        self._send(resp.status_code, resp.get_body(), headers)


def serve(host: str, port: int, workers: int) -> None:
    import os

    from azure_shim import build_app

    server = FunctionAppServer(build_app(), host, port, workers, os.environ.get("TASK_HUB_NAME", "pipelineslocal"),
                               os.environ.get("LOCAL_HOST_SYSTEM_KEY") or None)
    print(f"serving the function app on {server.base_url} (POST {server.base_url}/api/pipelines); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
