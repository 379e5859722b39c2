"""ModelService (core/models.py) on the fakes, driven by asyncio.run.

Downloads go through the real Downloader against FakeModelHost (files in memory,
faults, holds); engines come from a FakeRuntime and are FakeEngines, which load only
from stored files (a load that would need a download fails) — the ones a test wants to
behave differently are scripted in order with `Rig.script`. Retry backoff goes through
`Rig.sleep`, which records each wait and can be held.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from localchat.core.downloader import (
    CONFIG_CACHE,
    MODEL_CACHE,
    WASM_CACHE,
    Downloader,
    FailureKind,
    RetryPolicy,
)
from localchat.core.downloads import (
    RECORD_VERSION,
    DownloadItem,
    DownloadState,
    item_to_record,
    progress_words,
)
from localchat.core.errors import EngineFailure, StoreFailure
from localchat.core.gpu import GpuReport
from localchat.core.models import ModelService, NoModel
from localchat.core.state import AppState, StateBox
from localchat.ports import ChatResult
from tests.fakes import FakeClock, FakeDownloadRecords, FakeEngine, FakeModelHost, FakeRuntime

S = DownloadState
K = FailureKind
MB = 1024 * 1024
GB = 1024 * MB
NOW = 1_700_000_000_000
QUICK = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
SMART = "Llama-3.2-3B-Instruct-q4f32_1-MLC"
GENIUS = "Llama-3.1-8B-Instruct-q4f32_1-MLC"
SMART_F16 = "Llama-3.2-3B-Instruct-q4f16_1-MLC"
IDS = {"quick": QUICK, "smart": SMART, "genius": GENIUS}
SHADERS = "Loading GPU shader modules"
LOST = EngineFailure("DeviceLostError", "Device was lost while compiling")


def shard(model_id: str, i: int) -> str:
    return FakeModelHost.source(model_id).file_url(f"params_shard_{i}.bin")


class Rig:
    """A ModelService on fakes; build it inside the running event loop."""

    def __init__(self, *, gpu: GpuReport | None = None, stored: tuple[str, ...] = (),
                 storage: tuple[int | None, int | None, bool | None] = (0, 50 * GB, False),
                 records: tuple[dict[str, Any], ...] = (), max_retries: int = 3) -> None:
        self.box = StateBox(AppState(gpu=gpu))
        self.clock = FakeClock(NOW, step_ms=1)
        self.mono = 0.0
        self.host = FakeModelHost()
        for model_id in stored:
            self.host.store_all(model_id)
        self.scripts: list[dict[str, Any]] = []
        self.factory: Callable[[], FakeEngine] | None = None
        self.runtime = FakeRuntime(self._engine, host=self.host, storage=storage)
        self.records = FakeDownloadRecords(records)
        self.sleeps: list[float] = []
        self.hold_backoff = False
        self.backoff_release = asyncio.Event()
        self.gpu_peak = 0
        self.downloader = Downloader(self.host, sleep=self.sleep,
                                     policy=RetryPolicy(max_retries=max_retries,
                                                        backoff_s=0.01))
        self.models = ModelService(self.box, self.runtime, self.records, self.downloader,
                                   now_ms=self.clock.now_ms, monotonic=lambda: self.mono)
        self.switches: list[str] = []
        self.models.on_switch = self.switches.append
        self.history: dict[str, list[DownloadItem]] = {}
        self.box.subscribe(self._watch)

    def _engine(self) -> FakeEngine:
        # One model in GPU memory: no engine may be made while another is alive.
        alive = [e for e in self.runtime.engines if not e.terminated]
        assert not alive, f"an engine was made while {len(alive)} still held the GPU"
        if self.scripts:
            return FakeEngine(**self.scripts.pop(0))
        return self.factory() if self.factory is not None else FakeEngine()

    def script(self, *engines: dict[str, Any]) -> None:
        """How the next engines made behave (FakeEngine keyword arguments), in order."""
        self.scripts.extend(engines)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.hold_backoff:
            await self.backoff_release.wait()
        await asyncio.sleep(0)

    def _watch(self, old: AppState, new: AppState) -> None:
        for key, item in new.downloads.items():
            if old.downloads.get(key) != item:
                self.history.setdefault(key, []).append(item)

    # --- reading ------------------------------------------------------------------------

    @property
    def engines(self) -> list[FakeEngine]:
        return self.runtime.engines

    def state(self, key: str) -> DownloadState | None:
        item = self.box.state.downloads.get(key)
        return item.state if item is not None else None

    def item(self, key: str) -> DownloadItem:
        item = self.box.state.downloads.get(key)
        assert item is not None, key
        return item

    def states(self, key: str) -> list[DownloadState]:
        """The states `key` went through, without repeats."""
        out: list[DownloadState] = []
        for item in self.history.get(key, []):
            if not out or out[-1] is not item.state:
                out.append(item.state)
        return out

    @property
    def loaded(self) -> str | None:
        return self.box.state.engine.loaded_model

    def alive(self) -> list[FakeEngine]:
        return [e for e in self.engines if not e.terminated]

    def fetched(self, model_id: str) -> list[str]:
        files = set(self.host.model_files(model_id))
        return [u for u, _ in self.host.requests if u in files]

    def complete(self, model_id: str) -> bool:
        return set(self.host.model_files(model_id)) <= self.host.stored_urls()

    # --- driving ------------------------------------------------------------------------

    def want(self, key: str) -> None:
        """The new, unsaved chat asks for `key` (what the composer's picker does)."""
        self.box.update(new_chat_model=key)

    async def until(self, condition: Callable[[], bool], what: str,
                    timeout: float = 3.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.001)

    async def settle(self) -> None:
        """Wait until the queue and the GPU are idle and the background saves are done."""
        def quiet() -> bool:
            task = self.models._queue_task
            return ((task is None or task.done()) and not self.models._tasks
                    and self.models._switch is None
                    and not any(i.state.active for i in self.box.state.downloads.values()))

        calm = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while calm < 3:
            for _ in range(5):
                await asyncio.sleep(0)
            calm = calm + 1 if quiet() else 0
            if loop.time() > deadline:
                raise AssertionError("timed out waiting for the models to settle")
            if not calm:
                await asyncio.sleep(0.001)

    async def holding(self, index: int) -> FakeEngine:
        """The index-th engine made, once its load is held."""
        await self.until(lambda: len(self.engines) > index and self.engines[index].holding.is_set(),
                         f"engine {index} to hold")
        return self.engines[index]


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def reply(rig: Rig, engine: FakeEngine, deltas: list[str]) -> ChatResult:
    """A reply as ChatService streams one: bracketed by reply_started/reply_ended."""
    rig.models.reply_started()
    try:
        return await engine.chat([{"role": "user", "content": "hi"}], deltas.append)
    finally:
        rig.models.reply_ended()


async def load_smart(rig: Rig) -> FakeEngine:
    """Download and start Smart (the default requested model)."""
    assert rig.models.request("smart")
    await rig.settle()
    assert rig.loaded == SMART
    assert rig.models.chat_engine is not None
    return rig.models.chat_engine  # type: ignore[return-value]


def record(key: str, state: str, *, model_id: str | None = None, requested_at: int = 1,
           version: int = RECORD_VERSION, **extra: Any) -> dict[str, Any]:
    out = {"key": key, "modelId": model_id or IDS[key], "state": state,
           "requestedAt": requested_at, "version": version}
    out.update(extra)
    return out


# --- the queue: one download at a time, in request order --------------------------------------


def test_downloads_run_one_at_a_time_in_request_order_and_touch_no_gpu() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("quick")  # nothing below is what the chat asks for
        held = shard(GENIUS, 1)
        rig.host.hold(held)
        for key in ("genius", "smart", "quick"):
            assert rig.models.request(key)
        await rig.host.until_holding(held)
        assert (rig.state("genius"), rig.state("smart"), rig.state("quick")) == \
            (S.DOWNLOADING, S.QUEUED, S.QUEUED)
        assert not rig.fetched(SMART) and not rig.fetched(QUICK)
        rig.host.release(held)
        await rig.settle()
        return rig

    rig = run(scenario)
    order = [u for u, _ in rig.host.requests]
    last_genius = max(i for i, u in enumerate(order) if "8B" in u)
    first_smart = min(i for i, u in enumerate(order) if "3B" in u)
    last_smart = max(i for i, u in enumerate(order) if "3B" in u)
    first_quick = min(i for i, u in enumerate(order) if "1B" in u)
    assert last_genius < first_smart and last_smart < first_quick
    # Genius and Smart were downloaded for later: Ready without ever going to the GPU.
    assert rig.states("genius") == [S.QUEUED, S.DOWNLOADING, S.READY]
    assert rig.states("smart") == [S.QUEUED, S.DOWNLOADING, S.READY]
    # Quick is what the chat asks for: it starts (the only engine ever made).
    assert rig.states("quick") == [S.QUEUED, S.DOWNLOADING, S.COMPILING, S.READY]
    assert [e.loads for e in rig.engines] == [[QUICK]]
    assert rig.loaded == QUICK


def test_requests_in_the_same_millisecond_keep_request_order() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.clock.step_ms = 0
        rig.want("genius")
        for key in ("smart", "quick", "genius"):
            assert rig.models.request(key)
        await rig.settle()
        return rig

    rig = run(scenario)
    firsts = {m: min(i for i, (u, _) in enumerate(rig.host.requests) if m in u)
              for m in ("3B", "1B", "8B")}
    assert firsts["3B"] < firsts["1B"] < firsts["8B"]


def test_two_requests_for_one_model_share_one_download() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        held = shard(QUICK, 0)
        rig.host.hold(held)
        assert rig.models.request("quick")
        assert rig.models.request("quick")
        await rig.host.until_holding(held)
        assert rig.models.request("quick")
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("quick"))
        await asyncio.sleep(0)
        rig.host.release(held)
        await rig.settle()
        assert waiter.result() is rig.engines[0]  # nothing else was loaded: it answers
        return rig

    rig = run(scenario)
    fetched = rig.fetched(QUICK)
    assert len(fetched) == len(set(fetched)) == len(rig.host.model_files(QUICK))
    assert rig.states("quick") == [S.QUEUED, S.DOWNLOADING, S.COMPILING, S.READY]


