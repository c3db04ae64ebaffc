"""Azure Blob Storage destinations: a block blob written as staged blocks of `block_size` bytes,
made visible only by committing the block list once the unit succeeded. On failure nothing is
committed: a pre-existing blob keeps its content, and the service discards uncommitted blocks.
Memory is one block, whatever the blob's size."""

from __future__ import annotations

import base64
import uuid

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobBlock, ContentSettings

from backends.blob import DEFAULT_BLOCK, container_client, describe, translate
from writers.base import Sink

_CONTENT_TYPES = {".csv": "text/csv", ".jsonl": "application/x-ndjson", ".json": "application/json"}


def _block_id(prefix: str, index: int) -> str:
    return base64.b64encode(f"{prefix}-{index:08d}".encode()).decode()


class BlobSink(Sink):
    def __init__(self, folder: dict, name: str):
        location = {**folder, "path": folder.get("path", "") + name}
        super().__init__(location, describe(location))
        self._blob = container_client(location).get_blob_client(location["path"])
        self._block_size = folder.get("block_size", DEFAULT_BLOCK)
        self._buf = bytearray()
        self._blocks: list[BlobBlock] = []
        # Unique per writer: a retried unit writing the same blob never mixes its blocks with ours.
        self._prefix = uuid.uuid4().hex

    def _write(self, b) -> None:
        self._buf += b
        while len(self._buf) >= self._block_size:
            self._stage(bytes(self._buf[: self._block_size]))
            del self._buf[: self._block_size]

    def _stage(self, data: bytes) -> None:
        block_id = _block_id(self._prefix, len(self._blocks))
        try:
            self._blob.stage_block(block_id, data, length=len(data))
        except AzureError as exc:
            raise translate(exc, self.location, f"staging block {len(self._blocks)}") from None
        self._blocks.append(BlobBlock(block_id))

    def _finish(self) -> None:
        if self._buf:
            self._stage(bytes(self._buf))
        self._buf = bytearray()

    def _commit(self) -> None:
        ext = "." + self.location["path"].rsplit(".", 1)[-1].lower() if "." in self.location["path"] else ""
        settings = ContentSettings(content_type=_CONTENT_TYPES.get(ext, "application/octet-stream"))
        try:
            self._blob.commit_block_list(self._blocks, content_settings=settings)
        except AzureError as exc:
            raise translate(exc, self.location, "the commit") from None

    def _suspend(self) -> dict:
        return {"prefix": self._prefix, "blocks": len(self._blocks)}

    def _abort(self) -> None:
        self._buf = bytearray()  # staged blocks stay uncommitted; the service garbage-collects them


def open_sink(folder: dict, name: str) -> Sink:
    return BlobSink(folder, name)


def resume_sink(state: dict) -> Sink:
    """A sink suspended by Sink.suspend(): its blocks are staged, its block list not committed."""
    sink = BlobSink.__new__(BlobSink)
    sink._resumed(state)
    location = sink.location
    sink._blob = container_client(location).get_blob_client(location["path"])
    sink._buf, sink._prefix = bytearray(), state["prefix"]
    sink._blocks = [BlobBlock(_block_id(sink._prefix, i)) for i in range(state["blocks"])]
    return sink
