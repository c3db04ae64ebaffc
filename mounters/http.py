"""HTTP API sources: one streamed GET per location. Header values (tokens, keys) come from app
settings named in `headers_from_env`, never from the config. When a seekable reader is needed
(a zip), the server must answer Range requests; reads then go through the ranged reader.

What urllib/http.client leave to the caller, done here:
  * a body that ends before its Content-Length is an error (http.client reports it as a normal EOF);
  * a redirect to another origin (scheme, host, port) does not carry the configured headers along
    (urllib forwards every header to wherever a redirect points);
  * every Range answer is checked: 206, the asked-for start, the same total size; a server may
    answer fewer bytes than asked, and the rest is asked for again.
"""

from __future__ import annotations

import http.client
import io
import re
import urllib.error
import urllib.request
from typing import BinaryIO
from urllib.parse import urlsplit

from mounters.base import safe_relative
from mounters.ranged import open_ranged
from pipeline.settings import get_setting

RANGE_BLOCK = 4 << 20
READ_BUFFER = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def describe(location: dict) -> str:
    p = urlsplit(location["url"])  # no query string: it is not ours to print
    return f"http:{p.scheme}://{p.netloc}{p.path}"


def _name(location: dict) -> str:
    name = location.get("name") or urlsplit(location["url"]).path.rstrip("/").rsplit("/", 1)[-1] or "download"
    return safe_relative(name, f"{describe(location)}: name")  # it names the output: no '..', no absolute path


def list_files(location: dict) -> list[dict]:
    return [{"location": location, "name": _name(location), "size": None}]


def _origin(url: str) -> tuple:
    p = urlsplit(url)
    scheme = p.scheme.lower()
    return scheme, (p.hostname or "").lower(), p.port or {"http": 80, "https": 443}.get(scheme)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, dropping the configured (secret) headers when the origin changes."""

    def __init__(self, secret_headers):
        self._secret = {h.lower() for h in secret_headers}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            for h in [h for h in new.headers if h.lower() in self._secret]:
                del new.headers[h]
        return new


def _request(location: dict, method: str = "GET", extra: dict | None = None):
    headers = {h: get_setting(s) for h, s in location.get("headers_from_env", {}).items()}
    opener = urllib.request.build_opener(_Redirects(headers))
    headers.update(extra or {})
    req = urllib.request.Request(location["url"], headers=headers, method=method)
    try:
        return opener.open(req, timeout=location.get("timeout_s", 60.0))
    except urllib.error.HTTPError as exc:
        exc.close()
        why = ": the file changed since it was first read" if exc.code == 412 and "If-Match" in headers else ""
        raise OSError(f"{describe(location)}: {method} answered {exc.code} {exc.reason}{why}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"{describe(location)}: {method} failed: {reason}") from None
    except (http.client.HTTPException, OSError) as exc:  # e.g. RemoteDisconnected, BadStatusLine
        raise OSError(f"{describe(location)}: {method} failed: {type(exc).__name__}: {exc}") from None


class _Body(io.RawIOBase):
    """A GET response body. Counts what it reads (like the ranged reader, so source_stats reports
    it) and fails when the connection ends before Content-Length bytes arrived."""

    def __init__(self, resp, label: str):
        self._resp = resp
        self.label = label
        self.name = label
        self.size = resp.length  # Content-Length; None when chunked or read-until-close
        self.bytes_fetched = 0
        self.requests = 1

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self._resp.readinto(b)
        except (http.client.HTTPException, OSError) as exc:  # IncompleteRead (chunked), reset, timeout
            raise OSError(f"{self.label}: reading the body failed after {self.bytes_fetched} bytes: "
                          f"{type(exc).__name__}: {exc}") from None
        if not n and len(b) and self.size is not None and self.bytes_fetched < self.size:
            raise OSError(f"{self.label}: the body ended after {self.bytes_fetched} of {self.size} bytes "
                          "(connection closed early)")
        self.bytes_fetched += n
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._resp.close()
            finally:
                super().close()


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
    if not seekable:
        return io.BufferedReader(_Body(_request(location), label), buffer_size=READ_BUFFER)

    # The size, and proof that Range requests work: ask for the first byte (works where HEAD is
    # not allowed, and does not trust an Accept-Ranges header).
    with _request(location, extra={"Range": "bytes=0-0"}) as probe:
        if probe.status != 206:
            raise OSError(f"{label}: this processor needs a seekable source and the server does not answer "
                          f"Range requests (a request for bytes=0-0 answered {probe.status}, not 206)")
        _, _, size = _content_range(probe, label, "a request for bytes=0-0")
        etag = probe.headers.get("ETag")
    if size is None:
        raise OSError(f"{label}: the server does not tell the size (Content-Range total '*')")
    # Every range must come from the same version of the file: a strong ETag pins it (If-Match makes
    # the server refuse with 412 once it changed; the ETag of each answer is compared as well, for
    # servers that ignore If-Match). Without an ETag, the size check below is what is left.
    pin = {"If-Match": etag} if etag and not etag.startswith("W/") else {}

    def fetch(offset: int, view: memoryview) -> int:
        got = 0
        while got < len(view):  # a server may answer a shorter range than asked; ask for the rest
            start, end = offset + got, offset + len(view) - 1
            what = f"the Range request for bytes {start}-{end}"
            with _request(location, extra={"Range": f"bytes={start}-{end}", **pin}) as resp:
                first, _, total = _content_range(resp, label, what)
                if pin and resp.headers.get("ETag") not in (None, etag):
                    raise OSError(f"{label}: {what} answered ETag {resp.headers.get('ETag')} where the first "
                                  f"request saw {etag}: the file changed while it was read")
                if first != start or total != size:
                    raise OSError(f"{label}: {what} answered Content-Range {resp.headers.get('Content-Range')!r} "
                                  f"(expected bytes {start}-…/{size}); did the file change?")
                before = got
                while got < len(view):
                    try:
                        n = resp.readinto(view[got:])
                    except (http.client.HTTPException, OSError) as exc:
                        raise OSError(f"{label}: reading {what} failed: {type(exc).__name__}: {exc}") from None
                    if not n:
                        break
                    got += n
                if got == before:
                    break  # nothing more comes: the ranged reader reports the short read
        return got

    return open_ranged(fetch, size, label, RANGE_BLOCK)
