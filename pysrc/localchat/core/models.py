"""Models: the download queue and the engine switch.

`ModelService` owns the runtime split of DESIGN.md ("Runtime state"):
- the requested model of the active conversation is derived from the state (the open
  conversation's `model`, or the new-chat choice);
- the engine-loaded model is `state.engine.loaded_model`, answered by `chat_engine`;
- the lifecycle of each model is `state.downloads` (core/downloads.py, persisted through
  `DownloadRecords`).

Two resources, used independently:
- **The downloader** (core/downloader.py, no GPU): one download at a time, in request
  order. A finished download that the active conversation asks for goes on to Compiling;
  one downloaded for later is just Ready.
- **The GPU**: one model in GPU memory, in the one chat engine. A model is loaded
  (Compiling) only when it is needed now: its download finished while the conversation
  wants it, or the user opens or sends in a conversation whose model is stored but not
  loaded. The engine in GPU memory is stopped first (after the reply that is streaming);
  a start that fails goes back to the model that was loaded before. A lost GPU device or
  a crashed worker drops the engine; the next reply loads the model again.

Cancel stops a download (its complete files stay) or a start (the worker is terminated,
the files stay complete: it is Ready again).
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
from .downloader import (
    Downloader,
    DownloadProgress,
    FetchFailure,
    Inventory,
    ModelSource,
    explain_fetch_failure,
)
from .downloads import (
    MB,
    DownloadEvent,
    DownloadItem,
    DownloadState,
    ModelFit,
    format_bytes,
    item_from_record,
    item_to_record,
    model_fit,
    new_item,
)
from .errors import (
    EngineFailure,
    StoreFailure,
    UserMessage,
    explain_engine_failure,
    explain_start_failure,
)
from .eta import EtaEstimator
from .progress import LoadPhase, parse_progress
from .state import EngineStatus, StateBox, StorageInfo

__all__ = ["ModelService", "ModelView", "NoModel"]

E = DownloadEvent
PERSIST_PROGRESS_S = 5.0
"""How often the bytes of a running download are saved (a reload shows them at once)."""


class NoModel(Exception):
    """No model can answer; `problem` says why and what to do."""

    def __init__(self, problem: UserMessage) -> None:
        super().__init__(problem.title)
        self.problem = problem


@dataclass
class _Switch:
    """A model being loaded onto the GPU."""

    key: str
    done: asyncio.Future[None]
    engine: ModelEngine | None = None
    aborted: bool = False
    canceled: bool = False
    """Aborted by the user's Cancel (not by another model's start)."""


@dataclass
class _Download:
    key: str
    task: asyncio.Future[None] | None = None
    canceled: bool = False


class ModelView:
    """What every tab can read about the models, from the state alone: names, sizes, the
    lifecycle items and the loaded model. `ModelService` (the tab that owns the downloads
    and the engine) and `core.tabs.RemoteModels` (the other tabs) both build on it."""

    box: StateBox

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

    def kept_text(self, key: str) -> str:
        """The bytes of the model's files stored now, in words ("1.2 GB")."""
        item = self.item(key)
        if item is not None and item.state is DownloadState.READY:
            return self.size_text(key)
        return format_bytes(item.bytes_done if item else 0)

    def _bytes_needed(self, key: str) -> int:
        return self.box.state.model_sizes.get(key) or int(
            self.spec(key).download_mb(self.f16) * MB)

    # --- taking turns on the one engine -------------------------------------------------

    async def take_turn(self) -> None:
        """Wait until no other reply is using the engine (one reply at a time, whichever
        tab sent it); `end_turn` lets the next one go."""

    def end_turn(self) -> None:
        """The reply that took its turn is over."""


