"""HTTP API sources: one streamed GET per location, over urllib3. Header values (tokens, keys) come
from app settings named in `headers_from_env`, never from the config. When a seekable reader is
needed (a zip), the server must answer Range requests; reads then go through the ranged reader.

Transport (one pool manager per process):
  * a pooled keep-alive connection per origin, so the ranged reads of a zip reuse one TCP+TLS
    connection instead of opening one each;
  * retries with backoff on connection failures and on 429/500/502/503/504, honouring Retry-After
    (capped: a server does not get to park a unit for an hour);
  * every connection is checked against the operator's policy (pipeline.policy) on the addresses
    the name resolved to, and then on the address actually connected to, so a name that resolves
    (or re-resolves: DNS rebinding) to loopback, private, link-local or metadata addresses is
    refused unless the operator allowlisted that host;
  * redirects are followed here, not by urllib3: only to http(s) URLs the policy allows, at most
    MAX_REDIRECTS, and a redirect to another origin (scheme, host, port) drops *every* configured
    header (urllib3 would keep e.g. X-Api-Key; it drops only Authorization and Cookie);
  * a header secret is sent only to the origins the operator bound it to, and a value holding CR,
    LF or NUL is refused before anything is sent (the error names the setting, never the value).

Limits: `max_bytes` (what the source may send in all; a zip's declared size is checked up front)
and `deadline_s` (the whole download, retries included: a watchdog shuts the socket down when it
passes, since a server trickling a byte per second never trips a per-read timeout).

Kept from before: a body that ends before its Content-Length is an error; every Range answer is
checked (206, the asked-for start, the same total size, the pinned ETag); a server may answer fewer
bytes than asked, and the rest is asked for again.
"""

from __future__ import annotations

import io
import re
import socket
import sys
import threading
import time
from typing import BinaryIO, Iterator
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NameResolutionError, NewConnectionError
from urllib3.util import connection as _connection

from mounters.base import safe_relative
from mounters.ranged import open_ranged
from pipeline.errors import LimitExceeded, MissingSource, TransientError
from pipeline.policy import PolicyError, current, origin_of
from pipeline.settings import get_setting

RANGE_BLOCK = 4 << 20
READ_BUFFER = 1 << 20
MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 30.0  # seconds; a longer Retry-After is waited this long, then retried
CONNECT_TIMEOUT = 15.0
_REDIRECTS = (301, 302, 303, 307, 308)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


# GET is idempotent: a refused or reset connection is asked again by urllib3. Redirects and 429/5xx
# answers are ours: urllib3 would read a retried answer's whole body (an endless one, endlessly).
RETRY = urllib3.Retry(total=3, connect=2, read=1, status=0, other=0, redirect=0, raise_on_redirect=False,
                      allowed_methods=frozenset({"GET"}), backoff_factor=0.5, backoff_max=8.0,
                      respect_retry_after_header=False)  # else it retries 429/503 itself, draining bodies
STATUS_RETRIES = 3
_RETRY_STATUSES = (429, 500, 502, 503, 504)


def _retry_wait(resp, attempt: int) -> float:
    """Retry-After when the server sends one (seconds or an HTTP date; capped), else backoff."""
    after = resp.headers.get("Retry-After")
    if after:
        try:
            return min(max(RETRY.parse_retry_after(after), 0.0), MAX_RETRY_AFTER)
        except HTTPError:  # an unparsable value: back off as if there were none
            pass
    return min(0.5 * 2 ** attempt, 8.0)


class _Guarded:
    """A connection that refuses addresses the policy does not allow, before and after connecting."""

    host: str
    port: int

    def _new_conn(self) -> socket.socket:
        policy = current()
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        for *_, sockaddr in infos:  # every answer: a name must not mix public and private addresses
            policy.check_address(self.host, self.port, sockaddr[0])
        last: OSError | None = None
        for _family, _, _, _, sockaddr in infos:
            try:
                sock = _connection.create_connection((sockaddr[0], self.port), self.timeout,
                                                     source_address=self.source_address,
                                                     socket_options=self.socket_options)
            except socket.timeout as exc:
                raise ConnectTimeoutError(self, f"connecting to {self.host} timed out") from exc
            except OSError as exc:
                last = exc
                continue
            try:
                policy.check_address(self.host, self.port, sock.getpeername()[0])
            except BaseException:
                sock.close()
                raise
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


