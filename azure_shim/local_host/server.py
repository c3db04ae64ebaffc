"""`python -m local_runner serve`: the function app's HTTP contract on 127.0.0.1, for development
and tests (an Airflow DAG can run against it on a laptop). Production is Azure Durable Functions.

    POST /api/pipelines                                   the app's own HTTP functions (the starter,
    GET  /api/pipelines/{id}                              status, terminate), called with a real
    POST /api/pipelines/{id}/terminate                    DurableOrchestrationClient
    GET  /runtime/webhooks/durabletask/instances/{id}     statusQueryGetUri: 202 Pending/Running,
                                                          200 Completed/Failed/Terminated, 404 unknown
    POST /rpc-<token>/durabletask/orchestrators/{name}[/{id}]   the extension's RPC that the client
    GET  /rpc-<token>/durabletask/instances/{id}                calls (start, status, terminate,
    POST /rpc-<token>/durabletask/instances/{id}/terminate      purge), served by TaskHub
    DELETE /rpc-<token>/durabletask/instances/[{id}]            (purge also under /runtime/webhooks/)

The starter's client binding points its rpcBaseUrl back at this server, so the same start code
(validation, the operator's policy, idempotent instance ids, create_check_status_response) runs
here and on Azure.

Unlike `func start`, every route wants a key, as Azure does: the function key
(LOCAL_HOST_FUNCTION_KEY; generated and printed once when unset) in an `x-functions-key` header or
a `code=` query parameter; the status URLs also take the system key they carry (code=). The RPC
routes sit under a random path known only to this process (what the host's local RPC is: not
reachable from outside), and a start there is validated like the starter validates it. The `Host`
header must name the bound address (DNS rebinding), POST bodies must be `application/json` and at
most MAX_BODY bytes (CSRF with text/plain forms), and a request must arrive within
REQUEST_DEADLINE seconds (a stalled or dribbling client does not hold a thread).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from pipeline.request import INSTANCE_ID_PATTERN
from pipeline.settings import redact

log = logging.getLogger("local_host.server")

WEBHOOK = "/runtime/webhooks/durabletask/"  # the public management API (statusQueryGetUri)
MAX_BODY = 1 << 20  # a run request is a config: kilobytes, not megabytes
REQUEST_DEADLINE = 30.0  # seconds from the first byte of a request to its whole body
READ_TIMEOUT = 10.0  # seconds per socket read; an idle keep-alive connection is closed after it


class FunctionAppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app, host: str = "127.0.0.1", port: int = 7071, workers: int = 4,
                 hub_name: str = "pipelineslocal", system_key: str | None = None, function_key: str | None = None):
        """function_key: what every route wants (x-functions-key or code=); system_key: like the
        Durable extension's, put in the management URLs as code= and accepted by them. Either one
        left out is generated (random, for this server's life)."""
        from azure_shim.local_host.taskhub import TaskHub

        super().__init__((host, port), _Handler)
        self.function_key = function_key or secrets.token_urlsafe(32)
        self.system_key = system_key or secrets.token_urlsafe(32)
        # The host's local RPC: a path nobody outside this process knows.
        self.rpc = f"/rpc-{secrets.token_hex(16)}/durabletask/"
        bound = self.server_address[1]
        names = {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {host}
        self.allowed_hosts = None if host in ("0.0.0.0", "::", "") else {f"{n}:{bound}" for n in names}
        functions = self.hub_functions = app.get_functions()
        self.hub = TaskHub(functions, workers=workers, name=hub_name)
        self.http_functions = []  # (route pattern, function, methods)
        for fn in functions:
            trigger = fn.get_trigger()
            if trigger.type == "httpTrigger":
                methods = [str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"])]
                self.http_functions.append((_route_pattern(trigger.route or fn.get_function_name()), fn, methods))
        # One event loop for the async starter: the SDK's client keeps one aiohttp session bound to it.
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="starter-loop", daemon=True)
        self._loop_thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def _query(self) -> str:
        return f"taskHub={self.hub.name}&connection=Storage&code={self.system_key}"

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
            "rpcBaseUrl": f"{self.base_url}{self.rpc}",
        })

    def call_http_function(self, fn, method: str, url: str, headers: dict, body: bytes, route_params: dict):
        import azure.functions as func

        parts = urlsplit(url)
        req = func.HttpRequest(method=method, url=url, headers=headers, params=dict(parse_qsl(parts.query)),
                               route_params=route_params, body=body)
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
    timeout = READ_TIMEOUT

    def log_message(self, fmt, *args):  # access log at DEBUG: path only (a query may carry code=)
        log.debug("%s %s", self.command, urlsplit(self.path).path.replace(self.server.rpc, "/rpc-***/durabletask/"))

    def handle_one_request(self):
        # The whole request (line, headers, body) must arrive before the deadline; the handler
        # cancels it once the body is in. A socket timeout alone lets a client dribble forever.
        timer = self._deadline = threading.Timer(REQUEST_DEADLINE, self._expire)
        timer.daemon = True
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def _expire(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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

    def _refuse(self, status: int, error: str) -> None:
        self.close_connection = True  # whatever else the client sent is not read
        self._send(status, json.dumps({"error": error}))

    def _linger(self) -> None:
        """After refusing a body unread: stop writing and discard what the client still sends, for a
        moment, so that it reads our answer instead of a connection reset (a lingering close)."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            for _ in range(64):  # at most 4 MiB
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass

    def _body(self, kind: str = "api") -> bytes | None:
        """The request body, or None after answering a refusal (not JSON, too big, no length). The
        client's RPC posts a terminate with no body and no type; only the RPC may (its path is secret)."""
        empty = (self.headers.get("Content-Length") or "0") == "0" and not self.headers.get("Transfer-Encoding")
        if self.command == "POST" and not (kind == "rpc" and empty):
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                self._refuse(415, "the body must be application/json")
                return None
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send a Content-Length, not Transfer-Encoding")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._refuse(413, f"the body must be at most {MAX_BODY} bytes")
            self._linger()
            return None
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            return None
        self._deadline.cancel()
        return data

    def _authorized(self) -> str | None:
        """The route kind ('rpc', 'webhook', 'api') if the request may use it; None after refusing."""
        server = self.server
        if server.allowed_hosts is not None and (self.headers.get("Host") or "").lower() not in server.allowed_hosts:
            self._refuse(421, "the Host header does not name this server")
            return None
        parts = urlsplit(self.path)
        if parts.path.startswith(server.rpc):
            return "rpc"  # the path itself is the credential
        given = [self.headers.get("x-functions-key") or ""] + [v for k, v in parse_qsl(parts.query) if k == "code"]
        keys = [server.function_key] + ([server.system_key] if parts.path.startswith(WEBHOOK) else [])
        if not any(hmac.compare_digest(g.encode(), k.encode()) for g in given for k in keys):
            self._refuse(401, "a valid function key is required (x-functions-key header or code=)")
            return None
        return "webhook" if parts.path.startswith(WEBHOOK) else "api"

    def _rest(self, kind: str, resource: str) -> str | None:
        prefix = (self.server.rpc if kind == "rpc" else WEBHOOK) + resource
        path = urlsplit(self.path).path
        return path[len(prefix):] if kind in ("rpc", "webhook") and path.startswith(prefix) else None

    def do_GET(self):
        kind = self._authorized()
        if kind is None or self._body() is None:
            return
        rest = self._rest(kind, "instances/")
        if rest is not None:
            return self._status(rest)
        if kind != "api":
            return self._send(404, json.dumps({"error": "no such route"}))
        return self._http_function("GET", b"")

    def _status(self, instance_id: str) -> None:
        inst = self.server.hub.get(instance_id)
        if inst is None:
            return self._send(404)
        status = inst.status()
        self._send(202 if status["runtimeStatus"] in ("Pending", "Running") else 200, json.dumps(status))

    def do_DELETE(self):
        """Purge history: one instance (instances/{id}) or many (instances/?createdTimeFrom=...)."""
        kind = self._authorized()
        if kind is None or self._body() is None:
            return
        rest = self._rest(kind, "instances/")
        if rest is None:
            return self._send(404, json.dumps({"error": "no such route"}))
        query = dict(parse_qsl(urlsplit(self.path).query))
        try:
            window = {k: _utc(query[name]) for k, name in (("created_from", "createdTimeFrom"),
                                                            ("created_to", "createdTimeTo")) if query.get(name)}
        except ValueError as exc:
            return self._send(400, json.dumps({"ExceptionMessage": str(exc)[:200]}))
        if not rest and "created_from" not in window:
            return self._send(400, json.dumps({"ExceptionMessage": "createdTimeFrom is required"}))
        statuses = set(query["runtimeStatus"].split(",")) if query.get("runtimeStatus") else None
        deleted = self.server.hub.purge(rest or None, statuses=statuses, **window)
        # The extension answers 404 when nothing matched.
        self._send(200 if deleted else 404, json.dumps({"instancesDeleted": deleted}))

    def do_POST(self):
        kind = self._authorized()
        if kind is None:
            return
        body = self._body(kind)
        if body is None:
            return
        rest = self._rest(kind, "orchestrators/")
        if kind == "rpc" and rest is not None:
            return self._start(rest, body)
        rest = self._rest(kind, "instances/")
        if rest is not None and rest.endswith("/terminate"):
            return self._terminate(rest[: -len("/terminate")])
        if kind != "api":
            return self._send(404, json.dumps({"error": "no such route"}))
        return self._http_function("POST", body)

    def _start(self, rest: str, body: bytes) -> None:
        from azure_shim.local_host.taskhub import TaskHubError

        name, _, instance_id = rest.partition("/")
        try:
            input_json = _checked_start_input(body)
            if instance_id and not re.fullmatch(INSTANCE_ID_PATTERN, instance_id):
                raise ValueError(f"instance id {instance_id[:120]!r} does not match {INSTANCE_ID_PATTERN}")
            inst = self.server.hub.start(name, instance_id or uuid.uuid4().hex, input_json)
        except (TaskHubError, ValueError) as exc:
            return self._send(400, json.dumps({"ExceptionMessage": redact(str(exc))}))
        payload = self.server.management_urls(inst.instance_id)
        return self._send(202, json.dumps(payload), {"Location": payload["statusQueryGetUri"]})

    def _terminate(self, instance_id: str) -> None:
        """The extension's terminate: 202 accepted, 404 unknown, 410 already finished."""
        reason = dict(parse_qsl(urlsplit(self.path).query)).get("reason") or "terminated"
        found = self.server.hub.terminate(instance_id, reason[:200])
        return self._send({None: 404, False: 410, True: 202}[found])

    def _http_function(self, method: str, body: bytes) -> None:
        parts = urlsplit(self.path)
        route = parts.path[len("/api/"):] if parts.path.startswith("/api/") else ""
        matches = [(m, fn, methods) for pattern, fn, methods in self.server.http_functions
                   if (m := pattern.fullmatch(route))]
        if not matches:
            return self._send(404, json.dumps({"error": f"no function at {parts.path}"}))
        allowed = [x for x in matches if method in x[2]]
        if not allowed:
            accepts = sorted({m for x in matches for m in x[2]})
            return self._send(405, json.dumps({"error": f"{parts.path} accepts {', '.join(accepts)}"}))
        match, fn, _ = allowed[0]
        url = f"{self.server.base_url}{self.path}"
        try:
            resp = self.server.call_http_function(fn, method, url, dict(self.headers), body, match.groupdict())
        except Exception as exc:  # what the host does with an unhandled exception: 500, logged
            log.exception("function %s failed", fn.get_function_name())
            return self._send(500, json.dumps({"error": f"{type(exc).__name__} in {fn.get_function_name()}"}))
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
        if resp.mimetype and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = resp.mimetype
        self._send(resp.status_code, resp.get_body(), headers)


def _route_pattern(route: str) -> re.Pattern:
    """A Functions route template ('pipelines/{instance_id}/terminate') as a regex with named groups.
    Only plain {name} parameters: the app uses no optional or constrained ones."""
    parts = re.split(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", route)
    if any("{" in p or "}" in p for p in parts[::2]):
        raise ValueError(f"route {route!r}: only plain {{name}} parameters are supported here")
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts)))