def test_a_request_for_the_loaded_model_does_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await load_smart(rig)
        assert rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert len(rig.engines) == 1
    assert rig.state("smart") is S.READY


def test_unknown_or_unfit_models_are_refused() -> None:
    low = GpuReport(usable=True, reason="ok", f16=False, low_resource=True)

    async def scenario() -> Rig:
        rig = Rig(gpu=low)
        assert not rig.models.request("turbo")
        assert not rig.models.request("genius")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.engines == [] and rig.host.requests == []
    assert rig.box.state.downloads == {}


# --- bytes ---------------------------------------------------------------------------------------


def test_progress_is_in_bytes_of_the_whole_model() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("quick")
        assert rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    total = rig.host.model_bytes(SMART)
    downloading = [i for i in rig.history["smart"] if i.state is S.DOWNLOADING]
    done = [i.bytes_done for i in downloading]
    assert done == sorted(done) and len(set(done)) > 8
    assert downloading[-1].bytes_done == total
    # Known from tensor-cache.json at once; the library's and tokenizer's lengths join
    # as their downloads start (they go first, so within the first second or so).
    totals = [i.bytes_total for i in downloading if i.bytes_total]
    assert totals == sorted(totals) and totals[-1] == total
    shards = sum(len(rig.host.files[shard(SMART, i)].body) for i in range(4))
    assert totals[0] >= shards
    assert rig.box.state.model_sizes["smart"] == total
    ready = rig.item("smart")
    assert (ready.fraction, ready.retry, ready.error, ready.eta_seconds) == (1.0, 0, None, None)
    assert rig.records.records["smart"]["state"] == "ready"