_pool = urllib3.PoolManager(num_pools=32, maxsize=8, retries=RETRY)
_pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class _Deadline:
    """The whole download's deadline: checked between requests, and enforced on a blocked read by
    shutting the current connection's socket down."""

    def __init__(self, location: dict, label: str):
        self.seconds = location.get("deadline_s", 1800.0)
        self.end = time.monotonic() + self.seconds
        self.label = label
        self.expired = False
        self._resp = None
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        sock = getattr(getattr(self._resp, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def watch(self, resp) -> None:
        self._resp = resp
        if self.expired:
            resp.close()
        self.check()

    def check(self) -> None:
        if self.expired:
            raise TransientError(f"{self.label}: the download did not finish within deadline_s={self.seconds:g} s")

    def cancel(self) -> None:
        self._timer.cancel()


def describe(location: dict) -> str:
    p = urlsplit(location["url"])  # no query string: it is not ours to print
    label = f"http:{p.scheme}://{p.netloc}{p.path}"
    reached = urlsplit(current().reached_url(location["url"]))
    return label if reached.netloc == p.netloc and reached.scheme == p.scheme else \
        f"{label} (via {reached.scheme}://{reached.netloc})"


def _name(location: dict) -> str:
    name = location.get("name") or urlsplit(location["url"]).path.rstrip("/").rsplit("/", 1)[-1] or "download"
    return safe_relative(name, f"{describe(location)}: name")  # it names the output: no '..', no absolute path


def iter_files(location: dict) -> Iterator[dict]:
    return iter([{"location": location, "name": _name(location), "size": None}])


def _secret_headers(location: dict, url: str) -> dict[str, str]:
    """Configured header -> value, each bound by the policy to the origin actually reached (url);
    checked before sending."""
    policy, out = current(), {}
    for header, setting in location.get("headers_from_env", {}).items():
        policy.check_header_setting(setting, url)
        value = get_setting(setting)
        if any(c in value for c in "\r\n\0"):
            raise PolicyError(f"app setting {setting!r} holds a CR, LF or NUL character, so it is not sent as "
                              f"header {header!r} (fix the setting's value)")
        out[header] = value
    return out


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None) or exc
    return f"{type(inner).__name__}: {inner}" if not isinstance(inner, str) else inner


def _get(location: dict, extra: dict | None = None, deadline: _Deadline | None = None) -> urllib3.BaseHTTPResponse:
    """One GET (redirects followed under the policy); a non-2xx answer is an OSError naming the URL."""
    label, policy = describe(location), current()
    url = policy.reached_url(location["url"])
    policy.check_url(url)
    secret = _secret_headers(location, url)
    headers, origin = {**secret, **(extra or {})}, origin_of(url)
    timeout_s = location.get("timeout_s", 60.0)
    timeout = urllib3.Timeout(connect=min(timeout_s, CONNECT_TIMEOUT), read=timeout_s)
    redirects = retries = 0
    while redirects <= MAX_REDIRECTS:
        if deadline is not None:
            deadline.check()
        try:
            resp = _pool.urlopen("GET", url, headers=headers, redirect=False, preload_content=False,
                                 decode_content=False, enforce_content_length=False, timeout=timeout,
                                 retries=RETRY)  # Content-Length: checked by _Body, naming both counts
        except HTTPError as exc:
            if deadline is not None:
                deadline.check()
            raise OSError(f"{label}: GET failed: {_reason(exc)}") from None
        if deadline is not None:
            deadline.watch(resp)
        if resp.status in _REDIRECTS and resp.headers.get("Location"):
            resp.close()  # the body of a redirect is not ours to read (nor to wait for)
            target = urljoin(url, resp.headers["Location"])
            try:
                policy.check_url(target)
            except PolicyError as exc:
                raise PolicyError(f"{label}: a redirect to {describe({'url': target})} was refused: {exc}") from None
            if origin_of(target) != origin:  # the configured headers stay with the origin they were bound to
                headers = dict(extra or {})
            url, redirects = target, redirects + 1
            continue
        if resp.status in _RETRY_STATUSES and retries < STATUS_RETRIES:
            wait = _retry_wait(resp, retries)
            resp.close()  # never read: the body of an error is not worth waiting for
            if deadline is not None and time.monotonic() + wait > deadline.end:
                raise TransientError(f"{label}: GET answered {resp.status}; retrying after {wait:g} s would pass "
                                     f"deadline_s={deadline.seconds:g}")
            time.sleep(wait)
            retries += 1
            continue
        if resp.status in (404, 410):
            resp.close()
            raise MissingSource(f"{label}: GET answered {resp.status} {resp.reason or ''}".rstrip() +
                                " (no such resource: fix the URL)")
        if not 200 <= resp.status < 300:
            resp.close()
            why = ": the file changed since it was first read" if resp.status == 412 and "If-Match" in headers else ""
            raise OSError(f"{label}: GET answered {resp.status} {resp.reason or ''}".rstrip() + why)
        return resp
    raise OSError(f"{label}: more than {MAX_REDIRECTS} redirects")


def _content_length(resp) -> int | None:
    value = resp.headers.get("Content-Length")
    if value is None or "chunked" in resp.headers.get("Transfer-Encoding", "").lower():
        return None
    try:
        return int(value)
    except ValueError:
        return None


class _Body(io.RawIOBase):
    """A GET response body. Counts what it reads (like the ranged reader, so source_stats reports
    it) and fails when the connection ends before Content-Length bytes arrived."""

    def __init__(self, resp, label: str, max_bytes: int, deadline: _Deadline):
        self._resp = resp
        self.label = label
        self.name = label
        self.size = _content_length(resp)  # None when chunked or read-until-close
        self.bytes_fetched = 0
        self.requests = 1
        self._done = False
        self._max = max_bytes
        self._deadline = deadline
        if self.size is not None and self.size > max_bytes:
            raise LimitExceeded(f"{label}: the body is {self.size} bytes, more than max_bytes={max_bytes}")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self._resp.readinto(memoryview(b)[: self._max - self.bytes_fetched + 1])
        except (HTTPError, OSError) as exc:  # IncompleteRead, reset, read timeout
            self._deadline.check()
            raise OSError(f"{self.label}: reading the body failed after {self.bytes_fetched} bytes: "
                          f"{_reason(exc)}") from None
        self._deadline.check()
        if self.bytes_fetched + n > self._max:
            raise LimitExceeded(f"{self.label}: the body is more than max_bytes={self._max} bytes")
        if not n and len(b):
            if self.size is not None and self.bytes_fetched < self.size:
                raise OSError(f"{self.label}: the body ended after {self.bytes_fetched} of {self.size} bytes "
                              "(connection closed early)")
            self._done = True
        self.bytes_fetched += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._deadline.cancel()
            try:
                if self._done:
                    self._resp.release_conn()  # read to the end: the connection goes back to the pool
                else:
                    self._resp.close()
            finally:
                super().close()


def _done_with(resp) -> None:
    """Return a connection to the pool only when its answer was read to the end; otherwise close it
    (never drain what a server may keep sending)."""
    if resp.length_remaining == 0:
        resp.release_conn()
    else:
        resp.close()


def _content_range(resp, label: str, what: str) -> tuple[int, int, int | None]:
    if resp.status != 206:
        raise OSError(f"{label}: {what} answered {resp.status}, not 206 Partial Content")
    value = resp.headers.get("Content-Range", "")
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if not m:
        raise OSError(f"{label}: {what} answered 206 without a usable Content-Range ({value!r})")
    return int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    label = describe(location)
    max_bytes = location.get("max_bytes", 4 << 30)
    deadline = _Deadline(location, label)
    try:
        if not seekable:
            return io.BufferedReader(_Body(_get(location, deadline=deadline), label, max_bytes, deadline),
                                     buffer_size=READ_BUFFER)
        return _open_ranged(location, label, max_bytes, deadline)
    except BaseException:
        deadline.cancel()
        raise


def _open_ranged(location: dict, label: str, max_bytes: int, deadline: _Deadline) -> BinaryIO:
    # The size, and proof that Range requests work: ask for the first byte (works where HEAD is
    # not allowed, and does not trust an Accept-Ranges header).
    probe = _get(location, extra={"Range": "bytes=0-0"}, deadline=deadline)
    try:
        if probe.status != 206:
            raise OSError(f"{label}: this processor needs a seekable source and the server does not answer "
                          f"Range requests (a request for bytes=0-0 answered {probe.status}, not 206)")
        _, _, size = _content_range(probe, label, "a request for bytes=0-0")
        etag = probe.headers.get("ETag")
        probe.read(64)  # the one byte asked for (bounded): the connection can then go back to the pool
    finally:
        _done_with(probe)
    if size is None:
        raise OSError(f"{label}: the server does not tell the size (Content-Range total '*')")
    if size > max_bytes:
        raise LimitExceeded(f"{label}: the file is {size} bytes, more than max_bytes={max_bytes}")
    # Every range must come from the same version of the file: a strong ETag pins it (If-Match makes
    # the server refuse with 412 once it changed; the ETag of each answer is compared as well, for
    # servers that ignore If-Match). Without an ETag, the size check below is what is left.
    pin = {"If-Match": etag} if etag and not etag.startswith("W/") else {}

    def fetch(offset: int, view: memoryview) -> int:
        got = 0
        while got < len(view):  # a server may answer a shorter range than asked; ask for the rest
            start, end = offset + got, offset + len(view) - 1
            what = f"the Range request for bytes {start}-{end}"
            resp = _get(location, extra={"Range": f"bytes={start}-{end}", **pin}, deadline=deadline)
            try:
                first, last, total = _content_range(resp, label, what)
                if pin and resp.headers.get("ETag") not in (None, etag):
                    raise OSError(f"{label}: {what} answered ETag {resp.headers.get('ETag')} where the first "
                                  f"request saw {etag}: the file changed while it was read")
                if first != start or total != size:
                    raise OSError(f"{label}: {what} answered Content-Range {resp.headers.get('Content-Range')!r} "
                                  f"(expected bytes {start}-…/{size}); did the file change?")
                before, want = got, min(len(view), got + last - first + 1)
                while got < want:
                    try:
                        n = resp.readinto(view[got:want])
                    except (HTTPError, OSError) as exc:
                        deadline.check()
                        raise OSError(f"{label}: reading {what} failed: {_reason(exc)}") from None
                    deadline.check()
                    if not n:
                        break
                    got += n
            finally:
                _done_with(resp)
            if got == before:
                break  # nothing more comes: the ranged reader reports the short read
        return got

    reader = open_ranged(fetch, size, label, RANGE_BLOCK)
    reader.raw.on_close = deadline.cancel
    return reader
