"""Fetching one model's files: which files, in what order, how many bytes, when to retry.

The files are exactly the ones WebLLM's `reload()` reads, under WebLLM's own cache names
and keys (shared/notes/real-path.md), so that `hasModelInCache` agrees and a later
`reload()` sends no request:

    webllm/config  <base>mlc-chat-config.json
    webllm/wasm    the record's model_lib URL
    webllm/model   <base>tokenizer.json (or tokenizer.model), <base>tensor-cache.json,
                   and every shard of tensor-cache.json's records

A `FileTransport` (ports.py: the download worker in the browser, a fake host in tests)
fetches, checks and stores one file per request and counts its bytes as they arrive.
`Downloader` plans the files, runs four lanes as WebLLM does, counts the bytes of the
whole model, and retries what is worth retrying: dropped connections, stalls, an
unreachable host, HTTP 408/429/5xx (honouring Retry-After), with backoff, a bounded number
of times in a row per file (a file that makes progress starts counting again). A file
interrupted mid-way resumes from the bytes already received (the transport sends a
`Range` request). A file that isn't what it should be is never stored.

Example::

    downloader = Downloader(transport, sleep=asyncio.sleep, monotonic=time.monotonic)
    await downloader.download(source, on_progress=print)   # FetchFailure when it gives up
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import UserMessage

if TYPE_CHECKING:
    from ..ports import FileTransport

__all__ = [
    "CONFIG_CACHE",
    "MODEL_CACHE",
    "WASM_CACHE",
    "DownloadProgress",
    "Downloader",
    "FailureKind",
    "FetchFailure",
    "FetchedFile",
    "FileCheck",
    "FileRequest",
    "Inventory",
    "ModelSource",
    "RetryPolicy",
    "clean_model_url",
    "explain_fetch_failure",
]

CONFIG_CACHE = "webllm/config"
WASM_CACHE = "webllm/wasm"
MODEL_CACHE = "webllm/model"
LANES = 4
"""Files fetched at once (WebLLM fetches four shards in parallel too)."""


class FileCheck(Enum):
    """What a file must be before it is stored (the transport applies the check)."""

    CHAT_CONFIG = "chat-config"
    """JSON object with a `tokenizer_files` list."""
    TENSOR_CACHE = "tensor-cache"
    """JSON object with a non-empty `records` list of {dataPath, nbytes}."""
    JSON = "json"
    """Any JSON (tokenizer.json)."""
    WASM = "wasm"
    """Starts with the WebAssembly magic bytes 00 61 73 6d."""
    BYTES = "bytes"
    """Any bytes of the expected length (shards, tokenizer.model)."""


class FailureKind(Enum):
    """Why fetching or storing one file failed."""

    HTTP = "http"
    """The host answered with an error status."""
    UNREACHABLE = "unreachable"
    """No answer at all: offline, DNS, refused, blocked."""
    DROPPED = "dropped"
    """The connection broke mid-body."""
    STALL = "stall"
    """No byte arrived for the stall limit."""
    INVALID = "invalid"
    """The body isn't the file it should be (an HTML page, wrong length, not JSON)."""
    QUOTA = "quota"
    """The browser refused to store it: storage is full."""
    STORAGE = "storage"
    """Storing it failed for another reason."""
    ABORTED = "aborted"
    """Canceled (or the download worker stopped)."""


_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_RETRY_KINDS = frozenset({FailureKind.UNREACHABLE, FailureKind.DROPPED, FailureKind.STALL})


