"""ModelService (core/models.py) on the fakes, driven by asyncio.run.

Every engine the service makes comes from a FakeRuntime and is a FakeEngine; the ones
a test wants to behave differently are scripted in order with `Rig.script`. The
service's clock for stalls (`monotonic`) is `Rig.mono`, moved by hand; retry backoff
goes through `Rig.sleep`, which records each wait and can be held.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from localchat.core.conversation import Conversation
from localchat.core.downloads import (
    RECORD_VERSION,
    DownloadItem,
    DownloadState,
    item_to_record,
    progress_words,
)
from localchat.core.errors import EngineFailure, StoreFailure, explain_engine_failure
from localchat.core.gpu import GpuReport
from localchat.core.models import ModelService, NoModel
from localchat.core.state import AppState, StateBox
from localchat.ports import ChatResult
from tests.fakes import FakeClock, FakeDownloadRecords, FakeEngine, FakeRuntime

S = DownloadState
MB = 1024 * 1024
GB = 1024 * MB
NOW = 1_700_000_000_000
QUICK = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
SMART = "Llama-3.2-3B-Instruct-q4f32_1-MLC"
GENIUS = "Llama-3.1-8B-Instruct-q4f32_1-MLC"
SMART_F16 = "Llama-3.2-3B-Instruct-q4f16_1-MLC"
IDS = {"quick": QUICK, "smart": SMART, "genius": GENIUS}

NETWORK = EngineFailure("TypeError", "Failed to fetch")
SECOND_SHARD = "Fetching param cache[2/2]"
SHADERS = "Loading GPU shader modules"


class Rig:
    """A ModelService on fakes; build it inside the running event loop."""

    def __init__(self, *, gpu: GpuReport | None = None, cached: tuple[str, ...] = (),
                 sizes: dict[str, int] | None = None,
                 storage: tuple[int | None, int | None, bool | None] = (0, 50 * GB, False),
                 records: tuple[dict[str, Any], ...] = (), max_retries: int = 3,
                 backoff_s: float = 0.01, stall_s: float = 60.0) -> None:
        self.box = StateBox(AppState(gpu=gpu))
        self.clock = FakeClock(NOW, step_ms=1)
        self.mono = 0.0
        self.scripts: list[dict[str, Any]] = []
        self.factory: Callable[[], FakeEngine] | None = None
        self.runtime = FakeRuntime(self._engine, cached=cached, sizes=sizes, storage=storage)
        self.records = FakeDownloadRecords(records)
        self.sleeps: list[float] = []
        self.hold_backoff = False
        self.backoff_release = asyncio.Event()
        self.models = ModelService(self.box, self.runtime, self.records,
                                   now_ms=self.clock.now_ms, monotonic=lambda: self.mono,
                                   sleep=self.sleep, max_retries=max_retries,
                                   backoff_s=backoff_s, stall_s=stall_s)
        self.switches: list[str] = []
        self.background: list[asyncio.Future[Any]] = []
        self.models.on_switch = self.switches.append
        self.history: dict[str, list[DownloadItem]] = {}
        self.box.subscribe(self._watch)

    def _engine(self) -> FakeEngine:
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
        """Wait until the queue has run dry and the background saves are done.

        Times out (failing the test) if an item stays active with no queue to run it.
        """
        def quiet() -> bool:
            task = self.models._queue_task
            return ((task is None or task.done()) and not self.models._tasks
                    and not any(i.state.active for i in self.box.state.downloads.values()))

        calm = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while calm < 3:
            for _ in range(5):
                await asyncio.sleep(0)
            calm = calm + 1 if quiet() else 0
            if loop.time() > deadline:
                raise AssertionError("timed out waiting for the queue to finish")
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
    """Download and switch to Smart (the default requested model)."""
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


# --- one at a time, in request order ---------------------------------------------------------


def test_requests_run_one_at_a_time_in_request_order() -> None:
    async def scenario() -> None:
        rig = Rig()
        hold = {"hold_at": SECOND_SHARD}
        rig.script(hold, hold, hold)
        for key in ("genius", "quick", "smart"):
            assert rig.models.request(key)
        first = await rig.holding(0)
        assert first.loads == [GENIUS]
        assert rig.state("genius") is S.DOWNLOADING
        assert (rig.state("quick"), rig.state("smart")) == (S.QUEUED, S.QUEUED)
        assert len(rig.engines) == 1
        first.release()
        second = await rig.holding(1)
        assert second.loads == [QUICK]
        assert first.terminated  # Genius is not what the new chat asks for: just Ready
        assert (rig.state("genius"), rig.state("quick"), rig.state("smart")) == \
            (S.READY, S.DOWNLOADING, S.QUEUED)
        assert len(rig.alive()) == 1
        second.release()
        third = await rig.holding(2)
        assert third.loads == [SMART]
        third.release()
        await rig.settle()
        assert [e.loads for e in rig.engines] == [[GENIUS], [QUICK], [SMART]]
        assert all(rig.state(k) is S.READY for k in ("genius", "quick", "smart"))
        assert rig.alive() == [third]
        assert rig.models.chat_engine is third
        assert rig.loaded == SMART

    run(scenario)


def test_requests_in_the_same_millisecond_keep_request_order() -> None:
    async def scenario() -> list[list[str]]:
        rig = Rig()
        rig.clock.step_ms = 0
        rig.script({"hold_at": SECOND_SHARD})
        assert rig.models.request("smart")
        await rig.holding(0)
        assert rig.models.request("quick")
        assert rig.models.request("genius")
        rig.engines[0].release()
        await rig.settle()
        return [e.loads for e in rig.engines]

    assert run(scenario) == [[SMART], [QUICK], [GENIUS]]


def test_two_requests_for_one_model_share_one_download() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"hold_at": SECOND_SHARD})
        assert rig.models.request("quick")
        assert rig.models.request("quick")
        engine = await rig.holding(0)
        assert rig.models.request("quick")
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("quick"))
        await asyncio.sleep(0)
        engine.release()
        await rig.settle()
        assert waiter.done()
        assert waiter.result() is engine  # nothing else was loaded: it answers
        return rig

    rig = run(scenario)
    assert len(rig.engines) == 1
    assert rig.engines[0].loads == [QUICK]
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
    assert rig.engines == []
    assert rig.box.state.downloads == {}


# --- phases ----------------------------------------------------------------------------------


def test_phases_follow_webllm_progress_texts() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await load_smart(rig)
        return rig

    rig = run(scenario)
    assert rig.states("smart") == [S.QUEUED, S.DOWNLOADING, S.COMPILING, S.READY]
    history = rig.history["smart"]
    downloading = [i for i in history if i.state is S.DOWNLOADING and i.bytes_done]
    # "600MB fetched. 50% completed": the total follows from the two (no size was known).
    assert downloading[0].bytes_total == 1200 * MB
    assert [i.bytes_done for i in downloading] == [600 * MB, 1200 * MB]
    assert downloading[0].fraction == pytest.approx(0.5)
    compiling = [i.compile_fraction for i in history if i.state is S.COMPILING]
    assert compiling == [0.25, 0.5, 1.0]  # weights to the GPU, then the shaders
    assert rig.item("smart").cached is False
    ready = rig.item("smart")
    assert (ready.fraction, ready.retry, ready.error, ready.eta_seconds) == (1.0, 0, None, None)
    assert rig.records.records["smart"]["state"] == "ready"


def test_known_size_is_used_for_the_bytes() -> None:
    async def scenario() -> Rig:
        rig = Rig(sizes={SMART: 2000 * MB})
        await rig.models.start()
        await rig.settle()
        assert rig.box.state.model_sizes["smart"] == 2000 * MB
        await load_smart(rig)
        return rig

    rig = run(scenario)
    downloading = [i for i in rig.history["smart"] if i.state is S.DOWNLOADING]
    assert {i.bytes_total for i in downloading} == {2000 * MB}
    assert [i.bytes_done for i in downloading if i.bytes_done] == [1000 * MB, 2000 * MB]


def test_a_cached_model_goes_straight_to_compiling() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(SMART,))
        await load_smart(rig)
        return rig

    rig = run(scenario)
    assert rig.states("smart") == [S.QUEUED, S.COMPILING, S.READY]
    assert all(i.cached for i in rig.history["smart"][1:])
    assert not any(t.startswith("Fetching") for t in rig.engines[0].reports)
    assert rig.runtime.persistence_requests == 0  # nothing is downloaded


def test_persistence_is_asked_for_once_before_the_first_download() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.models.request("quick")
        rig.models.request("smart")
        await rig.settle()
        return rig

    assert run(scenario).runtime.persistence_requests == 1


# --- auto-switch -----------------------------------------------------------------------------


def test_finished_model_that_is_requested_becomes_the_chat_engine() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.want("quick")
        rig.models.request("quick")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.models.chat_engine is rig.engines[0]
    assert rig.loaded == QUICK
    assert rig.switches == ["quick"]
    assert not rig.engines[0].terminated


def test_finished_model_nobody_asks_for_is_just_ready() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        old = await load_smart(rig)
        rig.models.request("quick")  # the new chat still asks for Smart
        await rig.settle()
        assert rig.models.chat_engine is old
        return rig

    rig = run(scenario)
    assert rig.state("quick") is S.READY
    assert rig.engines[1].terminated  # frees the GPU; the files stay cached
    assert QUICK in rig.runtime.cached
    assert rig.loaded == SMART
    assert not rig.engines[0].terminated
    assert rig.switches == ["smart"]


def test_the_active_conversations_model_is_the_requested_one() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        chat = Conversation("c1", "Chat", "genius", 1, 1)
        rig.box.update(conversations=(chat,), active_id="c1", new_chat_model="quick")
        rig.models.request("quick")
        rig.models.request("genius")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.loaded == GENIUS
    assert rig.switches == ["genius"]
    assert rig.engines[0].terminated and not rig.engines[1].terminated
    assert (rig.state("quick"), rig.state("genius")) == (S.READY, S.READY)


def test_opening_a_chat_with_the_loaded_model_announces_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await load_smart(rig)
        rig.models.conversation_model_changed("smart", download=False)  # a chat opened
        await rig.settle()
        assert rig.switches == ["smart"]  # only the load's own switch
        rig.models.conversation_model_changed("smart", download=True)  # the user chose it
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.switches == ["smart", "smart"]
    assert len(rig.engines) == 1 and rig.loaded == SMART


def test_no_switch_when_the_request_changed_during_the_download() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        old = await load_smart(rig)
        rig.script({"hold_at": SECOND_SHARD})
        rig.want("quick")
        rig.models.request("quick")
        engine = await rig.holding(1)
        rig.want("smart")  # changed their mind while it downloaded
        engine.release()
        await rig.settle()
        assert rig.models.chat_engine is old
        return rig

    rig = run(scenario)
    assert rig.loaded == SMART
    assert rig.state("quick") is S.READY
    assert rig.engines[1].terminated
    assert rig.switches == ["smart"]


def test_switch_terminates_the_old_engine_only_after_the_streaming_reply() -> None:
    async def scenario() -> tuple[Rig, ChatResult, list[str]]:
        rig = Rig()
        rig.script({"replies": [["Hel", "lo ", "there"]], "pause_after": 1})
        old = await load_smart(rig)
        deltas: list[str] = []
        streaming = asyncio.ensure_future(reply(rig, old, deltas))
        await rig.until(old.paused.is_set, "the reply to be mid-stream")
        rig.want("quick")
        rig.models.request("quick")
        await rig.until(lambda: len(rig.engines) == 2 and rig.engines[1].loaded_model == QUICK,
                        "Quick to finish loading")
        for _ in range(20):
            await asyncio.sleep(0)
        # Loaded, but the switch waits for the reply: nothing cut, nothing swapped.
        assert not old.terminated
        assert rig.models.chat_engine is old
        assert rig.loaded == SMART
        assert rig.state("quick") is S.COMPILING
        old.resume()
        result = await streaming
        await rig.settle()
        return rig, result, deltas

    rig, result, deltas = run(scenario)
    assert (result.content, result.finish_reason) == ("Hello there", "stop")
    assert deltas == ["Hel", "lo ", "there"]
    assert rig.engines[0].terminated
    assert rig.models.chat_engine is rig.engines[1]
    assert rig.loaded == QUICK
    assert rig.state("quick") is S.READY
    assert rig.switches == ["smart", "quick"]


def test_no_switch_when_the_request_changed_while_a_reply_streamed() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"pause_after": 1})
        old = await load_smart(rig)
        streaming = asyncio.ensure_future(reply(rig, old, []))
        await rig.until(old.paused.is_set, "the reply to be mid-stream")
        rig.want("quick")
        rig.models.request("quick")
        await rig.until(lambda: len(rig.engines) == 2 and rig.engines[1].loaded_model == QUICK,
                        "Quick to finish loading")
        rig.want("smart")  # back to Smart before the reply ended
        old.resume()
        await streaming
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.loaded == SMART
    assert not rig.engines[0].terminated
    assert rig.engines[1].terminated
    assert rig.state("quick") is S.READY


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_while_queued() -> None:
    async def scenario() -> tuple[Rig, BaseException | None]:
        rig = Rig()
        rig.script({"hold_at": SECOND_SHARD})
        rig.models.request("smart")
        first = await rig.holding(0)
        rig.models.request("quick")
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("quick"))
        await asyncio.sleep(0)
        assert rig.state("quick") is S.QUEUED
        rig.models.cancel("quick")
        assert rig.state("quick") is S.CANCELED
        await asyncio.sleep(0)
        assert waiter.done()  # woken at once, while Smart still downloads
        first.release()
        await rig.settle()
        return rig, waiter.exception()

    rig, problem = run(scenario)
    assert isinstance(problem, NoModel)
    assert problem.problem.title == "Quick isn't ready."
    assert [e.loads for e in rig.engines] == [[SMART]]  # Quick never got an engine
    assert rig.state("quick") is S.CANCELED
    assert rig.records.records["quick"]["state"] == "canceled"
    assert rig.models._waiters == {}


@pytest.mark.parametrize("hold_at, phase", [
    (SECOND_SHARD, S.DOWNLOADING),
    ("Loading model from cache[2/2]", S.COMPILING),
    (SHADERS, S.COMPILING),
])
def test_cancel_while_loading_terminates_the_loader(hold_at: str, phase: DownloadState) -> None:
    async def scenario() -> tuple[Rig, BaseException | None]:
        rig = Rig()
        rig.script({"hold_at": hold_at})
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("smart"))
        engine = await rig.holding(0)
        assert rig.state("smart") is phase
        rig.models.cancel("smart")
        assert engine.terminated
        assert rig.state("smart") is S.CANCELED
        await rig.settle()
        return rig, waiter.exception()

    rig, problem = run(scenario)
    assert isinstance(problem, NoModel)
    assert problem.problem.detail == "Its download was canceled."
    assert len(rig.engines) == 1
    assert rig.models.chat_engine is None
    assert rig.loaded is None
    assert rig.state("smart") is S.CANCELED
    assert rig.sleeps == []  # a cancel is not retried
    assert rig.models._waiters == {}
    assert SMART not in rig.runtime.cached or phase is S.COMPILING


def test_cancel_while_the_loaded_model_waits_for_a_reply_to_end() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"pause_after": 1})
        old = await load_smart(rig)
        streaming = asyncio.ensure_future(reply(rig, old, []))
        await rig.until(old.paused.is_set, "the reply to be mid-stream")
        rig.want("quick")
        rig.models.request("quick")
        await rig.until(lambda: len(rig.engines) == 2 and rig.engines[1].loaded_model == QUICK,
                        "Quick to finish loading")
        rig.models.cancel("quick")
        old.resume()
        await streaming
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("quick") is S.CANCELED
    assert rig.engines[1].terminated
    assert rig.models.chat_engine is rig.engines[0]
    assert not rig.engines[0].terminated
    assert rig.loaded == SMART
    assert rig.switches == ["smart"]


def test_cancel_then_the_queue_goes_on() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"hold_at": SECOND_SHARD})
        rig.models.request("genius")
        rig.models.request("quick")
        await rig.holding(0)
        rig.models.cancel("genius")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert [e.loads for e in rig.engines] == [[GENIUS], [QUICK]]
    assert (rig.state("genius"), rig.state("quick")) == (S.CANCELED, S.READY)


def test_cancel_of_something_not_active_does_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await load_smart(rig)
        rig.models.cancel("smart")
        rig.models.cancel("quick")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY
    assert rig.state("quick") is None
    assert not rig.engines[0].terminated


def test_a_canceled_download_can_be_requested_again() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"hold_at": SECOND_SHARD})
        rig.models.request("smart")
        await rig.holding(0)
        rig.models.cancel("smart")
        await rig.settle()
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.states("smart")[-4:] == [S.QUEUED, S.DOWNLOADING, S.COMPILING, S.READY]
    assert rig.loaded == SMART
    assert rig.engines[0].terminated and not rig.engines[1].terminated


def test_a_new_request_after_cancel_is_not_woken_by_the_old_job() -> None:
    async def scenario() -> tuple[Rig, asyncio.Future[Any]]:
        rig = Rig()
        rig.hold_backoff = True
        rig.script({"load_failure": NETWORK, "load_failure_at": SECOND_SHARD})
        rig.models.request("smart")
        await rig.until(lambda: rig.sleeps == [0.01], "the first retry's backoff")
        rig.models.cancel("smart")
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("smart"))
        await asyncio.sleep(0)
        assert rig.state("smart") is S.QUEUED
        rig.backoff_release.set()
        await rig.settle()
        return rig, waiter

    rig, waiter = run(scenario)
    assert rig.loaded == SMART
    assert waiter.exception() is None
    assert waiter.result() is rig.models.chat_engine


# --- failures and retries --------------------------------------------------------------------


def test_network_failure_is_retried_then_fails_in_plain_words() -> None:
    async def scenario() -> tuple[Rig, BaseException | None]:
        rig = Rig()
        failing = {"load_failure": NETWORK, "load_failure_at": SECOND_SHARD}
        rig.script(*[failing] * 4)
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("smart"))
        await rig.settle()
        return rig, waiter.exception()

    rig, problem = run(scenario)
    assert len(rig.engines) == 4  # the first try and three retries
    assert all(e.terminated for e in rig.engines)
    assert rig.sleeps == [0.01, 0.02, 0.04]  # backoff doubles
    retries = [i.retry for i in rig.history["smart"] if i.state is S.DOWNLOADING]
    assert sorted(set(retries)) == [0, 1, 2, 3]
    shown = [progress_words(i, 3) for i in rig.history["smart"]
             if i.state is S.DOWNLOADING and i.retry]
    assert any(words.endswith("Retrying (1/3)…") for words in shown)
    assert any(words.endswith("Retrying (3/3)…") for words in shown)
    failed = rig.item("smart")
    assert failed.state is S.FAILED
    assert failed.retry == 0
    assert failed.error == explain_engine_failure(NETWORK)
    assert failed.error.title == "Can't reach the model host."
    assert isinstance(problem, NoModel)
    assert problem.problem == failed.error
    assert rig.records.records["smart"]["error"]["title"] == "Can't reach the model host."
    assert rig.models.chat_engine is None and rig.loaded is None


def test_a_retry_that_succeeds_ends_ready() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"load_failure": NETWORK, "load_failure_at": SECOND_SHARD})
        await load_smart(rig)
        return rig

    rig = run(scenario)
    assert len(rig.engines) == 2
    assert rig.engines[0].terminated and not rig.engines[1].terminated
    assert rig.sleeps == [0.01]
    assert rig.item("smart").retry == 0
    assert rig.item("smart").error is None


def test_a_failed_model_can_be_retried_by_hand() -> None:
    async def scenario() -> Rig:
        rig = Rig(max_retries=0)
        rig.script({"load_failure": NETWORK, "load_failure_at": SECOND_SHARD})
        rig.models.request("smart")
        await rig.settle()
        assert rig.state("smart") is S.FAILED
        await load_smart(rig)
        return rig

    rig = run(scenario)
    assert rig.sleeps == []
    assert rig.item("smart").error is None


@pytest.mark.parametrize("failure, at, title", [
    (EngineFailure("ShaderF16SupportError", "This model requires shader-f16."), SHADERS,
     "This model needs a GPU feature your browser doesn't offer."),
    (EngineFailure("QuotaExceededError",
                   "Failed to execute 'add' on 'Cache': Quota exceeded."), SECOND_SHARD,
     "There isn't enough storage space for this model."),
    (EngineFailure("DeviceLostError", "The GPU device was lost."), SHADERS,
     "The GPU stopped while loading the model."),
])
def test_non_retryable_errors_fail_at_once(failure: EngineFailure, at: str, title: str) -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"load_failure": failure, "load_failure_at": at})
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert len(rig.engines) == 1
    assert rig.engines[0].terminated
    assert rig.sleeps == []
    assert rig.item("smart").state is S.FAILED
    assert rig.item("smart").error == explain_engine_failure(failure)
    assert rig.item("smart").error.title == title  # type: ignore[union-attr]


def test_a_stall_terminates_the_loader_and_retries() -> None:
    async def scenario() -> Rig:
        rig = Rig(stall_s=0.02)
        rig.script({"hold_at": SECOND_SHARD})  # never released: the connection stalls
        rig.models.request("smart")
        stalled = await rig.holding(0)
        for _ in range(5):
            await asyncio.sleep(0.03)
        assert not stalled.terminated  # no time has passed on the service's clock
        rig.mono += 1.0
        await rig.until(lambda: stalled.terminated, "the stalled loader to be stopped")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert len(rig.engines) == 2
    assert rig.sleeps == [0.01]
    assert 1 in [i.retry for i in rig.history["smart"]]
    assert rig.state("smart") is S.READY
    assert rig.loaded == SMART


def stall_forever(rig: Rig) -> Callable[[], FakeEngine]:
    def make() -> FakeEngine:
        engine = FakeEngine(hold_at=SECOND_SHARD)

        async def stall_clock() -> None:
            await engine.holding.wait()
            rig.mono += 1.0
        rig.background.append(asyncio.ensure_future(stall_clock()))
        return engine
    return make


def test_a_download_that_keeps_stalling_fails() -> None:
    async def scenario() -> Rig:
        rig = Rig(stall_s=0.02, max_retries=2)
        rig.factory = stall_forever(rig)
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert len(rig.engines) == 3
    assert all(e.terminated for e in rig.engines)
    assert rig.state("smart") is S.FAILED


def test_a_download_that_keeps_stalling_fails_in_plain_words() -> None:
    async def scenario() -> Rig:
        rig = Rig(stall_s=0.02, max_retries=1)
        rig.factory = stall_forever(rig)
        rig.models.request("smart")
        await rig.settle()
        return rig

    error = run(scenario).item("smart").error
    assert error is not None
    assert error.title != "The model engine reported an error."
    assert "StallError" not in error.detail


# --- storage space ---------------------------------------------------------------------------


def test_not_enough_space_fails_without_an_engine() -> None:
    async def scenario() -> tuple[Rig, BaseException | None]:
        rig = Rig(storage=(int(49.5 * GB), 50 * GB, False))
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("smart"))
        await rig.settle()
        return rig, waiter.exception()

    rig, problem = run(scenario)
    assert rig.engines == []
    item = rig.item("smart")
    assert item.state is S.FAILED
    assert item.error is not None
    # Smart's q4f32 download is about 2275 MB; 512 MB are free.
    assert item.error.title == "Needs 2.2 GB, 512 MB available."
    assert isinstance(problem, NoModel) and problem.problem == item.error


@pytest.mark.parametrize("size_mb, state", [(700, S.FAILED), (400, S.READY)])
def test_space_check_uses_the_exact_size_once_known(size_mb: int, state: DownloadState) -> None:
    async def scenario() -> Rig:
        rig = Rig(sizes={SMART: size_mb * MB}, storage=(int(49.5 * GB), 50 * GB, False))
        await rig.models.start()
        await rig.settle()
        rig.models.request("smart")
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is state
    if state is S.FAILED:
        assert rig.item("smart").error.title == "Needs 700 MB, 512 MB available."  # type: ignore[union-attr]
        assert rig.engines == []


def test_unknown_quota_does_not_block_the_download() -> None:
    async def scenario() -> Rig:
        rig = Rig(storage=(None, None, None))
        await load_smart(rig)
        return rig

    assert run(scenario).state("smart") is S.READY


def test_a_cached_model_needs_no_space() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(SMART,), storage=(50 * GB, 50 * GB, False))
        await load_smart(rig)
        return rig

    assert run(scenario).state("smart") is S.READY


# --- start-up --------------------------------------------------------------------------------


def test_start_restores_the_queue_and_resumes_in_order() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("quick", "queued", requested_at=20),
                           record("smart", "downloading", requested_at=10, bytesTotal=9 * MB)))
        await rig.models.start()
        assert (rig.state("smart"), rig.state("quick")) == (S.QUEUED, S.QUEUED)
        assert rig.item("smart").bytes_total == 9 * MB
        await rig.settle()
        return rig

    rig = run(scenario)
    assert [e.loads for e in rig.engines] == [[SMART], [QUICK]]
    assert (rig.state("smart"), rig.state("quick")) == (S.READY, S.READY)
    assert rig.loaded == SMART  # the new chat asks for Smart
    assert rig.records.records["quick"]["state"] == "ready"


def test_start_marks_cached_models_ready() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(QUICK, GENIUS),
                  records=(record("genius", "failed", error={"title": "t"}),))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert (rig.state("quick"), rig.state("genius"), rig.state("smart")) == \
        (S.READY, S.READY, None)
    assert rig.item("genius").error is None
    assert rig.item("genius").requested_at == 1
    assert rig.engines == []  # marking Ready loads nothing
    assert rig.loaded is None


def test_start_drops_ready_records_whose_files_are_gone() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("quick", "ready"), record("genius", "canceled")))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("quick") is None
    assert "quick" not in rig.records.records
    assert rig.state("genius") is S.CANCELED
    assert rig.engines == []


def test_start_ignores_records_of_another_version_or_variant() -> None:
    old = record("smart", "queued", version=RECORD_VERSION - 1)
    other_variant = record("quick", "queued", model_id="Llama-3.2-1B-Instruct-q4f16_1-MLC")
    junk = record("genius", "paused")

    async def scenario() -> Rig:
        rig = Rig(records=(old, other_variant, junk))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.box.state.downloads == {}
    assert rig.engines == []
    assert rig.records.records["smart"] == old  # left as it was


def test_start_skips_records_that_are_not_objects() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("smart", "queued"),))
        rig.records.records["junk"] = "not a record"  # type: ignore[assignment]
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY


def test_start_survives_a_record_with_an_infinite_number() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(QUICK,),
                  records=(record("genius", "canceled", requested_at=float("inf")),  # type: ignore[arg-type]
                           record("smart", "queued")))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY
    assert rig.state("quick") is S.READY


def test_start_keeps_requests_made_while_it_ran() -> None:
    async def scenario() -> Rig:
        rig = Rig(records=(record("smart", "canceled"),))
        starting = asyncio.ensure_future(rig.models.start())
        rig.models.request("smart")
        await starting
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY
    assert len(rig.engines) == 1


def test_start_without_download_records_still_works() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(SMART,))
        rig.records.failure = StoreFailure("MissingAPIError", "IndexedDB API missing")
        await rig.models.start()
        await load_smart(rig)
        return rig

    rig = run(scenario)
    assert rig.state("smart") is S.READY
    assert rig.records.records == {}


def test_start_reads_sizes_and_storage() -> None:
    async def scenario() -> Rig:
        rig = Rig(sizes={QUICK: 1003 * MB, SMART: 2275 * MB},
                  storage=(3 * GB, 40 * GB, True))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.box.state.model_sizes == {"quick": 1003 * MB, "smart": 2275 * MB}
    storage = rig.box.state.storage
    assert storage is not None
    assert (storage.usage, storage.quota, storage.persisted) == (3 * GB, 40 * GB, True)
    assert rig.models.size_text("smart") == "2.2 GB"
    assert rig.models.size_text("genius") == "≈ 4.9 GB"


def test_start_uses_the_f16_variant_when_the_gpu_has_it() -> None:
    f16 = GpuReport(usable=True, reason="ok", f16=True, low_resource=False)

    async def scenario() -> Rig:
        rig = Rig(gpu=f16, records=(record("smart", "queued", model_id=SMART_F16),))
        await rig.models.start()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.engines[0].loads == [SMART_F16]
    assert rig.loaded == SMART_F16


# --- delete ----------------------------------------------------------------------------------


def test_delete_a_loaded_ready_model() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        engine = await load_smart(rig)
        await rig.models.delete("smart")
        await rig.settle()
        assert engine.terminated
        return rig

    rig = run(scenario)
    assert rig.runtime.deleted == [SMART]
    assert rig.state("smart") is None
    assert "smart" not in rig.records.records
    assert rig.models.chat_engine is None
    assert rig.loaded is None
    assert SMART not in rig.runtime.cached


def test_delete_waits_for_a_streaming_reply() -> None:
    async def scenario() -> tuple[Rig, ChatResult]:
        rig = Rig()
        rig.script({"replies": [["a", "b"]], "pause_after": 1})
        engine = await load_smart(rig)
        streaming = asyncio.ensure_future(reply(rig, engine, []))
        await rig.until(engine.paused.is_set, "the reply to be mid-stream")
        deleting = asyncio.ensure_future(rig.models.delete("smart"))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not engine.terminated
        assert rig.runtime.deleted == []
        engine.resume()
        result = await streaming
        await deleting
        return rig, result

    rig, result = run(scenario)
    assert result.content == "ab"
    assert rig.runtime.deleted == [SMART]


def test_delete_a_ready_model_that_is_not_loaded() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(QUICK,))
        engine = await load_smart(rig)
        await rig.models.start()
        await rig.models.delete("quick")
        await rig.settle()
        assert not engine.terminated
        return rig

    rig = run(scenario)
    assert rig.runtime.deleted == [QUICK]
    assert rig.state("quick") is None
    assert rig.loaded == SMART


def test_delete_ignores_models_that_are_not_ready() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"hold_at": SECOND_SHARD})
        rig.models.request("smart")
        await rig.holding(0)
        await rig.models.delete("smart")
        await rig.models.delete("quick")
        rig.engines[0].release()
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.runtime.deleted == []
    assert rig.state("smart") is S.READY


# --- engine_for_reply ------------------------------------------------------------------------


def test_loaded_engine_answers_while_another_model_downloads() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        smart = await load_smart(rig)
        rig.script({"hold_at": SECOND_SHARD})
        rig.want("quick")
        rig.models.request("quick")
        await rig.holding(1)
        engine = await asyncio.wait_for(rig.models.engine_for_reply("quick"), 1.0)
        assert engine is smart
        assert rig.state("quick") is S.DOWNLOADING
        rig.engines[1].release()
        await rig.settle()
        return rig

    assert run(scenario).loaded == QUICK


def test_reply_waits_for_the_model_when_nothing_is_loaded() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        rig.script({"hold_at": SHADERS})
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("smart"))
        engine = await rig.holding(0)
        assert not waiter.done()
        engine.release()
        assert await asyncio.wait_for(waiter, 1.0) is engine
        await rig.settle()
        return rig

    rig = run(scenario)
    assert rig.models.chat_engine is rig.engines[0]
    assert rig.loaded == SMART


def test_reply_for_a_model_nobody_requests_still_gets_it_when_nothing_is_loaded() -> None:
    async def scenario() -> Any:
        rig = Rig()  # the new chat asks for Smart; an older chat with Quick replies
        engine = await asyncio.wait_for(rig.models.engine_for_reply("quick"), 1.0)
        assert engine.loaded_model == QUICK
        return rig

    rig = run(scenario)
    assert rig.loaded == QUICK


def test_reply_for_a_ready_model_loads_it_and_waits() -> None:
    async def scenario() -> Rig:
        rig = Rig(cached=(QUICK,))
        await rig.models.start()
        smart = await load_smart(rig)
        rig.want("quick")
        engine = await asyncio.wait_for(rig.models.engine_for_reply("quick"), 1.0)
        assert engine is not smart and engine.loaded_model == QUICK
        assert smart.terminated
        return rig

    rig = run(scenario)
    assert rig.states("quick")[-3:] == [S.QUEUED, S.COMPILING, S.READY]


def test_reply_raises_the_failure_when_the_download_fails() -> None:
    failure = EngineFailure("ShaderF16SupportError", "This model requires shader-f16.")

    async def scenario() -> BaseException | None:
        rig = Rig()
        rig.script({"load_failure": failure, "load_failure_at": SHADERS})
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("smart"))
        await rig.settle()
        return waiter.exception()

    problem = run(scenario)
    assert isinstance(problem, NoModel)
    assert problem.problem == explain_engine_failure(failure)


def test_reply_for_a_model_this_device_cannot_run() -> None:
    low = GpuReport(usable=True, reason="ok", f16=False, low_resource=True)

    async def scenario() -> BaseException | None:
        rig = Rig(gpu=low)
        waiter = asyncio.ensure_future(rig.models.engine_for_reply("genius"))
        await rig.settle()
        return waiter.exception()

    problem = run(scenario)
    assert isinstance(problem, NoModel)
    assert problem.problem.title == "Genius can't run on this device."
    assert problem.problem.detail == "Genius needs a more powerful GPU than this device has."


def test_reply_for_an_unknown_model_uses_the_default() -> None:
    async def scenario() -> Any:
        rig = Rig()
        engine = await asyncio.wait_for(rig.models.engine_for_reply("turbo"), 1.0)
        return engine.loaded_model

    assert run(scenario) == SMART


# --- many random operations ------------------------------------------------------------------


KEYS = ("quick", "smart", "genius")


def random_engine(rnd: random.Random) -> Callable[[], FakeEngine]:
    def make() -> FakeEngine:
        roll = rnd.random()
        if roll < 0.2:
            return FakeEngine(load_failure=NETWORK, load_failure_at=SECOND_SHARD)
        if roll < 0.25:
            return FakeEngine(load_failure=EngineFailure("DeviceLostError", "lost"),
                              load_failure_at=SHADERS)
        return FakeEngine()
    return make


def check_engines(rig: Rig) -> None:
    chat = rig.models.chat_engine
    loaders = [e for e in rig.alive() if e is not chat]
    assert len(loaders) <= 1, "more than one loader at a time"
    if chat is not None:
        assert not chat.terminated
        assert rig.loaded == chat.loaded_model
    else:
        assert rig.loaded is None


@pytest.mark.parametrize("seed", range(8))
def test_random_requests_and_cancels_end_consistent(seed: int) -> None:
    async def scenario() -> tuple[Rig, list[asyncio.Future[Any]]]:
        rnd = random.Random(seed)
        rig = Rig(cached=tuple(rnd.sample([QUICK, SMART, GENIUS], rnd.randint(0, 2))))
        rig.factory = random_engine(rnd)
        waiters: list[asyncio.Future[Any]] = []
        if rnd.random() < 0.5:
            await rig.models.start()
        for _ in range(50):
            key = rnd.choice(KEYS)
            op = rnd.random()
            if op < 0.35:
                rig.models.request(key)
            elif op < 0.6:
                rig.models.cancel(key)
            elif op < 0.75:
                waiters.append(asyncio.ensure_future(rig.models.engine_for_reply(key)))
            elif op < 0.9:
                rig.want(key)
            else:
                rig.models.conversation_model_changed(key, download=rnd.random() < 0.5)
            for _ in range(rnd.randint(0, 6)):
                await asyncio.sleep(0)
            check_engines(rig)
        await rig.settle()
        await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 2.0)
        return rig, waiters

    rig, waiters = run(scenario)
    check_engines(rig)
    chat = rig.models.chat_engine
    assert len(rig.alive()) <= 1
    assert all(e is chat or e.terminated for e in rig.engines)
    assert not any(i.state.active for i in rig.box.state.downloads.values())
    assert rig.models._waiters == {}
    for waiter in waiters:
        assert waiter.done()
        failure = waiter.exception()
        assert failure is None or isinstance(failure, NoModel)
        if failure is None:
            assert waiter.result() in rig.engines
    # What is persisted matches what is shown (each record decodes to its item's state).
    for key, item in rig.box.state.downloads.items():
        stored = rig.records.records.get(key)
        assert stored is not None and stored["state"] == item.state.value
        assert item_to_record(item)["modelId"] == stored["modelId"]
