"""Azure Blob Storage sources, read with ranged GETs under a buffered, seekable reader.

`connection` names an app setting holding either a connection string or an account URL
(``https://<account>.blob.core.windows.net``), the latter used with DefaultAzureCredential
(managed identity in Azure). Clients are cached per setting: they pool connections.
"""

from __future__ import annotations

import threading
from typing import BinaryIO

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from mounters.base import select
from mounters.ranged import open_ranged
from pipeline.settings import get_setting

DEFAULT_BLOCK = 4 << 20
_clients: dict[tuple[str, str], BlobServiceClient] = {}
_lock = threading.Lock()


def describe(location: dict) -> str:
    return f"blob:{location['connection']}/{location['container']}/{location.get('path', '')}"


def service_client(setting: str) -> BlobServiceClient:
    value = get_setting(setting)  # every time: the policy is checked, and a rotated value gets a new client
    with _lock:
        client = _clients.get((setting, value))
        if client is None:
            if value.startswith("https://") or value.startswith("http://"):
                try:
                    from azure.identity import DefaultAzureCredential
                except ImportError:
                    raise RuntimeError(
                        f"app setting {setting!r} is an account URL, which needs the azure-identity package"
                    ) from None
                client = BlobServiceClient(account_url=value, credential=DefaultAzureCredential())
            else:
                try:
                    client = BlobServiceClient.from_connection_string(value)
                except ValueError:
                    raise ValueError(f"app setting {setting!r} is not a valid storage connection string") from None
            _clients[(setting, value)] = client
        return client


def container_client(location: dict) -> ContainerClient:
    return service_client(location["connection"]).get_container_client(location["container"])


def list_files(location: dict) -> list[dict]:
    sel = select(location.get("path", ""))
    prefix = sel.exact if sel.exact is not None else sel.base
    try:
        blobs = [(b.name, b.size) for b in container_client(location).list_blobs(name_starts_with=prefix or None)]
    except ResourceNotFoundError:
        raise FileNotFoundError(f"{describe(location)}: container does not exist") from None
    out = [{"location": {**location, "path": name}, "name": name[len(sel.base):], "size": size}
           for name, size in sorted(blobs) if not name.endswith("/") and sel.matches(name)]
    if sel.exact is not None and not out:
        raise FileNotFoundError(f"{describe(location)}: no such blob")
    return out


class _ViewWriter:
    def __init__(self, view: memoryview):
        self._view, self._pos = view, 0

    def write(self, b) -> int:
        n = len(b)
        self._view[self._pos:self._pos + n] = b
        self._pos += n
        return n


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    # Always ranged: one GET per buffer refill, so a sequential read streams with bounded
    # memory and a zip can seek. download_blob(offset, length) never prefetches past length.
    label = describe(location)
    blob = container_client(location).get_blob_client(location["path"])
    try:
        size = blob.get_blob_properties().size
    except ResourceNotFoundError:
        raise FileNotFoundError(f"{label}: no such blob") from None

    def fetch(offset: int, view: memoryview) -> int:
        try:
            # The downloader writes into a stream; this one fills the caller's buffer (no extra copy).
            return blob.download_blob(offset=offset, length=len(view), max_concurrency=1).readinto(_ViewWriter(view))
        except AzureError as exc:
            raise OSError(f"{label}: read at offset {offset} failed: {type(exc).__name__}") from exc

    return open_ranged(fetch, size, label, location.get("block_size", DEFAULT_BLOCK))
