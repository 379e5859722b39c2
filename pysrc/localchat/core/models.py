"""Models: the download queue, the loader, the chat engine, and the auto-switch.

`ModelService` owns the runtime split of DESIGN.md ("Runtime state"):
- the requested model of the active conversation is derived from the state (the open
  conversation's `model`, or the new-chat choice);
- the engine-loaded model is `state.engine.loaded_model`, answered by `chat_engine`;
- the lifecycle of each model is `state.downloads` (persisted through `DownloadRecords`).

Downloads run one at a time, in request order, each in a fresh loader engine (a worker:
WebLLM has no download-only call, a load downloads, uploads and compiles). When a load
finishes and the model is still what the active conversation asks for, the loader
becomes the chat engine (after any reply that is streaming ends) and the old one is
terminated; otherwise the loader is terminated and the model is just Ready (its files
stay cached, so a later load only compiles). Cancel terminates the loader, in any
phase. Network failures and stalls are retried automatically a bounded number of
times with backoff; then the item is Failed with an inline Retry, which resumes from
the cached shards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..ports import DownloadRecords, ModelEngine, ModelRuntime
from .catalog import CATALOG, DEFAULT_MODEL_KEY, ModelSpec, model_for_key, spec_for_model_id
from .downloads import (
    MB,
    DownloadItem,
    DownloadState,
    ModelFit,
    format_bytes,
    item_from_record,
    item_to_record,
    model_fit,
)
from .errors import EngineFailure, StoreFailure, UserMessage, explain_engine_failure
from .eta import EtaEstimator
from .progress import LoadPhase, parse_progress
from .state import EngineStatus, StateBox, StorageInfo

__all__ = ["ModelService", "NoModel"]

_RETRYABLE_HINTS = ("failed to fetch", "networkerror", "network error", "cannot fetch",
                    "timeout", "stall", "connection")


class NoModel(Exception):
    """No model can answer; `problem` says why and what to do."""

    def __init__(self, problem: UserMessage) -> None:
        super().__init__(problem.title)
        self.problem = problem


@dataclass
class _Job:
    key: str
    engine: ModelEngine | None = None
    canceled: bool = False


def _retryable(failure: EngineFailure) -> bool:
    if failure.name in {"EngineTerminated", "QuotaExceededError", "ShaderF16SupportError",
                        "WebGPUNotAvailableError", "DeviceLostError", "EngineWorkerError",
                        "ModelNotFoundError"}:
        return False
    lowered = f"{failure.name} {failure.message}".lower()
    return any(hint in lowered for hint in _RETRYABLE_HINTS)


class ModelService:
    def __init__(self, box: StateBox, runtime: ModelRuntime, records: DownloadRecords, *,
                 now_ms: Callable[[], int], monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 max_retries: int = 3, backoff_s: float = 1.0, stall_s: float = 60.0) -> None:
        self.box = box
        self.runtime = runtime
        self.records = records
        self.now_ms = now_ms
        self.monotonic = monotonic
        self.sleep = sleep
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.stall_s = stall_s
        self.chat_engine: ModelEngine | None = None
        self._job: _Job | None = None
        self._queue_task: asyncio.Task[None] | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._etas: dict[str, EtaEstimator] = {}
        self._replying = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._asked_persistence = False
        self._persist_records = True
        self._tasks: set[asyncio.Future[Any]] = set()
        self._order: dict[str, int] = {}
        self._sequence = 0
        self.on_switch: Callable[[str], None] | None = None
        """Called with a catalog key when the chat engine switches to that model."""

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- reading the state ----------------------------------------------------------

    @property
    def f16(self) -> bool:
        gpu = self.box.state.gpu
        return bool(gpu and gpu.f16)

    def spec(self, key: str) -> ModelSpec:
        return model_for_key(key) or model_for_key(DEFAULT_MODEL_KEY)  # type: ignore[return-value]

    def model_id(self, key: str) -> str:
        return self.spec(key).model_id(self.f16)

    def item(self, key: str) -> DownloadItem | None:
        return self.box.state.downloads.get(key)

    def requested_key(self) -> str:
        return self.box.state.requested_model_key

    def loaded_key(self) -> str | None:
        loaded = self.box.state.engine.loaded_model
        spec = spec_for_model_id(loaded) if loaded else None
        return spec.key if spec else None

    def fit(self, key: str) -> ModelFit:
        return model_fit(self.spec(key), self.box.state.gpu)

    def size_text(self, key: str) -> str:
        exact = self.box.state.model_sizes.get(key)
        if exact:
            return format_bytes(exact)
        return format_bytes(self.spec(key).download_mb(self.f16) * MB, approximate=True)

    def _bytes_needed(self, key: str) -> int:
        return self.box.state.model_sizes.get(key) or int(
            self.spec(key).download_mb(self.f16) * MB)

    # --- changing the state -----------------------------------------------------------

    def _put(self, item: DownloadItem, persist: bool = True) -> None:
        self.box.update(downloads={**self.box.state.downloads, item.key: item})
        if persist:
            self._spawn(self._save(item))

    def _remove(self, key: str) -> None:
        downloads = dict(self.box.state.downloads)
        downloads.pop(key, None)
        self.box.update(downloads=downloads)
        self._spawn(self._forget(key))

    async def _save(self, item: DownloadItem) -> None:
        if not self._persist_records:
            return
        try:
            await self.records.save_download(item_to_record(item))
        except StoreFailure:
            self._persist_records = False  # the queue still works, it just won't survive

    async def _forget(self, key: str) -> None:
        if not self._persist_records:
            return
        try:
            await self.records.delete_download(key)
        except StoreFailure:
            self._persist_records = False

    def _set_loaded(self, model_id: str | None) -> None:
        self.box.update(engine=EngineStatus(model_id))

    # --- start-up ----------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the queue, find models already in the cache, read sizes, resume."""
        items: dict[str, DownloadItem] = {}
        try:
            records = await self.records.load_downloads()
        except StoreFailure:
            records = []
            self._persist_records = False
        for record in records:
            item = item_from_record(record) if isinstance(record, dict) else None
            if item is not None and item.model_id == self.model_id(item.key):
                items[item.key] = item
        for spec in CATALOG:
            model_id = spec.model_id(self.f16)
            cached = await self._is_cached(model_id)
            item = items.get(spec.key)
            if cached and (item is None or not item.state.active):
                items[spec.key] = DownloadItem(spec.key, model_id, DownloadState.READY,
                                               requested_at=item.requested_at if item else 0)
            elif not cached and item is not None and item.state is DownloadState.READY:
                del items[spec.key]  # its files were removed outside the app
                self._spawn(self._forget(spec.key))
        # Requests made while this ran (a message sent right after boot) win.
        self.box.update(downloads={**items, **self.box.state.downloads})
        await self._read_sizes()
        self._spawn(self.refresh_storage())
        if any(i.state is DownloadState.QUEUED for i in items.values()):
            self._kick()

    async def _is_cached(self, model_id: str) -> bool:
        try:
            return await self.runtime.is_cached(model_id)
        except EngineFailure:
            return False

    async def _read_sizes(self) -> None:
        sizes = dict(self.box.state.model_sizes)
        for spec in CATALOG:
            try:
                size = await self.runtime.download_size(spec.model_id(self.f16))
            except EngineFailure:
                size = None
            if size:
                sizes[spec.key] = size
        self.box.update(model_sizes=sizes)

    async def refresh_storage(self) -> None:
        try:
            usage, quota, persisted = await self.runtime.storage()
        except EngineFailure:
            return
        self.box.update(storage=StorageInfo(usage, quota, persisted))

    # --- requests ----------------------------------------------------------------------

    def request(self, key: str) -> bool:
        """Queue the model's download (or its load, when cached). False if it can't run."""
        spec = model_for_key(key)
        if spec is None or not self.fit(key).usable:
            return False
        item = self.item(key)
        model_id = spec.model_id(self.f16)
        if item is not None and item.state.active:
            return True  # one download per model: later requests share it
        if item is not None and item.state is DownloadState.READY and \
                self.box.state.engine.loaded_model == model_id:
            return True
        self._sequence += 1
        self._order[key] = self._sequence  # request order within the same millisecond
        self._put(DownloadItem(key, model_id, DownloadState.QUEUED,
                               requested_at=self.now_ms(),
                               bytes_total=self.box.state.model_sizes.get(key)))
        self._kick()
        return True

    def conversation_model_changed(self, key: str, download: bool) -> None:
        """The active conversation asks for `key` now: load it if cached, else, when
        `download` (the user chose it), download it. A model that is already loaded
        switches at once, confirmed (on_switch) only when the user chose it: opening a
        chat that uses the loaded model changes nothing worth announcing."""
        if self.box.state.engine.loaded_model == self.model_id(key):
            if download and self.on_switch is not None:
                self.on_switch(key)
            return
        item = self.item(key)
        if item is not None and item.state is DownloadState.READY:
            self.request(key)  # cached: only a load (Compiling), then the switch
        elif download:
            self.request(key)

    def cancel(self, key: str) -> None:
        item = self.item(key)
        if item is None or not item.state.active:
            return
        job = self._job
        if job is not None and job.key == key:
            job.canceled = True
            if job.engine is not None:
                job.engine.terminate()  # the one cancel that works in every phase
        self._put(item.with_state(DownloadState.CANCELED, retry=0, eta_seconds=None))
        self._wake(key)

    async def delete(self, key: str) -> None:
        """Remove a Ready model's files (the caller has asked the user)."""
        item = self.item(key)
        if item is None or item.state is not DownloadState.READY:
            return
        if self.box.state.engine.loaded_model == item.model_id and self.chat_engine:
            await self._when_idle()
            self.chat_engine.terminate()
            self.chat_engine = None
            self._set_loaded(None)
        await self.runtime.delete_model(item.model_id)
        self._remove(key)
        await self.refresh_storage()

    # --- replies -----------------------------------------------------------------------

    async def engine_for_reply(self, key: str) -> ModelEngine:
        """The engine a reply in a conversation asking for `key` should use.

        The conversation's own model when it is loaded (or can be, waiting for it only
        when nothing else is loaded); otherwise the loaded model keeps answering while
        the wanted one downloads.
        """
        key = key if model_for_key(key) is not None else DEFAULT_MODEL_KEY
        loaded = self.box.state.engine.loaded_model
        if self.chat_engine is not None and loaded == self.model_id(key):
            return self.chat_engine
        item = self.item(key)
        cached = item is not None and item.state is DownloadState.READY
        compiling = item is not None and item.state is DownloadState.COMPILING and item.cached
        if self.chat_engine is not None and not (cached or compiling):
            return self.chat_engine
        fit = self.fit(key)
        if not fit.usable:
            if self.chat_engine is not None:
                return self.chat_engine
            raise NoModel(UserMessage(f"{self.spec(key).label} can't run on this device.",
                                      fit.reason, "Choose another model."))
        self.request(key)
        await self._wait_for(key)
        if self.chat_engine is not None:
            return self.chat_engine
        item = self.item(key)
        if item is not None and item.state is DownloadState.FAILED and item.error:
            raise NoModel(item.error)
        raise NoModel(UserMessage(f"{self.spec(key).label} isn't ready.",
                                  "Its download was canceled.",
                                  "Open Downloads to start it again."))

    def reply_started(self) -> None:
        self._replying += 1
        self._idle.clear()

    def reply_ended(self) -> None:
        self._replying = max(0, self._replying - 1)
        if self._replying == 0:
            self._idle.set()

    async def _when_idle(self) -> None:
        await self._idle.wait()

    async def _wait_for(self, key: str) -> None:
        future: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        await future

    def _wake(self, key: str) -> None:
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(None)

    # --- the queue -----------------------------------------------------------------------

    def _kick(self) -> None:
        if self._queue_task is None or self._queue_task.done():
            self._queue_task = asyncio.ensure_future(self._run_queue())

    async def _run_queue(self) -> None:
        while True:
            queued = sorted((i for i in self.box.state.downloads.values()
                             if i.state is DownloadState.QUEUED),
                            key=lambda i: (i.requested_at, self._order.get(i.key, 0)))
            if not queued:
                return
            key = queued[0].key
            try:
                await self._run(key)
            finally:
                self._job = None
                item = self.item(key)
                if item is None or not item.state.active:
                    self._wake(key)  # a new request for it keeps its waiters waiting

    def _still_mine(self, job: _Job) -> bool:
        item = self.item(job.key)
        return not job.canceled and item is not None and item.state.active

    async def _run(self, key: str) -> None:
        item = self.item(key)
        if item is None:
            return
        job = self._job = _Job(key)
        cached = await self._is_cached(item.model_id)
        if not self._still_mine(job):
            return
        if not cached:
            problem = await self._space_problem(key)
            if problem is not None:
                self._put(item.with_state(DownloadState.FAILED, error=problem))
                return
            if not self._asked_persistence:
                self._asked_persistence = True
                with contextlib.suppress(EngineFailure):
                    await self.runtime.request_persistence()
        if not self._still_mine(job):
            return
        item = self.item(key) or item
        state = DownloadState.COMPILING if cached else DownloadState.DOWNLOADING
        self._put(item.with_state(state, error=None, retry=0, bytes_done=0,
                                  compile_fraction=0.0, eta_seconds=None, cached=cached))
        self._etas[key] = EtaEstimator()
        attempt = 0
        while True:
            engine = self.runtime.new_engine()
            job.engine = engine
            try:
                await self._load(job, engine)
                break
            except EngineFailure as failure:
                engine.terminate()
                if not self._still_mine(job):
                    return  # canceled: cancel() already set the state
                current = self.item(key)
                if current is None:
                    return
                if _retryable(failure) and attempt < self.max_retries:
                    attempt += 1
                    self._put(current.with_state(DownloadState.DOWNLOADING, retry=attempt,
                                                 eta_seconds=None), persist=False)
                    await self.sleep(self.backoff_s * 2 ** (attempt - 1))
                    if not self._still_mine(job):
                        return
                    continue
                self._put(current.with_state(DownloadState.FAILED, retry=0, eta_seconds=None,
                                             error=explain_engine_failure(failure)))
                self._spawn(self.refresh_storage())
                return
        await self._loaded(job, engine)

    async def _space_problem(self, key: str) -> UserMessage | None:
        try:
            usage, quota, _persisted = await self.runtime.storage()
        except EngineFailure:
            return None
        if usage is None or quota is None:
            return None
        free = max(0, quota - usage)
        need = self._bytes_needed(key)
        if free >= need:
            return None
        return UserMessage(f"Needs {format_bytes(need)}, {format_bytes(free)} available.",
                           "The browser won't give LocalChat enough storage for this model.",
                           "Free disk space or delete a downloaded model, then retry.")

    async def _load(self, job: _Job, engine: ModelEngine) -> None:
        key = job.key
        last_progress = self.monotonic()

        def progress(fraction: float, text: str) -> None:
            nonlocal last_progress
            last_progress = self.monotonic()
            if self._still_mine(job):
                self._on_progress(key, fraction, text)

        task = asyncio.ensure_future(engine.load(self.model_id(key), progress))
        while True:
            done, _ = await asyncio.wait({task}, timeout=min(2.0, self.stall_s))
            if done:
                task.result()
                return
            if self.monotonic() - last_progress > self.stall_s and self._still_mine(job):
                engine.terminate()
                with contextlib.suppress(EngineFailure):
                    await task
                raise EngineFailure("StallError", f"The download made no progress for "
                                                  f"{self.stall_s:g} s (connection stalled).")

    def _on_progress(self, key: str, fraction: float, text: str) -> None:
        item = self.item(key)
        if item is None:
            return
        report = parse_progress(text, fraction)
        if report.phase is LoadPhase.DOWNLOADING:
            total = item.bytes_total
            if total is None and report.megabytes and report.fraction > 0:
                total = int(report.megabytes * MB / report.fraction)
            done = int(report.fraction * total) if total else (report.megabytes or 0) * MB
            eta = self._etas.setdefault(key, EtaEstimator())
            now = self.monotonic()
            eta.add(now, done)
            self._put(item.with_state(DownloadState.DOWNLOADING, bytes_done=done,
                                      bytes_total=total,
                                      eta_seconds=eta.seconds_left(total or done, now)),
                      persist=item.state is not DownloadState.DOWNLOADING)
        elif report.phase.compiling:
            share = report.fraction * 0.5 + (0.5 if report.phase is LoadPhase.SHADERS else 0)
            self._put(item.with_state(DownloadState.COMPILING, compile_fraction=share,
                                      bytes_done=item.bytes_total or item.bytes_done,
                                      eta_seconds=None),
                      persist=item.state is not DownloadState.COMPILING)

    async def _loaded(self, job: _Job, engine: ModelEngine) -> None:
        key = job.key
        if self.requested_key() == key or (self.chat_engine is None and key in self._waiters):
            await self._when_idle()  # never cut off a reply that is streaming
            if not self._still_mine(job):
                engine.terminate()
                return
        wanted = self.requested_key() == key or (self.chat_engine is None
                                                 and key in self._waiters)
        if wanted:  # still wanted after the wait (the user may have switched back)
            old, self.chat_engine = self.chat_engine, engine
            if old is not None:
                old.terminate()
            self._set_loaded(engine.loaded_model)
            self._put(self._ready(key))
            if self.on_switch is not None:
                self.on_switch(key)
        else:
            engine.terminate()  # frees the GPU; the files stay cached
            self._put(self._ready(key))
        self._spawn(self.refresh_storage())

    def _ready(self, key: str) -> DownloadItem:
        item = self.item(key)
        assert item is not None
        return item.with_state(DownloadState.READY, retry=0, eta_seconds=None, error=None,
                               compile_fraction=1.0, bytes_done=item.bytes_total or 0)