def test_a_resumed_download_shows_what_is_stored_at_once() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("quick")
        rig.host.store_all(SMART)
        for i in (2, 3):
            rig.host.caches[MODEL_CACHE].pop(shard(SMART, i))
        assert rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    first = next(i for i in rig.history["smart"] if i.state is S.DOWNLOADING)
    missing = sum(len(rig.host.files[shard(SMART, i)].body) for i in (2, 3))
    assert first.bytes_done == rig.host.model_bytes(SMART) - missing
    assert rig.fetched(SMART) == [shard(SMART, 2), shard(SMART, 3)]


def test_automatic_retries_are_shown_then_cleared() -> None:
    async def scenario() -> tuple[Rig, list[str]]:
        rig = Rig()
        rig.want("quick")
        rig.host.fail(shard(SMART, 1), K.HTTP, status=503, times=2)
        rig.hold_backoff = True
        assert rig.models.request("smart")
        await rig.until(lambda: rig.item("smart").retry == 1, "the first retry")
        words = [progress_words(rig.item("smart"), rig.models.max_retries)]
        rig.hold_backoff = False
        rig.backoff_release.set()
        await rig.settle()
        return rig, words

    rig, words = run(scenario)
    assert words[0].endswith("Retrying (1/3)…")
    assert max(i.retry for i in rig.history["smart"]) == 2
    assert rig.item("smart").state is S.READY and rig.item("smart").retry == 0


def test_a_failure_that_waiting_cannot_fix_fails_at_once_in_plain_words() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.host.fail(shard(SMART, 1), K.HTTP, status=404, times=None)
        assert rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    item = rig.item("smart")
    assert item.state is S.FAILED and not item.failed_to_start
    assert item.error is not None
    assert item.error.title == "The model host doesn't have Smart's files (HTTP 404)."
    assert rig.sleeps == [] and rig.engines == []
    assert 0 < item.bytes_done < rig.host.model_bytes(SMART)  # what is kept, for a retry


def test_retry_by_hand_fetches_only_what_is_missing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("quick")
        rig.host.fail(shard(SMART, 2), K.HTTP, status=403)
        assert rig.models.request("smart")
        await rig.settle()
        assert rig.state("smart") is S.FAILED
        kept = rig.host.stored_urls()
        assert kept
        rig.host.requests.clear()
        assert rig.models.request("smart")
        await rig.settle()
        assert not kept & set(rig.fetched(SMART))
        return rig

    rig = run(scenario)
    assert rig.states("smart")[-3:] == [S.QUEUED, S.DOWNLOADING, S.READY]
    assert shard(SMART, 2) in rig.fetched(SMART)
    assert rig.complete(SMART)


def test_a_bad_file_is_never_stored_and_retry_fetches_it_again() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        lib = FakeModelHost.source(SMART).lib_url
        rig.host.corrupt(lib, b"<!DOCTYPE html><p>Sign in to the Wi-Fi</p>")
        assert rig.models.request("smart")
        await rig.settle()
        item = rig.item("smart")
        assert item.error is not None
        assert item.error.title == "The model host sent something that isn't a model file."
        assert lib not in rig.host.stored_urls()
        assert rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.loaded == SMART


# --- one model on the GPU, loaded when needed now ------------------------------------------


