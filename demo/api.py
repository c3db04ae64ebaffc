"""The demo's stand-ins for the APIs the shipped sourcemarts fetch from (sourcemarts/acme.json:
https://api.acme.example, sourcemarts/globex.json: https://billing.globex.example): one small HTTP
server per API on 127.0.0.1, each serving its sourcemart's files and wanting its own token in
`Authorization` (401 otherwise), as the real ones would. The data is generated, small and
deterministic; expected_csv_rows() says what the chain must write from it.
"""

from __future__ import annotations

import hmac
import http.server
import io
import json
import threading
import zipfile


def _jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def orders(region: str, n: int, first: int) -> list[dict]:
    return [{"id": f"{region}-{first + i}", "customer": {"id": f"c{(first + i) % 17}", "region": region},
             "total": round(10 + (first + i) * 1.25, 2), "items": [{"sku": f"SKU-{i % 7}", "qty": 1 + i % 3}]}
            for i in range(n)]


RETURNS = [{"id": f"r{i}", "order": {"id": f"eu-{i * 3}"}, "reason": ["damaged", "late", "wrong size"][i % 3]}
           for i in range(12)]
ACCOUNTS = [{"id": 100 + i, "name": f"Account {i}", "address": {"country": ["DE", "FR", "NL", "US"][i % 4]}}
            for i in range(8)]
INVOICES = [{"id": f"inv-{i}", "account": 100 + i % 8, "amount": 50 + i} for i in range(30)]
AUDIT = [{"at": f"2026-12-01T00:{i:02d}:00Z", "event": "login", "account": 100 + i % 8} for i in range(20)]

ACME_FILES = {
    "/exports/eu/latest.zip": _zip({"eu/orders.jsonl": _jsonl(orders("eu", 120, 0))}),
    "/exports/us/latest.zip": _zip({"us/orders.jsonl": _jsonl(orders("us", 80, 1000))}),
    "/exports/returns.zip": _zip({"returns/returns.jsonl": _jsonl(RETURNS)}),
}
GLOBEX_FILES = {
    "/v2/accounts.jsonl": _jsonl(ACCOUNTS),
    "/v2/invoices.jsonl": _jsonl(INVOICES),
    "/v2/audit.jsonl": _jsonl(AUDIT),
}


def expected_csv_rows() -> dict[str, list[list[str]]]:
    """raw/<path> -> the rows (header first) the shipped sourcemarts' transforms write from this data."""
    def order_rows(region, n, first):  # numbers as their shortest round-trip text (orjson's, = repr)
        return [["id", "customer", "total"]] + [[o["id"], o["customer"]["id"], repr(o["total"])]
                                                for o in orders(region, n, first)]
    return {
        "acme/csv/drop_eu/latest/eu/orders.csv": order_rows("eu", 120, 0),
        "acme/csv/drop_us/latest/us/orders.csv": order_rows("us", 80, 1000),
        "acme/returns/csv/returns/returns/returns.csv": [["return_id", "order_id", "reason"]] + [
            [r["id"], r["order"]["id"], r["reason"]] for r in RETURNS],
        "globex/accounts/csv/accounts.csv": [["account_id", "name", "country"]] + [
            [str(a["id"]), a["name"], a["address"]["country"]] for a in ACCOUNTS],
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        api = self.server
        given = (self.headers.get("Authorization") or "").encode()
        data = api.files.get(self.path)
        if not hmac.compare_digest(given, api.token.encode()):
            status, data = 401, b'{"error": "a valid token is required"}'
        elif data is None:
            status, data = 404, b'{"error": "no such export"}'
        else:
            status = 200
            api.served.append(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if status != 200 else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LocalApi(http.server.ThreadingHTTPServer):
    """One API on 127.0.0.1 (a free port unless given), in a daemon thread."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes], token: str, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.files, self.token, self.served = files, token, []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
