"""Azure Blob Storage destinations: a block blob written as staged blocks of `block_size` bytes,
made visible only by committing the block list once the unit succeeded. On failure nothing is
committed: a pre-existing blob keeps its content, and the service discards uncommitted blocks.

Blocks are staged on a few threads shared by every blob sink of the process (_Staging): a unit
writing 100,000 small members is not 100,000 round trips one after another, and a large blob
uploads several blocks at once. Memory is one block per open sink plus at most STAGE_BYTES in
flight, whatever the blobs' sizes and count. finish() hands the last block over; settle() waits
for the sink's blocks and raises a failed one's error (an OutputSet settles all its sinks before
committing any, so a failed block fails the unit with nothing visible)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobBlock, ContentSettings

from backends.blob import DEFAULT_BLOCK, container_client, describe, translate
from writers.base import Pending, Sink

_CONTENT_TYPES = {".csv": "text/csv", ".jsonl": "application/x-ndjson", ".json": "application/json"}

STAGE_THREADS = 8  # requests in flight at once (the SDK's connection pool keeps 10)
STAGE_BYTES = 16 << 20  # block bytes in flight at once, over all sinks (one bigger block goes alone)


class _Staging:
    """Stage Block requests, run on STAGE_THREADS threads with at most STAGE_BYTES (and twice as
    many requests as threads) in flight or queued. Each
    request is counted on its sink's `pending` (writers.base.Pending), which gets its failure."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._bytes = 0
        self._requests = 0
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, pending: Pending, stage, data: bytes) -> None:
        with self._cond:
            # Bounded in bytes and in requests: 100,000 tiny members must not queue 100,000 requests
            # (each holding its blob client) while the service answers a few at a time.
            while self._requests >= 2 * STAGE_THREADS or (self._bytes and self._bytes + len(data) > STAGE_BYTES):
                self._cond.wait()
            self._bytes += len(data)
            self._requests += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(STAGE_THREADS, thread_name_prefix="blob-stage")
            pool = self._pool
        try:
            pending.start()  # raises an earlier block's failure: the sink fails now, not at its commit
        except BaseException:
            self._release(len(data))
            raise
        pool.submit(self._run, pending, stage, data)

    def _run(self, pending: Pending, stage, data: bytes) -> None:
        error = None
        try:
            stage(data)
        except BaseException as exc:  # a worker thread has no one to raise to: the sink's settle() raises it
            error = exc
        finally:
            self._release(len(data))
            pending.done(error)

    def _release(self, n: int) -> None:
        with self._cond:
            self._bytes -= n
            self._requests -= 1
            self._cond.notify_all()


_staging = _Staging()


def _block_id(prefix: str, index: int) -> str:
    # The SDK base64-encodes block ids itself: a second encoding made a 41-byte id 76 characters on
    # the wire. Azure counts 64 bytes before encoding; Azurite's SQL store keeps the encoded form in a
    # VARCHAR(64) and failed every staged block with a 500. Same length for every block of a blob.
    return f"{prefix}-{index:08d}"


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
            with memoryview(self._buf) as view:  # one copy of the block (a slice of the bytearray would be a second)
                block = bytes(view[: self._block_size])
            self._stage(block)
            del self._buf[: self._block_size]

    def _stage(self, data: bytes) -> None:
        index = len(self._blocks)
        block_id = _block_id(self._prefix, index)
        blob, location = self._blob, self.location

        def stage(data: bytes) -> None:  # on a staging thread
            try:
                blob.stage_block(block_id, data, length=len(data))
            except AzureError as exc:
                raise translate(exc, location, f"staging block {index}") from None

        _staging.submit(self.pending, stage, data)
        self._blocks.append(BlobBlock(block_id))

    def _finish(self) -> None:
        if self._buf:
            self._stage(bytes(self._buf))
        self._buf = bytearray()

    def _commit(self) -> None:
        ext = "." + self.location["path"].rsplit(".", 1)[-1].lower() if "." in self.location["path"] else ""
        settings = ContentSettings(content_type=_CONTENT_TYPES.get(ext, "application/octet-stream"))
        self.settle()
        try:
            self._blob.commit_block_list(self._blocks, content_settings=settings)
        except AzureError as exc:
            raise translate(exc, self.location, "the commit") from None

    def _suspend(self) -> dict:
        return {"prefix": self._prefix, "blocks": len(self._blocks)}

    def _abort(self) -> None:
        self._buf = bytearray()  # staged blocks stay uncommitted; the service garbage-collects them
        self.pending.wait(raise_error=False)  # nothing of it stays in flight; its failure no longer matters


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