def test_a_finished_download_the_chat_asks_for_replaces_the_loaded_model() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        old = await load_smart(rig)
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=True)
        await rig.settle()
        assert old.terminated
        return rig

    rig = run(scenario)
    assert rig.loaded == GENIUS
    assert [e.loads for e in rig.engines] == [[SMART], [GENIUS]]
    assert rig.switches == ["smart", "genius"]
    assert rig.states("genius") == [S.QUEUED, S.DOWNLOADING, S.COMPILING, S.READY]
    assert rig.state("smart") is S.READY


def test_the_old_model_leaves_the_gpu_before_the_new_one_loads_after_the_reply() -> None:
    async def scenario() -> tuple[Rig, list[str]]:
        rig = Rig(stored=(SMART, GENIUS))
        await rig.models.start()
        rig.script({"replies": [["a", "b"]], "pause_after": 1})
        smart = await rig.models.engine_for_reply("smart")
        deltas: list[str] = []
        streaming = asyncio.ensure_future(reply(rig, smart, deltas))  # type: ignore[arg-type]
        await rig.until(lambda: smart.paused.is_set(), "the reply to stream")  # type: ignore[attr-defined]
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        for _ in range(20):
            await asyncio.sleep(0)
        # Genius waits: the reply is not cut off, and Smart is still the only engine.
        assert rig.state("genius") is S.COMPILING
        assert len(rig.engines) == 1 and not smart.terminated  # type: ignore[attr-defined]
        smart.resume()  # type: ignore[attr-defined]
        await streaming
        await rig.settle()
        return rig, deltas

    rig, deltas = run(scenario)
    assert deltas == ["a", "b"]
    assert rig.loaded == GENIUS
    assert rig.host.requests == []  # loading from the cache sends no request


def test_opening_a_chat_whose_model_is_stored_starts_it() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(GENIUS,))
        await rig.models.start()
        assert rig.state("genius") is S.READY and rig.engines == []
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.states("genius") == [S.READY, S.COMPILING, S.READY]
    assert rig.loaded == GENIUS


def test_opening_a_chat_whose_model_is_missing_downloads_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.host.requests == [] and rig.box.state.downloads == {}


def test_opening_a_chat_with_the_loaded_model_announces_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await load_smart(rig)
        rig.switches.clear()
        rig.models.conversation_model_changed("smart", download=False)
        rig.models.conversation_model_changed("smart", download=True)
        return rig

    rig = run(scenario)
    assert rig.switches == ["smart"]  # only the user's own choice is confirmed


def test_no_start_when_the_chat_changed_its_mind_during_the_download() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        held = shard(QUICK, 0)
        rig.host.hold(held)
        rig.want("quick")
        assert rig.models.request("quick")
        await rig.host.until_holding(held)
        rig.want("smart")
        rig.host.release(held)
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.states("quick") == [S.QUEUED, S.DOWNLOADING, S.READY]
    assert rig.engines == [] and rig.switches == []


def test_a_newer_start_stops_the_one_under_way() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(QUICK, GENIUS))
        await rig.models.start()
        rig.script({"hold_at": SHADERS})
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        genius = await rig.holding(0)
        rig.want("quick")
        rig.models.conversation_model_changed("quick", download=False)
        await rig.settle()
        assert genius.terminated
        return rig

    rig = run(scenario)
    assert rig.states("genius") == [S.READY, S.COMPILING, S.READY]
    assert rig.loaded == QUICK


def test_a_start_that_fails_says_couldnt_start_and_the_previous_model_comes_back() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(SMART, GENIUS))
        await rig.models.start()
        await rig.models.engine_for_reply("smart")
        rig.script({"load_failure": LOST, "load_failure_at": SHADERS})
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        await rig.settle()
        return rig

    rig = run(scenario)
    item = rig.item("genius")
    assert item.state is S.FAILED and item.failed_to_start
    assert item.error is not None
    assert item.error.title == "Genius couldn't start."
    assert "about 6 GB of GPU memory" in item.error.detail
    assert rig.complete(GENIUS)  # its files stay: it can be retried or removed
    assert rig.loaded == SMART  # the model the user had answers again
    assert [e.loads for e in rig.engines] == [[SMART], [GENIUS], [SMART]]
    assert rig.records.records["genius"]["failedToStart"] is True


def test_retry_after_a_failure_to_start_fetches_the_library_and_config_again() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(GENIUS,))
        await rig.models.start()
        rig.script({"load_failure": EngineFailure("CompileError", "expected magic word")})
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        await rig.settle()
        assert rig.item("genius").failed_to_start
        assert rig.models.request("genius")  # Retry
        await rig.settle()
        return rig

    rig = run(scenario)
    source = FakeModelHost.source(GENIUS)
    assert sorted(rig.fetched(GENIUS)) == sorted([source.lib_url, source.config_url])
    assert rig.loaded == GENIUS
    assert rig.states("genius")[-4:] == [S.QUEUED, S.DOWNLOADING, S.COMPILING, S.READY]


