"""HTTP API sources: one streamed GET per location. Header values (tokens, keys) come from app
settings named in `headers_from_env`, never from the config. When a seekable reader is needed
(a zip), the server must answer Range requests; reads then go through the ranged reader."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import BinaryIO
from urllib.parse import urlsplit

from mounters.ranged import open_ranged
from pipeline.settings import get_setting

RANGE_BLOCK = 4 << 20


def describe(location: dict) -> str:
    p = urlsplit(location["url"])  # no query string: it is not ours to print
    return f"http:{p.scheme}://{p.netloc}{p.path}"


def _name(location: dict) -> str:
    return location.get("name") or urlsplit(location["url"]).path.rstrip("/").rsplit("/", 1)[-1] or "download"


def list_files(location: dict) -> list[dict]:
    return [{"location": location, "name": _name(location), "size": None}]


def _request(location: dict, method: str = "GET", extra: dict | None = None):
    headers = {h: get_setting(s) for h, s in location.get("headers_from_env", {}).items()}
    headers.update(extra or {})
    req = urllib.request.Request(location["url"], headers=headers, method=method)
    try:
        return urllib.request.urlopen(req, timeout=location.get("timeout_s", 60.0))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise OSError(f"{describe(location)}: {method} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"{describe(location)}: {method} failed: {reason}") from None


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    if not seekable:
        return _request(location)
    head = _request(location, "HEAD")
    head.close()
    size = head.headers.get("Content-Length")
    if head.headers.get("Accept-Ranges", "").lower() != "bytes" or size is None:
        raise OSError(f"{describe(location)}: this processor needs a seekable source and the server does not "
                      "answer Range requests (no 'Accept-Ranges: bytes' with a Content-Length)")

    def fetch(offset: int, view: memoryview) -> int:
        end = offset + len(view) - 1
        with _request(location, extra={"Range": f"bytes={offset}-{end}"}) as resp:
            if resp.status != 206:
                raise OSError(f"{describe(location)}: Range request answered {resp.status}, not 206")
            got = 0
            while got < len(view):
                n = resp.readinto(view[got:])
                if not n:
                    break
                got += n
            return got

    return open_ranged(fetch, int(size), describe(location), RANGE_BLOCK)