class FetchFailure(Exception):
    """One file could not be fetched or stored (after retries, when raised by Downloader)."""

    def __init__(self, kind: FailureKind, *, status: int | None = None,
                 retry_after: float | None = None, kept: int = 0, detail: str = "",
                 url: str = "") -> None:
        super().__init__(f"{kind.value}: {detail or status or ''} ({url})")
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.kept = kept
        self.detail = detail
        self.url = url

    @property
    def retryable(self) -> bool:
        if self.kind is FailureKind.HTTP:
            return self.status in _RETRY_STATUS
        return self.kind in _RETRY_KINDS


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files come from: its WebLLM model record."""

    model_id: str
    base_url: str
    """The model folder, cleaned as WebLLM does (ends with /resolve/main/)."""
    lib_url: str
    """The model library (wasm), exactly as the record names it."""

    @property
    def config_url(self) -> str:
        return self.base_url + "mlc-chat-config.json"

    @property
    def tensor_cache_url(self) -> str:
        return self.base_url + "tensor-cache.json"

    def file_url(self, relative: str) -> str:
        """A file of the model folder (tensor-cache.json's dataPath, a tokenizer file)."""
        if (not relative or relative.startswith(("/", "\\")) or ":" in relative
                or any(part in ("..", ".") for part in relative.replace("\\", "/").split("/"))):
            raise FetchFailure(FailureKind.INVALID, detail=f"unsafe file path {relative!r}",
                               url=self.tensor_cache_url)
        return self.base_url + relative


def clean_model_url(model: str) -> str:
    """WebLLM's cleanModelUrl: the model URL as a folder ending in /resolve/main/."""
    url = model if model.endswith("/") else model + "/"
    if not re.search(r".+/resolve/.+/", url):
        url += "resolve/main/"
    return url


@dataclass(frozen=True)
class FileRequest:
    url: str
    cache: str
    check: FileCheck
    size: int | None = None
    """The exact length it must have, when known (shards: their nbytes)."""
    resume: bool = False
    """Continue from bytes kept after an earlier failure of this URL (a Range request)."""
    group: str = ""
    """The model folder it belongs to."""
    group_total: int | None = None
    """The model's total bytes, when known."""


@dataclass(frozen=True)
class FetchedFile:
    size: int
    data: dict[str, Any] | None = None
    """For JSON checks: the parsed summary (chat config: tokenizer_files; tensor cache: records)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    """Retries in a row for one file without any byte of progress."""
    backoff_s: float = 1.0
    """Wait before the first retry; it doubles for each one after."""
    max_wait_s: float = 600.0
    """A Retry-After longer than this is not waited for: the download fails instead."""

    def wait(self, failure: FetchFailure, retries: int) -> float | None:
        """Seconds to wait before retry number `retries + 1`, or None: give up."""
        if not failure.retryable or retries >= self.max_retries:
            return None
        wait = self.backoff_s * 2 ** retries
        if failure.retry_after is not None and math.isfinite(failure.retry_after):
            wait = max(wait, failure.retry_after)
        return wait if wait <= self.max_wait_s else None


@dataclass(frozen=True)
class DownloadProgress:
    bytes_done: int
    bytes_total: int | None
    retry: int = 0
    """The highest count of retries in a row among the files being fetched (0: all well)."""
    retry_in_s: float | None = None
    """Seconds until the pending automatic retry starts (None: none is waiting)."""


@dataclass(frozen=True)
class Inventory:
    """What of a model is stored already."""

    stored_bytes: int
    total_bytes: int | None
    """Every file's size once tensor-cache.json is known (shards exact, others as stored)."""
    complete: bool
    """Every file WebLLM reads is stored, with the right size."""


@dataclass
class _Plan:
    """The model's files once config and tensor cache are known."""

    files: list[FileRequest]
    sizes: dict[str, int] = field(default_factory=dict)
    """Expected sizes by URL, as far as known."""


class Downloader:
    """Downloads one model at a time through a FileTransport (see the module docstring)."""

    def __init__(self, transport: FileTransport, *,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 monotonic: Callable[[], float] | None = None,
                 policy: RetryPolicy | None = None, lanes: int = LANES,
                 progress_every_s: float = 0.2) -> None:
        self.transport = transport
        self.sleep = sleep
        self.monotonic = monotonic
        self.policy = policy or RetryPolicy()
        self.lanes = lanes
        self.progress_every_s = progress_every_s

    # --- what is stored -----------------------------------------------------------------

    async def _tokenizer_url(self, source: ModelSource, config: dict[str, Any]) -> str:
        names = config.get("tokenizer_files")
        names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        # WebLLM reads only these two (asyncLoadTokenizer); the others would be wasted bytes.
        for name in ("tokenizer.json", "tokenizer.model"):
            if name in names:
                return source.file_url(name)
        raise FetchFailure(FailureKind.INVALID, url=source.config_url,
                           detail=f"no tokenizer WebLLM can read in {names!r}")

    def _plan(self, source: ModelSource, tokenizer_url: str | None,
              tensor_cache: dict[str, Any]) -> _Plan:
        """The files to fetch (without a tokenizer when `tokenizer_url` is None)."""
        records = tensor_cache.get("records")
        if not isinstance(records, list) or not records:
            raise FetchFailure(FailureKind.INVALID, url=source.tensor_cache_url,
                               detail="tensor-cache.json lists no shards")
        shards: list[FileRequest] = []
        sizes: dict[str, int] = {}
        total = 0
        for record in records:
            path = record.get("dataPath") if isinstance(record, dict) else None
            nbytes = record.get("nbytes") if isinstance(record, dict) else None
            if not isinstance(path, str) or not isinstance(nbytes, int) or isinstance(
                    nbytes, bool) or nbytes < 0:
                raise FetchFailure(FailureKind.INVALID, url=source.tensor_cache_url,
                                   detail=f"bad shard record {record!r}"[:200])
            url = source.file_url(path)
            if url in sizes:
                continue
            sizes[url] = nbytes
            total += nbytes
            shards.append(FileRequest(url, MODEL_CACHE, FileCheck.BYTES, nbytes,
                                      group=source.base_url))
        first = [FileRequest(source.lib_url, WASM_CACHE, FileCheck.WASM, group=source.base_url)]
        if tokenizer_url is not None:
            tokenizer_check = (FileCheck.JSON if tokenizer_url.endswith(".json")
                               else FileCheck.BYTES)
            first.append(FileRequest(tokenizer_url, MODEL_CACHE, tokenizer_check,
                                     group=source.base_url))
        # The library and the tokenizer first: their sizes are known once they start.
        return _Plan(first + shards, sizes)

    async def _stored_json(self, cache: str, url: str, check: FileCheck) -> dict[str, Any] | None:
        data = await self.transport.read_stored(cache, url, check)
        return data if isinstance(data, dict) else None

    async def inspect(self, source: ModelSource) -> Inventory:
        """How much of the model is stored (reads only the cache: no request is sent)."""
        config = await self._stored_json(CONFIG_CACHE, source.config_url, FileCheck.CHAT_CONFIG)
        tensor_cache = await self._stored_json(MODEL_CACHE, source.tensor_cache_url,
                                               FileCheck.TENSOR_CACHE)
        known = [(CONFIG_CACHE, source.config_url), (MODEL_CACHE, source.tensor_cache_url),
                 (WASM_CACHE, source.lib_url)]
        plan = None
        if tensor_cache is not None:
            try:
                tokenizer = (await self._tokenizer_url(source, config)
                             if config is not None else None)
                plan = self._plan(source, tokenizer, tensor_cache)
            except FetchFailure:
                plan = None  # damaged metadata: the download replaces it
        if plan is not None:
            known += [(f.cache, f.url) for f in plan.files if f.url != source.lib_url]
        if plan is not None and config is None:
            # The config is gone (Retry after a failure to start removes it): the shards
            # tensor-cache.json lists still count, and whichever tokenizer is stored.
            known += [(MODEL_CACHE, source.file_url(name))
                      for name in ("tokenizer.json", "tokenizer.model")]
        stored = await self.transport.stored(known)
        stored_bytes = sum(stored.values())
        if plan is None:
            return Inventory(stored_bytes, None, False)
        good = {url for url, size in stored.items()
                if plan.sizes.get(url) is None or plan.sizes[url] == size}
        if config is None:  # the total waits for the config (and the tokenizer it names)
            return Inventory(sum(stored[u] for u in good), None, False)
        complete = all(url in good for _, url in known)
        total = sum(plan.sizes.values()) + sum(
            size for url, size in stored.items() if url not in plan.sizes)
        return Inventory(sum(stored[u] for u in good), total, complete)

    async def size(self, source: ModelSource) -> int | None:
        """The model's shard bytes from a stored or (same-origin only) peeked tensor cache."""
        data = await self._stored_json(MODEL_CACHE, source.tensor_cache_url,
                                       FileCheck.TENSOR_CACHE)
        if data is None:
            peeked = await self.transport.peek(source.tensor_cache_url, FileCheck.TENSOR_CACHE)
            data = peeked if isinstance(peeked, dict) else None
        records = data.get("records") if data else None
        if not isinstance(records, list):
            return None
        total = sum(r.get("nbytes", 0) for r in records
                    if isinstance(r, dict) and isinstance(r.get("nbytes"), int))
        return total or None

    async def remove(self, source: ModelSource) -> None:
        """Delete every stored file of the model (complete or not)."""
        await self.transport.remove([(CONFIG_CACHE, source.config_url),
                                     (WASM_CACHE, source.lib_url)],
                                    [(MODEL_CACHE, source.base_url)])

    async def forget_start_files(self, source: ModelSource) -> None:
        """Delete the library and the config, so that a retry after a failure to start
        fetches them again (a bad library would otherwise be used forever)."""
        await self.transport.remove([(CONFIG_CACHE, source.config_url),
                                     (WASM_CACHE, source.lib_url)])

    # --- the download ---------------------------------------------------------------------

    async def download(self, source: ModelSource,
                       on_progress: Callable[[DownloadProgress], None]) -> None:
        """Fetch every missing file. Raises FetchFailure when it gives up; cancelling the
        task aborts every request (complete files stay stored)."""
        run = _Run(self, source, on_progress)
        await run.go()


class _Run:
    """One download of one model: its byte counts and its lanes."""

    def __init__(self, downloader: Downloader, source: ModelSource,
                 on_progress: Callable[[DownloadProgress], None]) -> None:
        self.d = downloader
        self.source = source
        self.on_progress = on_progress
        self.sizes: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.flight: dict[str, int] = {}
        self.retries: dict[str, int] = {}
        self.waits: dict[str, float] = {}
        """When each file's pending automatic retry starts (on `monotonic`, else the wait)."""
        self.total_known = False
        self.unsized: set[str] = set()
        """Files still to fetch whose length isn't known yet (the library, the tokenizer):
        no total is reported until each has said its length, so that a late file never
        makes the total grow (and the shown fraction go backwards) during a run."""
        self._last_emit: float | None = None

    # --- counting -------------------------------------------------------------------------

    def _total(self) -> int | None:
        """The bytes of every file whose length is known, once the plan is known."""
        return sum(self.sizes.values()) if self.total_known else None

    def progress(self) -> DownloadProgress:
        done = sum(self.done.values()) + sum(self.flight.values())
        total = self._total() if not self.unsized else None
        if total is not None:
            total = max(total, done)
        retry_in = None
        if self.waits:
            clock = self.d.monotonic
            retry_in = max(0.0, max(self.waits.values()) - (clock() if clock else 0.0))
        return DownloadProgress(done, total, max(self.retries.values(), default=0), retry_in)

    def emit(self, force: bool = False) -> None:
        clock = self.d.monotonic
        if not force and clock is not None:
            now = clock()
            if self._last_emit is not None and now - self._last_emit < self.d.progress_every_s:
                return
            self._last_emit = now
        self.on_progress(self.progress())

    # --- one file, with its retries ---------------------------------------------------------

    async def fetch(self, request: FileRequest) -> FetchedFile:
        url = request.url
        resume = False
        while True:
            def on_bytes(received: int, expected: int | None) -> None:
                before = self.flight.get(url, 0)
                self.flight[url] = received
                if expected is not None and expected > 0:
                    self.sizes.setdefault(url, expected)
                    self.unsized.discard(url)
                if received > before and self.retries.get(url):
                    self.retries[url] = 0  # progress: it counts from nothing again
                self.emit()

            attempt = FileRequest(request.url, request.cache, request.check, request.size,
                                  resume, request.group, self._total())
            try:
                fetched = await self.d.transport.fetch(attempt, on_bytes)
            except FetchFailure as failure:
                failure.url = failure.url or url
                self.flight[url] = failure.kept
                retries = self.retries.get(url, 0)
                wait = self.d.policy.wait(failure, retries)
                if wait is None:
                    raise
                self.retries[url] = retries + 1
                clock = self.d.monotonic
                self.waits[url] = (clock() if clock is not None else 0.0) + wait
                self.emit(force=True)
                try:
                    await self.d.sleep(wait)
                finally:
                    self.waits.pop(url, None)
                resume = failure.kept > 0
                continue
            self.flight.pop(url, None)
            self.retries.pop(url, None)
            self.unsized.discard(url)
            self.done[url] = fetched.size
            self.sizes[url] = fetched.size
            self.emit(force=True)
            return fetched

    async def metadata(self, cache: str, url: str, check: FileCheck,
                       stored: dict[str, int]) -> dict[str, Any]:
        """A JSON file of the model, from the cache when it is there and readable."""
        if url in stored:
            data = await self.d._stored_json(cache, url, check)
            if data is not None:
                self.done[url] = self.sizes[url] = stored[url]
                return data
            await self.d.transport.remove([(cache, url)])  # unreadable: fetch it again
        fetched = await self.fetch(FileRequest(url, cache, check, group=self.source.base_url))
        if fetched.data is None:
            raise FetchFailure(FailureKind.INVALID, url=url, detail="no data for a JSON file")
        return fetched.data

    # --- the whole model ----------------------------------------------------------------------

    async def go(self) -> None:
        source, transport = self.source, self.d.transport
        stored = await transport.stored([(CONFIG_CACHE, source.config_url),
                                         (MODEL_CACHE, source.tensor_cache_url)])
        config = await self.metadata(CONFIG_CACHE, source.config_url, FileCheck.CHAT_CONFIG,
                                     stored)
        tokenizer_url = await self.d._tokenizer_url(source, config)
        tensor_cache = await self.metadata(MODEL_CACHE, source.tensor_cache_url,
                                           FileCheck.TENSOR_CACHE, stored)
        plan = self.d._plan(source, tokenizer_url, tensor_cache)
        self.sizes.update(plan.sizes)
        stored = await transport.stored([(f.cache, f.url) for f in plan.files])
        wrong = []
        pending = []
        for request in plan.files:
            size = stored.get(request.url)
            if size is not None and (request.size is None or request.size == size):
                self.done[request.url] = self.sizes[request.url] = size
            else:
                if size is not None:
                    wrong.append((request.cache, request.url))
                pending.append(request)
                if request.url not in self.sizes:
                    self.unsized.add(request.url)
        if wrong:  # stored with the wrong length (not by LocalChat): never keep it
            await transport.remove(wrong)
        self.total_known = True
        self.emit(force=True)
        await self._lanes(pending)
        self.emit(force=True)

    async def _lanes(self, pending: list[FileRequest]) -> None:
        queue = list(pending)

        async def lane() -> None:
            while queue:
                await self.fetch(queue.pop(0))

        tasks = [asyncio.ensure_future(lane()) for _ in range(min(self.d.lanes, len(queue)))]
        if not tasks:
            return
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task


def explain_fetch_failure(failure: FetchFailure, label: str) -> UserMessage:
    """What the user reads when a model's download gave up (never a raw browser error)."""
    kind, status = failure.kind, failure.status
    again = "Retry: it continues from what is already stored."
    if kind is FailureKind.INVALID:
        return UserMessage("The model host sent something that isn't a model file.",
                           "This often happens behind a Wi-Fi sign-in page or a filtering "
                           "proxy. Nothing wrong was stored.",
                           "Sign in to the network if it asks, then retry.")
    if kind is FailureKind.QUOTA:
        return UserMessage("There isn't enough storage space for this model.",
                           "The browser refused to store more of its files.",
                           "Free some disk space or remove a downloaded model, then retry.")
    if kind is FailureKind.STORAGE:
        return UserMessage("The browser couldn't store the model's files.",
                           "Its storage for this site reported an error.",
                           "Reload the page, then retry.")
    if kind is FailureKind.HTTP and status in (401, 403):
        return UserMessage(f"The model host refused to send {label} (HTTP {status}).",
                           "It may need a sign-in, or be blocked on this network.",
                           "Check that the model host (huggingface.co) opens in this browser, "
                           "then retry.")
    if kind is FailureKind.HTTP and status == 404:
        return UserMessage(f"The model host doesn't have {label}'s files (HTTP 404).",
                           "They may have moved; a newer LocalChat may know where.",
                           "Retry later, or choose another model.")
    if kind is FailureKind.HTTP and status == 429:
        return UserMessage("The model host is busy and asked LocalChat to slow down.",
                           "It answered HTTP 429 (too many requests), even after waiting.",
                           again)
    if kind is FailureKind.HTTP and status is not None and status >= 500:
        return UserMessage("The model host is having trouble.",
                           f"It answered HTTP {status}, even after several tries.", again)
    if kind is FailureKind.HTTP:
        return UserMessage(f"The model host refused the download (HTTP {status}).",
                           "LocalChat can't fetch the model's files from it.", again)
    if kind is FailureKind.STALL:
        return UserMessage("The download stopped making progress.",
                           "No data arrived from the model host for a while, even after "
                           "retries.", "Check the connection, then " + again[0].lower()
                           + again[1:])
    if kind is FailureKind.DROPPED:
        return UserMessage("The connection to the model host keeps breaking.",
                           "The download was cut off several times in a row.",
                           "Check the connection, then " + again[0].lower() + again[1:])
    if kind is FailureKind.ABORTED:
        return UserMessage("The download was interrupted.", "The download worker stopped.",
                           again)
    return UserMessage("Can't reach the model host.",
                       "The model's files could not be downloaded. Check your internet "
                       "connection (models download once, then work offline).",
                       "Check the connection and try again.")