def test_retry_after_a_failure_to_start_never_shows_less_than_was_stored() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(GENIUS,))
        await rig.models.start()
        rig.script({"load_failure": EngineFailure("CompileError", "expected magic word")})
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=False)
        await rig.settle()
        assert rig.item("genius").failed_to_start
        rig.history["genius"].clear()
        assert rig.models.request("genius")  # Retry: the library and config go first
        await rig.settle()
        return rig

    rig = run(scenario)
    shards = sum(len(rig.host.files[shard(GENIUS, i)].body) for i in range(4))
    downloading = [i for i in rig.history["genius"] if i.state is S.DOWNLOADING]
    fractions = [i.fraction for i in downloading]
    assert fractions, "no progress shown"
    assert fractions[0] >= shards / rig.host.model_bytes(GENIUS)  # never 0 %
    assert fractions == sorted(fractions)  # never backwards
    assert {i.bytes_total for i in downloading} == {rig.host.model_bytes(GENIUS)}


def test_a_reload_during_a_retry_after_a_failure_to_start_shows_the_stored_shards() -> None:
    # The page reloads after Retry removed the config and library, before they came back.
    async def scenario() -> tuple[Rig, DownloadItem]:
        total = FakeModelHost().model_bytes(GENIUS)
        rig = Rig(records=(record("genius", "downloading", bytesDone=total, bytesTotal=total),))
        rig.host.store_all(GENIUS)
        await rig.downloader.forget_start_files(FakeModelHost.source(GENIUS))
        await rig.models.start()
        restored = rig.item("genius")
        await rig.settle()
        return rig, restored

    rig, restored = run(scenario)
    total = rig.host.model_bytes(GENIUS)
    shards = sum(len(rig.host.files[shard(GENIUS, i)].body) for i in range(4))
    assert restored.bytes_done >= shards
    fractions = [i.fraction for i in rig.history["genius"] if i.state is S.DOWNLOADING]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert rig.item("genius").state is S.READY and rig.item("genius").bytes_total == total


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_while_queued() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        held = shard(QUICK, 0)
        rig.host.hold(held)
        rig.models.request("quick")
        rig.models.request("genius")
        await rig.host.until_holding(held)
        rig.models.cancel("genius")
        rig.host.release(held)
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.states("genius") == [S.QUEUED, S.CANCELED]
    assert rig.fetched(GENIUS) == []
    assert progress_words(rig.item("genius"), 3) == "Canceled. Nothing was kept."


def test_cancel_while_downloading_stops_the_requests_and_keeps_complete_files() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        held = shard(GENIUS, 2)
        rig.host.hold(held)
        rig.models.request("genius")
        await rig.host.until_holding(held)
        rig.models.cancel("genius")
        await rig.settle()
        return rig

    rig = run(scenario)
    item = rig.item("genius")
    assert item.state is S.CANCELED
    assert rig.host.in_flight == 0
    stored = sum(len(rig.host.files[u].body) for u in rig.host.model_files(GENIUS)
                 if u in rig.host.stored_urls())
    assert item.bytes_done == stored > 0
    assert item.bytes_total == rig.host.model_bytes(GENIUS)
    assert "kept; Resume continues from there." in progress_words(item, 3)
    # Until the stored files are counted no kept figure is shown (it never shrinks).
    canceled = [i for i in rig.history["genius"] if i.state is S.CANCELED]
    assert canceled[0].counting
    assert progress_words(canceled[0], 3) == "Canceled. Counting what was kept…"
    assert {i.bytes_done for i in canceled if not i.counting} == {item.bytes_done}


def test_resume_after_cancel_fetches_only_what_is_missing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        held = shard(GENIUS, 2)
        rig.host.hold(held)
        rig.models.request("genius")
        await rig.host.until_holding(held)
        rig.models.cancel("genius")
        await rig.settle()
        rig.host.release(held)
        stored = rig.host.stored_urls()
        rig.host.requests.clear()
        rig.models.request("genius")
        await rig.settle()
        assert not set(rig.fetched(GENIUS)) & stored
        return rig

    rig = run(scenario)
    assert rig.state("genius") is S.READY and rig.complete(GENIUS)


def test_cancel_while_starting_terminates_the_engine_and_leaves_it_ready() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(QUICK,))
        await rig.models.start()
        rig.script({"hold_at": SHADERS})
        rig.want("quick")
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("quick"))
        engine = await rig.holding(0)
        rig.models.cancel("quick")
        await rig.settle()
        assert engine.terminated
        # The reply that waited for it is told, rather than starting it again.
        with pytest.raises(NoModel) as caught:
            await waiter
        assert caught.value.problem.detail == "Starting it was canceled."
        return rig

    rig = run(scenario)
    assert rig.state("quick") is S.READY
    assert rig.loaded is None and len(rig.engines) == 1


def test_cancel_of_something_not_active_does_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await load_smart(rig)
        rig.models.cancel("smart")
        rig.models.cancel("genius")
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY and rig.state("genius") is None


# --- remove files --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["ready", "failed", "canceled"])
def test_remove_files_of_a_model_that_has_some(how: str) -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("quick")
        if how == "failed":
            rig.host.fail(shard(GENIUS, 3), K.HTTP, status=404)
        held = shard(GENIUS, 2)
        if how == "canceled":
            rig.host.hold(held)
        rig.models.request("genius")
        if how == "canceled":
            await rig.host.until_holding(held)
            rig.models.cancel("genius")
        await rig.settle()
        assert rig.state("genius") is {"ready": S.READY, "failed": S.FAILED,
                                       "canceled": S.CANCELED}[how]
        assert any(u in rig.host.stored_urls() for u in rig.host.model_files(GENIUS))
        await rig.models.remove("genius")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("genius") is None
    assert "genius" not in rig.records.records
    assert not any(u in rig.host.stored_urls() for u in rig.host.model_files(GENIUS))