def _utc(text: str):
    import datetime as dt

    when = dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _checked_start_input(body: bytes) -> str | None:
    """The orchestration input of an RPC start, validated as the starter validates a request (the
    operator's policy included): the RPC is no way around the starter. Returns the input's JSON."""
    from pipeline.config import ConfigError
    from pipeline.request import validate_request

    try:
        data = json.loads(body) if body.strip() else None
        # The SDK posts its df_dumps'ed input as a JSON string; the extension keeps that text.
        parsed = json.loads(data) if isinstance(data, str) else data
    except (ValueError, RecursionError):
        raise ValueError("the orchestration input is not a JSON document this service reads") from None
    try:
        validate_request(parsed, "orchestration input")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return data if isinstance(data, str) else json.dumps(data)


def serve(host: str, port: int, workers: int) -> None:
    import os

    from azure_shim import build_app

    function_key = os.environ.get("LOCAL_HOST_FUNCTION_KEY") or None
    server = FunctionAppServer(build_app(), host, port, workers, os.environ.get("TASK_HUB_NAME", "pipelineslocal"),
                               os.environ.get("LOCAL_HOST_SYSTEM_KEY") or None, function_key)
    print(f"serving the function app on {server.base_url} (POST {server.base_url}/api/pipelines with the function "
          "key in an x-functions-key header); Ctrl-C stops", flush=True)
    if function_key is None:
        print(f"function key (LOCAL_HOST_FUNCTION_KEY is unset; generated for this run): {server.function_key}",
              flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