class ModelService(ModelView):
    def __init__(self, box: StateBox, runtime: ModelRuntime, records: DownloadRecords,
                 downloader: Downloader, *, now_ms: Callable[[], int],
                 monotonic: Callable[[], float] = time.monotonic,
                 max_retries: int | None = None) -> None:
        self.box = box
        self.runtime = runtime
        self.records = records
        self.downloader = downloader
        self.now_ms = now_ms
        self.monotonic = monotonic
        self.max_retries = max_retries if max_retries is not None else \
            downloader.policy.max_retries
        self.chat_engine: ModelEngine | None = None
        self._download: _Download | None = None
        self._switch: _Switch | None = None
        self._queue_task: asyncio.Future[None] | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._sources: dict[str, ModelSource] = {}
        self._refetch_start_files: set[str] = set()
        self._replying = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._asked_persistence = False
        self._persist_records = True
        self._tasks: set[asyncio.Future[Any]] = set()
        self._order: dict[str, int] = {}
        self._sequence = 0
        self._turn = asyncio.Lock()
        self.remote_wants: dict[str, str] = {}
        """What the open chat of each other tab asks for (by tab id): needed now too."""
        self.on_switch: Callable[[str], None] | None = None
        """Called with a catalog key when the chat engine switches to that model."""
        self.on_already_loaded: Callable[[str], None] | None = None
        """The user chose the model that is loaded already: only whoever chose it is told
        (several tabs: the one that asked); None: `on_switch` is called."""

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- changing the state -----------------------------------------------------------

    def _put(self, item: DownloadItem, persist: bool = True) -> None:
        self.box.update(downloads={**self.box.state.downloads, item.key: item})
        if persist:
            self._spawn(self._save(item))

    def _move(self, key: str, event: DownloadEvent, persist: bool = True,
              **changes: Any) -> DownloadItem:
        item = self.item(key)
        assert item is not None, key
        moved = item.moved(event, **changes)
        self._put(moved, persist)
        return moved

    def _drop(self, key: str) -> None:
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

    def _set_size(self, key: str, total: int | None) -> None:
        if total and self.box.state.model_sizes.get(key) != total:
            self.box.update(model_sizes={**self.box.state.model_sizes, key: total})

    async def _source(self, model_id: str) -> ModelSource:
        source = self._sources.get(model_id)
        if source is None:
            source = self._sources[model_id] = await self.runtime.model_source(model_id)
        return source

    async def _inventory(self, model_id: str) -> Inventory | None:
        try:
            return await self.downloader.inspect(await self._source(model_id))
        except (EngineFailure, FetchFailure):
            return None

    # --- start-up ----------------------------------------------------------------------

    async def start(self, adopt: bool = True) -> None:
        """Restore the queue, find what each model has stored, read sizes, resume.
        `adopt=False` (a tab taking over from the owner that closed): the items in the
        state are the old owner's view, so the stored records and files decide alone."""
        if not adopt:
            self.box.update(downloads={})
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
        sizes: dict[str, int] = {}
        for spec in CATALOG:
            model_id = spec.model_id(self.f16)
            found = await self._inventory(model_id)
            item = items.get(spec.key)
            if found is None:
                continue
            if found.total_bytes:
                sizes[spec.key] = found.total_bytes
            else:
                with contextlib.suppress(EngineFailure, FetchFailure):
                    size = await self.downloader.size(await self._source(model_id))
                    if size:
                        sizes[spec.key] = size
            restored = self._restore(spec.key, model_id, item, found)
            if restored is None:
                items.pop(spec.key, None)
                if item is not None:
                    self._spawn(self._forget(spec.key))
            else:
                items[spec.key] = restored
        # Requests made while this ran (a message sent right after boot) win.
        self.box.update(downloads={**items, **self.box.state.downloads},
                        model_sizes={**sizes, **self.box.state.model_sizes},
                        models_checking=False)
        self._spawn(self.refresh_storage())
        if any(i.state is DownloadState.QUEUED for i in self.box.state.downloads.values()):
            self._kick()

    @staticmethod
    def _restore(key: str, model_id: str, item: DownloadItem | None,
                 found: Inventory) -> DownloadItem | None:
        """A model's item after a reload, from its record and what is really stored."""
        total = found.total_bytes or (item.bytes_total if item else None)
        if found.complete:
            if item is not None and (item.state.active or (
                    item.state is DownloadState.FAILED and item.failed_to_start)):
                return item.updated(bytes_done=found.stored_bytes, bytes_total=total)
            return DownloadItem(key, model_id, DownloadState.READY,
                                requested_at=item.requested_at if item else 0,
                                bytes_total=total, bytes_done=found.stored_bytes)
        if item is None or item.state is DownloadState.READY:
            if found.stored_bytes <= 0:
                return None  # nothing stored (or its files were removed outside the app)
            # Some files and no download going on: kept, so Resume or Remove files apply.
            return DownloadItem(key, model_id, DownloadState.CANCELED,
                                requested_at=item.requested_at if item else 0,
                                bytes_total=total, bytes_done=found.stored_bytes)
        if item.state is DownloadState.FAILED and item.failed_to_start:
            # Files went missing since: a retry downloads them again, like any failure.
            item = item.updated(failed_to_start=False)
        return item.updated(bytes_done=found.stored_bytes, bytes_total=total)

    async def refresh_storage(self) -> None:
        try:
            usage, quota, persisted = await self.runtime.storage()
        except EngineFailure:
            return
        self.box.update(storage=StorageInfo(usage, quota, persisted))

    # --- requests ----------------------------------------------------------------------

    def request(self, key: str) -> bool:
        """Download, Retry or Resume the model. False if it can't run here."""
        spec = model_for_key(key)
        if spec is None or not self.fit(key).usable:
            return False
        item = self.item(key)
        if item is not None and (item.state.active or item.state is DownloadState.READY):
            if item.state is DownloadState.READY and self._needed_now(key):
                self._ensure_engine(key)
            return True  # one download per model: later requests share it
        self._sequence += 1
        self._order[key] = self._sequence  # request order within the same millisecond
        now = self.now_ms()
        if item is None:
            self._put(new_item(key, spec.model_id(self.f16), now,
                               bytes_total=self.box.state.model_sizes.get(key)))
        else:
            if item.failed_to_start:
                self._refetch_start_files.add(key)
            self._move(key, E.REQUEST, requested_at=now, retry=0, error=None,
                       eta_seconds=None, failed_to_start=False, compile_fraction=0.0,
                       counting=False)
        self._kick()
        return True

    def conversation_model_changed(self, key: str, download: bool) -> None:
        """The active conversation asks for `key` now: start it if its files are stored,
        else, when `download` (the user chose it), download it. A model that is already
        loaded is confirmed (on_switch) only when the user chose it: opening a chat that
        uses the loaded model changes nothing worth announcing."""
        if self.box.state.engine.loaded_model == self.model_id(key):
            confirm = self.on_already_loaded or self.on_switch
            if download and confirm is not None:
                confirm(key)
            return
        item = self.item(key)
        if item is not None and item.state in (DownloadState.READY, DownloadState.COMPILING):
            if self.fit(key).usable:
                self._ensure_engine(key)
        elif download:
            self.request(key)

    def cancel(self, key: str) -> None:
        """Cancel the model's download (complete files stay) or its start."""
        item = self.item(key)
        if item is None or not item.state.active:
            return
        if item.state is DownloadState.COMPILING:
            switch = self._switch
            if switch is not None and switch.key == key:
                switch.canceled = True
                self._abort_switch(switch)
            else:
                self._move(key, E.STOP, compile_fraction=0.0)
            self._wake(key)
            return
        job = self._download
        if job is not None and job.key == key:
            job.canceled = True
            if job.task is not None:
                job.task.cancel()
        self._move(key, E.CANCEL, retry=0, eta_seconds=None, counting=True)
        self._wake(key)
        self._spawn(self._count_kept(key))

    async def _count_kept(self, key: str) -> None:
        """After a cancel or a failure: what is really kept (files cut mid-way are not)."""
        item = self.item(key)
        if item is None:
            return
        state = item.state
        found = await self._inventory(item.model_id)
        item = self.item(key)
        if item is not None and item.state is state:
            if found is not None:
                item = item.updated(bytes_done=found.stored_bytes,
                                    bytes_total=found.total_bytes or item.bytes_total)
            self._put(item.updated(counting=False))
        await self.refresh_storage()

    async def remove(self, key: str) -> None:
        """Remove the model's files (Ready, Failed or Canceled; the caller has asked)."""
        item = self.item(key)
        if item is None or item.state.active:
            return
        if self.box.state.engine.loaded_model == item.model_id and self.chat_engine:
            await self._when_idle()
            self._drop_engine()
        source = await self._source(item.model_id)
        await self.downloader.remove(source)
        item = self.item(key)
        if item is not None and not item.state.active:
            self._drop(key)
        self._refetch_start_files.discard(key)
        await self.refresh_storage()

    # --- replies -----------------------------------------------------------------------

    async def engine_for_reply(self, key: str) -> ModelEngine:
        """The engine a reply in a conversation asking for `key` should use.

        Its own model when it is loaded, or stored (it starts now); otherwise the loaded
        model keeps answering while the wanted one downloads, and with nothing loaded the
        reply waits for the wanted model.
        """
        key = key if model_for_key(key) is not None else DEFAULT_MODEL_KEY
        model_id = self.model_id(key)
        fit = self.fit(key)
        for _ in range(8):  # each pass waits for something that settles
            engine = self.chat_engine
            if engine is not None and self.box.state.engine.loaded_model == model_id:
                return engine
            item = self.item(key)
            if not fit.usable:
                if engine is not None:
                    return engine
                raise NoModel(UserMessage(f"{self.spec(key).label} can't run on this device.",
                                          fit.reason, "Choose another model."))
            if item is not None and item.state in (DownloadState.READY,
                                                   DownloadState.COMPILING):
                switch = self._ensure_engine(key)
                if switch is not None:
                    await switch.done
                    if switch.canceled:
                        raise NoModel(UserMessage(f"{self.spec(key).label} isn't running.",
                                                  "Starting it was canceled.",
                                                  "Send again to start it."))
                continue
            if item is not None and item.state is DownloadState.FAILED and item.failed_to_start:
                if engine is None and self._switch is not None:
                    await self._switch.done  # going back to the model loaded before
                    continue
                if engine is not None:
                    return engine
                raise NoModel(item.error or explain_start_failure(
                    EngineFailure("EngineError", ""), self.spec(key).label, 0))
            if engine is not None:
                return engine
            if self._switch is not None:
                await self._switch.done
                continue
            self.request(key)
            await self._wait_for(key)
            item = self.item(key)
            if item is not None and item.state is DownloadState.FAILED and item.error:
                raise NoModel(item.error)
            if item is None or item.state is DownloadState.CANCELED:
                raise NoModel(UserMessage(f"{self.spec(key).label} isn't ready.",
                                          "Its download was canceled.",
                                          "Open Downloads to start it again."))
        raise NoModel(UserMessage(f"{self.spec(key).label} isn't ready.",
                                  "It was started and stopped several times.", "Try again."))

    def engine_lost(self, engine: ModelEngine) -> None:
        """A reply found the engine unable to answer (GPU device lost, worker gone):
        drop it, so that the next reply loads the model again from the cache."""
        if engine is self.chat_engine:
            self._drop_engine()

    def _crashed(self, engine: ModelEngine, message: str) -> None:
        if engine is self.chat_engine:
            self._drop_engine()

    def _drop_engine(self) -> None:
        engine, self.chat_engine = self.chat_engine, None
        if engine is not None:
            engine.terminate()
        self._set_loaded(None)

    async def take_turn(self) -> None:
        await self._turn.acquire()

    def end_turn(self) -> None:
        if self._turn.locked():
            self._turn.release()

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

    def _needed_now(self, key: str) -> bool:
        return self.requested_key() == key or key in self.remote_wants.values() or (
            self.chat_engine is None and key in self._waiters)

    # --- the GPU: one model, loaded when needed now ------------------------------------

    def _ensure_engine(self, key: str) -> _Switch | None:
        """Load `key` (stored) into the chat engine, replacing what is there; a start of
        another model that is under way is stopped. The switch's `done` resolves when this
        start is over (None: the model is on the GPU already)."""
        switch = self._switch
        if switch is not None:
            if switch.key == key and not switch.aborted:
                return switch
            self._abort_switch(switch)
        if self.chat_engine is not None and \
                self.box.state.engine.loaded_model == self.model_id(key):
            return None
        item = self.item(key)
        if item is not None and item.state is DownloadState.READY:
            self._move(key, E.NEEDED, compile_fraction=0.0, eta_seconds=None)
        switch = _Switch(key, asyncio.get_event_loop().create_future())
        self._switch = switch
        self._spawn(self._run_switch(switch))
        return switch

    def _abort_switch(self, switch: _Switch) -> None:
        switch.aborted = True
        if switch.engine is not None:
            switch.engine.terminate()  # the one way to stop a load in every phase
        item = self.item(switch.key)
        if item is not None and item.state is DownloadState.COMPILING:
            self._move(switch.key, E.STOP, compile_fraction=0.0)
        if self._switch is switch:
            self._switch = None
        if not switch.done.done():
            switch.done.set_result(None)

    async def _run_switch(self, switch: _Switch) -> None:
        key = switch.key
        try:
            await self._when_idle()  # never cut off a reply that is streaming
            if switch.aborted:
                return
            previous = self.loaded_key()
            self._drop_engine()  # one model in GPU memory: the old one goes first
            engine = self.runtime.new_engine(lambda message: self._crashed(engine, message))
            switch.engine = engine

            def progress(fraction: float, text: str) -> None:
                if not switch.aborted:
                    self._on_compile_progress(key, fraction, text)

            try:
                await engine.load(self.model_id(key), progress)
            except EngineFailure as failure:
                engine.terminate()
                if switch.aborted:
                    return
                spec = self.spec(key)
                self._move(key, E.FAIL, failed_to_start=True, compile_fraction=0.0,
                           error=explain_start_failure(failure, spec.label,
                                                       spec.vram_mb(self.f16)))
                self._switch = None
                self._wake(key)
                back = self.item(previous) if previous else None
                if previous and previous != key and back is not None and \
                        back.state is DownloadState.READY:
                    self._ensure_engine(previous)  # the model the user had goes on answering
                return
            if switch.aborted:
                engine.terminate()
                return
            self.chat_engine = engine
            self._set_loaded(engine.loaded_model)
            self._move(key, E.LOADED, compile_fraction=1.0, error=None, retry=0)
            if self.on_switch is not None:
                self.on_switch(key)
        finally:
            if self._switch is switch:
                self._switch = None
            if not switch.done.done():
                switch.done.set_result(None)
            self._wake(key)
            self._spawn(self.refresh_storage())

    def _on_compile_progress(self, key: str, fraction: float, text: str) -> None:
        item = self.item(key)
        if item is None or item.state is not DownloadState.COMPILING:
            return
        report = parse_progress(text, fraction)
        if report.phase is LoadPhase.LOADING:
            share = report.fraction * 0.5
        elif report.phase is LoadPhase.SHADERS:
            share = 0.5 + report.fraction * 0.5
        elif report.phase is LoadPhase.READY:
            share = 1.0
        else:
            return  # "Start to fetch params", or a fetch WebLLM should never need
        if share > item.compile_fraction:
            self._put(item.updated(compile_fraction=share), persist=False)

    # --- the download queue ----------------------------------------------------------------

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
            except Exception as error:  # a bug must not stop the queue: fail this one
                item = self.item(key)
                if item is not None and item.state in (DownloadState.QUEUED,
                                                       DownloadState.DOWNLOADING):
                    self._move(key, E.FAIL, error=UserMessage(
                        f"{self.spec(key).label} couldn't be downloaded.",
                        f"LocalChat hit an internal error ({type(error).__name__}).",
                        "Reload the page, then retry."))
            finally:
                self._download = None
                item = self.item(key)
                if item is None or item.state is not DownloadState.COMPILING:
                    self._wake(key)  # a compile wakes them when it is over

    def _still_mine(self, job: _Download) -> bool:
        item = self.item(job.key)
        return not job.canceled and item is not None and item.state in (
            DownloadState.QUEUED, DownloadState.DOWNLOADING)

    async def _run(self, key: str) -> None:
        item = self.item(key)
        if item is None:
            return
        job = self._download = _Download(key)
        label = self.spec(key).label
        try:
            source = await self._source(item.model_id)
            if key in self._refetch_start_files:
                await self.downloader.forget_start_files(source)
                self._refetch_start_files.discard(key)
            found = await self.downloader.inspect(source)
        except EngineFailure as failure:
            if self._still_mine(job):
                self._move(key, E.FAIL, error=explain_engine_failure(failure))
            return
        except FetchFailure as failure:
            if self._still_mine(job):
                self._move(key, E.FAIL, error=explain_fetch_failure(failure, label))
            return
        if not self._still_mine(job):
            return
        if not found.complete:
            problem = await self._space_problem(key, found)
            if problem is not None:
                if self._still_mine(job):
                    self._move(key, E.FAIL, error=problem)
                return
            if not self._asked_persistence:
                self._asked_persistence = True
                with contextlib.suppress(EngineFailure):
                    await self.runtime.request_persistence()
            if not self._still_mine(job):
                return
        item = self._move(key, E.START, error=None, retry=0, eta_seconds=None,
                          bytes_done=found.stored_bytes,
                          bytes_total=found.total_bytes or self.item(key).bytes_total)  # type: ignore[union-attr]
        self._set_size(key, found.total_bytes)
        eta = EtaEstimator()
        saved_at = self.monotonic()

        def progress(report: DownloadProgress) -> None:
            nonlocal saved_at
            current = self.item(key)
            if not self._still_mine(job) or current is None:
                return
            if report.bytes_total is None:
                # Before every file's length is known, the item keeps what it knew (the
                # bytes stored when the run began, the total of an earlier run): a Retry
                # never shows less than was there, nor a total that shrinks and grows.
                done = max(report.bytes_done, current.bytes_done)
                total = current.bytes_total
            else:
                done, total = report.bytes_done, report.bytes_total
            now = self.monotonic()
            eta.add(now, done)
            persist = now - saved_at >= PERSIST_PROGRESS_S
            if persist:
                saved_at = now
            retry_at = None if report.retry_in_s is None else \
                self.now_ms() + round(report.retry_in_s * 1000)
            self._put(current.updated(
                bytes_done=done, bytes_total=total, retry=report.retry, retry_at_ms=retry_at,
                eta_seconds=eta.seconds_left(total, now) if total else None), persist=persist)
            if report.bytes_total:
                self._set_size(key, report.bytes_total)

        job.task = asyncio.ensure_future(self.downloader.download(source, progress))
        await asyncio.wait({job.task})
        if job.task.cancelled() or not self._still_mine(job):
            return  # canceled: cancel() has set the state
        outcome = job.task.exception()
        if isinstance(outcome, FetchFailure):
            self._move(key, E.FAIL, retry=0, eta_seconds=None,
                       error=explain_fetch_failure(outcome, label))
            self._spawn(self._count_kept(key))
            return
        if outcome is not None:
            raise outcome
        current = self.item(key)
        done = current.bytes_total if current and current.bytes_total else None
        if self._needed_now(key) and self.fit(key).usable:
            self._move(key, E.NEEDED, retry=0, eta_seconds=None, compile_fraction=0.0,
                       bytes_done=done or (current.bytes_done if current else 0))
            self._ensure_engine(key)
        else:
            self._move(key, E.COMPLETE, retry=0, eta_seconds=None,
                       bytes_done=done or (current.bytes_done if current else 0))
        self._spawn(self.refresh_storage())

    async def _space_problem(self, key: str, found: Inventory) -> UserMessage | None:
        try:
            usage, quota, _persisted = await self.runtime.storage()
        except EngineFailure:
            return None
        if usage is None or quota is None:
            return None
        free = max(0, quota - usage)
        need = max(0, (found.total_bytes or self._bytes_needed(key)) - found.stored_bytes)
        if free >= need:
            return None
        return UserMessage(f"Needs {format_bytes(need)}, {format_bytes(free)} available.",
                           "The browser won't give LocalChat enough storage for this model.",
                           "Free disk space or remove a downloaded model, then retry.")