def test_removing_the_loaded_model_waits_for_the_reply_then_frees_the_gpu() -> None:
    async def scenario() -> tuple[Rig, FakeEngine]:
        rig = Rig(stored=(SMART,))
        await rig.models.start()
        rig.script({"replies": [["x", "y"]], "pause_after": 1})
        engine = await rig.models.engine_for_reply("smart")
        deltas: list[str] = []
        streaming = asyncio.ensure_future(reply(rig, engine, deltas))  # type: ignore[arg-type]
        await rig.until(lambda: engine.paused.is_set(), "the reply")  # type: ignore[attr-defined]
        removing = asyncio.ensure_future(rig.models.remove("smart"))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not engine.terminated  # type: ignore[attr-defined]
        engine.resume()  # type: ignore[attr-defined]
        await streaming
        await removing
        return rig, engine  # type: ignore[return-value]

    rig, engine = run(scenario)
    assert engine.terminated and rig.loaded is None
    assert not rig.complete(SMART) and rig.state("smart") is None


def test_remove_ignores_a_model_that_is_busy() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        held = shard(QUICK, 0)
        rig.host.hold(held)
        rig.models.request("quick")
        await rig.host.until_holding(held)
        await rig.models.remove("quick")
        assert rig.state("quick") is S.DOWNLOADING
        rig.host.release(held)
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("quick") is S.READY


# --- space, persistence ---------------------------------------------------------------------------


def test_not_enough_space_fails_without_a_request() -> None:
    async def scenario() -> Rig:
        rig = Rig(storage=(0, 1000, False))
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    item = rig.item("smart")
    assert item.state is S.FAILED and item.error is not None
    assert item.error.title.startswith("Needs ") and "1 KB available" in item.error.title
    assert rig.host.requests == []


def test_the_space_needed_counts_only_what_is_missing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.host.store_all(SMART)
        rig.host.caches[MODEL_CACHE].pop(shard(SMART, 0))
        await rig.models.start()
        missing = len(rig.host.files[shard(SMART, 0)].body)
        rig.runtime.storage_info = (0, missing + 10, False)
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY


def test_persistence_is_asked_for_once_before_the_first_download() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.models.request("quick")
        rig.models.request("smart")
        await rig.settle()
        return rig

    assert run(scenario).runtime.persistence_requests == 1


# --- start-up ----------------------------------------------------------------------------


def test_start_finds_stored_models_and_resumes_the_queue_in_order() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(SMART,), records=(
            record("genius", "downloading", requested_at=5, bytesDone=123),
            record("quick", "queued", requested_at=2)))
        rig.want("genius")
        await rig.models.start()
        assert rig.state("smart") is S.READY
        await rig.settle()
        return rig

    rig = run(scenario)
    quick_first = min(i for i, (u, _) in enumerate(rig.host.requests) if "1B" in u)
    genius_first = min(i for i, (u, _) in enumerate(rig.host.requests) if "8B" in u)
    assert quick_first < genius_first
    assert rig.state("quick") is S.READY and rig.state("genius") is S.READY


def test_start_ends_the_check_with_the_stored_states_in_one_change() -> None:
    async def scenario() -> list[tuple[bool, S | None]]:
        rig = Rig(stored=(SMART,))
        rig.box.update(models_checking=True)
        seen: list[tuple[bool, S | None]] = []
        rig.box.subscribe(lambda old, new: seen.append(
            (new.models_checking, new.downloads["smart"].state
             if "smart" in new.downloads else None)))
        await rig.models.start()
        return seen

    seen = run(scenario)
    # Never "not checking" with Smart absent: the check ends as its Ready state arrives.
    assert seen and seen[0] == (False, S.READY), seen
    assert (False, None) not in seen


def test_start_shows_the_stored_bytes_of_a_half_done_download_at_once() -> None:
    async def scenario() -> tuple[Rig, DownloadItem]:
        rig = Rig(records=(record("genius", "canceled", bytesDone=1, bytesTotal=2),))
        rig.host.store_all(GENIUS)
        rig.host.caches[MODEL_CACHE].pop(shard(GENIUS, 3))
        await rig.models.start()
        return rig, rig.item("genius")

    rig, item = run(scenario)
    missing = len(rig.host.files[shard(GENIUS, 3)].body)
    assert item.state is S.CANCELED
    assert item.bytes_done == rig.host.model_bytes(GENIUS) - missing
    assert item.bytes_total == rig.host.model_bytes(GENIUS)
    assert rig.host.requests == []  # start-up reads only the cache


def test_start_turns_files_without_a_record_into_kept_files() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.host.store_all(QUICK)
        rig.host.caches[MODEL_CACHE].pop(shard(QUICK, 0))
        await rig.models.start()
        return rig

    rig = run(scenario)
    item = rig.item("quick")
    assert item.state is S.CANCELED and item.bytes_done > 0  # Resume and Remove files apply


def test_start_drops_ready_records_whose_files_are_gone() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("smart", "ready"),))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is None and rig.records.records == {}


def test_start_keeps_a_failure_to_start() -> None:
    problem = {"title": "Genius couldn't start.", "detail": "d", "action": "a"}

    async def scenario() -> Rig:
        rig = Rig(stored=(GENIUS,), records=(
            record("genius", "failed", error=problem, failedToStart=True),))
        await rig.models.start()
        return rig

    item = run(scenario).item("genius")
    assert item.state is S.FAILED and item.failed_to_start


def test_start_ignores_records_of_another_version_or_variant() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("smart", "queued", model_id=SMART_F16),
                           record("quick", "queued", version=RECORD_VERSION + 1)))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.box.state.downloads == {} and rig.host.requests == []
    assert set(rig.records.records) == {"smart", "quick"}  # left as they are


def test_start_survives_odd_records_and_a_store_that_fails() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(QUICK,),
                  records=(record("smart", "queued", requestedAt=float("inf")),))
        rig.records.records["broken"] = "not an object"  # type: ignore[assignment]
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY and rig.state("quick") is S.READY

    async def failing() -> Rig:
        rig = Rig(stored=(QUICK,))
        rig.records.failure = StoreFailure("MissingAPIError", "no IndexedDB")
        await rig.models.start()
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(failing)
    assert rig.state("quick") is S.READY and rig.state("smart") is S.READY


def test_start_keeps_requests_made_while_it_ran() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("smart", "canceled"),))
        starting = asyncio.ensure_future(rig.models.start())
        rig.models.request("smart")
        await starting
        await rig.settle()
        return rig

    assert run(scenario).state("smart") is S.READY


def test_start_uses_the_f16_variant_when_the_gpu_has_it() -> None:
    f16 = GpuReport(usable=True, reason="ok", f16=True, low_resource=False)

    async def scenario() -> Rig:
        rig = Rig(gpu=f16, stored=(SMART_F16,))
        await rig.models.start()
        return rig

    rig = run(scenario)
    assert rig.item("smart").model_id == SMART_F16 and rig.state("smart") is S.READY


def test_start_reads_exact_sizes_of_stored_models() -> None:
    async def scenario() -> Rig:
        rig = Rig(stored=(QUICK,))
        await rig.models.start()
        return rig

    rig = run(scenario)
    assert rig.box.state.model_sizes == {"quick": rig.host.model_bytes(QUICK)}
    assert rig.box.state.storage is not None


# --- replies ---------------------------------------------------------------------------------


def test_the_loaded_model_answers_while_another_downloads() -> None:
    async def scenario() -> tuple[Rig, Any, Any]:
        rig = Rig()
        smart = await load_smart(rig)
        held = shard(GENIUS, 0)
        rig.host.hold(held)
        rig.want("genius")
        rig.models.conversation_model_changed("genius", download=True)
        await rig.host.until_holding(held)
        engine = await rig.models.engine_for_reply("genius")
        rig.host.release(held)
        await rig.settle()
        return rig, smart, engine

    rig, smart, engine = run(scenario)
    assert engine is smart
    assert rig.loaded == GENIUS  # and once downloaded, Genius took over


def test_a_reply_with_nothing_loaded_waits_for_its_model() -> None:
    async def scenario() -> Any:
        rig = Rig()
        return await rig.models.engine_for_reply("quick"), rig

    engine, rig = run(scenario)
    assert engine.loaded_model == QUICK and rig.loaded == QUICK


def test_a_reply_for_a_stored_model_starts_it() -> None:
    async def scenario() -> Any:
        rig = Rig(stored=(GENIUS,))
        await rig.models.start()
        rig.want("quick")
        return await rig.models.engine_for_reply("genius"), rig

    engine, rig = run(scenario)
    assert engine.loaded_model == GENIUS and rig.host.requests == []


def test_a_reply_gets_the_download_failure_in_plain_words() -> None:
    async def scenario() -> NoModel:
        rig = Rig()
        rig.host.fail(shard(SMART, 0), K.HTTP, status=503, times=None)
        with pytest.raises(NoModel) as caught:
            await rig.models.engine_for_reply("smart")
        return caught.value

    problem = run(scenario).problem
    assert problem.title == "The model host is having trouble."


def test_a_reply_for_a_model_that_couldnt_start_and_nothing_else() -> None:
    async def scenario() -> NoModel:
        rig = Rig(stored=(SMART,))
        await rig.models.start()
        rig.script({"load_failure": LOST})
        with pytest.raises(NoModel) as caught:
            await rig.models.engine_for_reply("smart")
        return caught.value

    assert run(scenario).problem.title == "Smart couldn't start."


def test_a_reply_for_a_model_this_device_cannot_run() -> None:
    low = GpuReport(usable=True, reason="ok", f16=False, low_resource=True)

    async def scenario() -> NoModel:
        rig = Rig(gpu=low)
        with pytest.raises(NoModel) as caught:
            await rig.models.engine_for_reply("genius")
        return caught.value

    problem = run(scenario).problem
    assert problem.title == "Genius can't run on this device."


def test_a_reply_for_an_unknown_model_uses_the_default() -> None:
    async def scenario() -> Any:
        rig = Rig()
        return await rig.models.engine_for_reply("turbo")

    assert run(scenario).loaded_model == SMART


# --- a lost engine ---------------------------------------------------------------------------


def test_a_lost_engine_is_dropped_and_the_next_reply_loads_the_model_again() -> None:
    async def scenario() -> tuple[Rig, Any, Any]:
        rig = Rig()
        first = await load_smart(rig)
        first.lose_device()
        with pytest.raises(EngineFailure) as caught:
            await first.chat([{"role": "user", "content": "hi"}], lambda _t: None)
        assert caught.value.name == "ModelNotLoadedError"
        rig.models.engine_lost(first)
        assert rig.loaded is None and first.terminated
        rig.host.requests.clear()
        second = await rig.models.engine_for_reply("smart")
        return rig, first, second

    rig, first, second = run(scenario)
    assert second is not first and second.loaded_model == SMART
    assert rig.host.requests == []  # from the cache
    assert rig.states("smart")[-2:] == [S.COMPILING, S.READY]


def test_a_crashed_worker_drops_the_engine() -> None:
    async def scenario() -> tuple[Rig, Any]:
        rig = Rig()
        engine = await load_smart(rig)
        rig.runtime.crash(engine)
        assert rig.loaded is None and rig.models.chat_engine is None
        return rig, await rig.models.engine_for_reply("smart")

    rig, engine = run(scenario)
    assert engine.loaded_model == SMART and len(rig.engines) == 2


# --- many random operations ------------------------------------------------------------------


KEYS = ("quick", "smart", "genius")


def random_engine(rnd: random.Random) -> Callable[[], FakeEngine]:
    def make() -> FakeEngine:
        if rnd.random() < 0.15:
            return FakeEngine(load_failure=LOST, load_failure_at=SHADERS)
        return FakeEngine()
    return make


def check_engines(rig: Rig) -> None:
    alive = rig.alive()
    assert len(alive) <= 1, "two models on the GPU"
    chat = rig.models.chat_engine
    if chat is not None:
        assert not chat.terminated
        assert rig.loaded == chat.loaded_model
    else:
        assert rig.loaded is None


@pytest.mark.parametrize("seed", range(10))
def test_random_requests_cancels_and_removals_end_consistent(seed: int) -> None:
    async def scenario() -> tuple[Rig, list[asyncio.Future[Any]]]:
        rnd = random.Random(seed)
        rig = Rig(stored=tuple(rnd.sample([QUICK, SMART, GENIUS], rnd.randint(0, 2))))
        rig.factory = random_engine(rnd)
        for model_id in (QUICK, SMART, GENIUS):
            if rnd.random() < 0.3:
                rig.host.fail(shard(model_id, rnd.randrange(4)), K.DROPPED, at_byte=100)
        waiters: list[asyncio.Future[Any]] = []
        removals: list[asyncio.Future[Any]] = []
        if rnd.random() < 0.7:
            await rig.models.start()
        for _ in range(60):
            key = rnd.choice(KEYS)
            op = rnd.random()
            if op < 0.3:
                rig.models.request(key)
            elif op < 0.5:
                rig.models.cancel(key)
            elif op < 0.6:
                removals.append(asyncio.ensure_future(rig.models.remove(key)))
            elif op < 0.75:
                waiters.append(asyncio.ensure_future(rig.models.engine_for_reply(key)))
            elif op < 0.9:
                rig.want(key)
            else:
                rig.models.conversation_model_changed(key, download=rnd.random() < 0.5)
            for _ in range(rnd.randint(0, 8)):
                await asyncio.sleep(0)
            check_engines(rig)
        await asyncio.wait_for(asyncio.gather(*removals, return_exceptions=True), 2.0)
        await rig.settle()
        await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 2.0)
        await rig.settle()
        return rig, waiters

    rig, waiters = run(scenario)
    check_engines(rig)
    assert not any(i.state.active for i in rig.box.state.downloads.values())
    assert rig.models._waiters == {}
    for waiter in waiters:
        failure = waiter.exception()
        assert failure is None or isinstance(failure, NoModel), failure
    for key, item in rig.box.state.downloads.items():
        # What is persisted matches what is shown, and what is shown is what is stored.
        stored = rig.records.records.get(key)
        assert stored is not None and stored["state"] == item.state.value
        assert item_to_record(item)["modelId"] == stored["modelId"]
        if item.state is S.READY:
            assert rig.complete(item.model_id), key
    for key in KEYS:
        if rig.state(key) is None:
            files = rig.host.model_files(IDS[key])
            assert not rig.complete(IDS[key]) or rig.state(key) is not None
            assert files
    # Nothing stored that isn't the model's real bytes.
    for cache_name in (CONFIG_CACHE, MODEL_CACHE, WASM_CACHE):
        for url, body in rig.host.caches.get(cache_name, {}).items():
            assert body == rig.host.files[url].body
