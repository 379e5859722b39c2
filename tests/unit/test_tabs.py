"""Several tabs (core/tabs.py): an owner tab's ModelHub serving RemoteModels in others.

Tabs talk over `Bus`, an in-memory stand-in for BroadcastChannel that is no kinder than
it: messages arrive later (the next loop turn), never to their sender, only to the tab
named in `to`, and a closed tab receives nothing and is reported gone to whoever waits.
The owner is a real ModelService on the fakes (test_models.Rig).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from localchat.core.downloads import DownloadEvent, DownloadItem, DownloadState
from localchat.core.errors import EngineFailure, UserMessage, engine_was_lost
from localchat.core.models import NoModel
from localchat.core.state import AppState, StateBox
from localchat.core.tabs import (
    ModelHub,
    ModelsMoved,
    RemoteModels,
    item_from_live,
    item_to_live,
)
from tests.unit.test_models import QUICK, SMART, Rig, run

S = DownloadState
HI = [{"role": "user", "content": "/echo hi"}]


class Bus:
    def __init__(self) -> None:
        self.tabs: dict[str, Link] = {}
        self.gone: dict[str, asyncio.Event] = {}
        self.sent: list[dict[str, Any]] = []

    def link(self, tab_id: str) -> Link:
        link = self.tabs[tab_id] = Link(self, tab_id)
        self.gone[tab_id] = asyncio.Event()
        return link

    def close(self, tab_id: str) -> None:
        self.tabs.pop(tab_id)
        self.gone[tab_id].set()

    def deliver(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        for tab_id, link in list(self.tabs.items()):
            if tab_id != message["from"] and message.get("to") in (None, tab_id):
                asyncio.get_running_loop().call_soon(link.receive, dict(message))


class Link:
    def __init__(self, bus: Bus, tab_id: str) -> None:
        self.bus = bus
        self.tab_id = tab_id
        self.handler: Callable[[dict[str, Any]], None] | None = None

    def post(self, message: dict[str, Any]) -> None:
        if self.tab_id in self.bus.tabs:
            self.bus.deliver({**message, "from": self.tab_id})

    def on_message(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self.handler = handler

    def receive(self, message: dict[str, Any]) -> None:
        if self.handler is not None and self.tab_id in self.bus.tabs:
            self.handler(message)

    async def when_gone(self, tab_id: str) -> None:
        await self.bus.gone.setdefault(tab_id, asyncio.Event()).wait()


class Tabs:
    """An owner tab ("a", a Rig's ModelService with its hub) and followers ("b", ...)."""

    def __init__(self, **rig: Any) -> None:
        self.bus = Bus()
        self.rig = Rig(**rig)
        self.hub = ModelHub(self.rig.models, self.bus.link("a"))
        self.followers: dict[str, RemoteModels] = {}

    async def start(self, *followers: str) -> None:
        await self.rig.models.start()
        self.hub.announce()
        for tab in followers:
            await self.follower(tab)

    async def follower(self, tab: str) -> RemoteModels:
        remote = RemoteModels(StateBox(AppState()), self.bus.link(tab), max_retries=3)
        self.followers[tab] = remote
        await asyncio.wait_for(remote.start(), 3)
        return remote

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        await self.rig.until(condition, what)


def test_live_items_round_trip_every_field_and_bad_ones_are_refused() -> None:
    item = DownloadItem("smart", SMART, S.DOWNLOADING, requested_at=5, bytes_total=100,
                        bytes_done=40, compile_fraction=0.0, eta_seconds=3.5, retry=2,
                        error=UserMessage("t", "d", "a"), failed_to_start=False)
    assert item_from_live(item_to_live(item)) == item
    assert item_from_live({"key": "smart"}) is None
    assert item_from_live({**item_to_live(item), "state": "Exploded"}) is None
    assert item_from_live("nonsense") is None


def test_a_follower_mirrors_the_owner_and_its_download_runs_once() -> None:
    async def scenario() -> None:
        tabs = Tabs()
        await tabs.start("b", "c")
        b, c = tabs.followers["b"], tabs.followers["c"]
        assert b.request("quick") and c.request("quick")  # two tabs ask at once
        await tabs.until(lambda: b.item("quick") is not None
                         and b.item("quick").state is S.READY, "b to see Quick ready")
        await tabs.until(lambda: c.item("quick") is not None
                         and c.item("quick").state is S.READY, "c to see Quick ready")
        fetched = tabs.rig.fetched(QUICK)
        assert len(fetched) == len(set(fetched)) == len(tabs.rig.host.model_files(QUICK))
        assert tabs.rig.state("quick") is S.READY
        assert b.box.state.model_sizes == tabs.rig.box.state.model_sizes
        # Nothing is published while nothing changes.
        before = len([m for m in tabs.bus.sent if m["t"] == "state"])
        for _ in range(20):
            await asyncio.sleep(0)
        assert len([m for m in tabs.bus.sent if m["t"] == "state"]) == before
        assert not tabs.rig.engines  # downloaded for later: never on the GPU

    run(scenario)


def test_cancel_and_remove_in_a_follower_act_in_the_owner() -> None:
    async def scenario() -> None:
        tabs = Tabs()
        tabs.rig.host.hold(tabs.rig.host.model_files(QUICK)[-1])
        await tabs.start("b")
        b = tabs.followers["b"]
        b.request("quick")
        await tabs.until(lambda: b.item("quick") is not None
                         and b.item("quick").state is S.DOWNLOADING, "the download")
        b.cancel("quick")
        await tabs.until(lambda: tabs.rig.state("quick") is S.CANCELED, "the owner cancels")
        await tabs.until(lambda: b.item("quick").state is S.CANCELED, "b sees it")
        await b.remove("quick")
        assert tabs.rig.state("quick") is None and b.item("quick") is None

    run(scenario)


def test_a_followers_reply_comes_from_the_owners_engine() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        tabs.rig.script({"replies": [["Hel", "lo ", "b!"]]})
        await tabs.start("b")
        b = tabs.followers["b"]
        engine = await b.engine_for_reply("smart")
        assert engine.loaded_model == SMART
        deltas: list[str] = []
        result = await engine.chat(HI, deltas.append)
        assert (result.content, result.finish_reason) == ("Hello b!", "stop")
        assert deltas == ["Hel", "lo ", "b!"]
        assert tabs.rig.engines[0].prompts == [HI]
        assert len(tabs.rig.engines) == 1  # the owner's one engine
        await tabs.until(lambda: b.box.state.engine.loaded_model == SMART, "b sees Smart")

    run(scenario)


def test_a_model_that_cant_answer_is_explained_in_the_follower() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        tabs.rig.script({"load_failure": EngineFailure("EngineError", "no wasm")})
        await tabs.start("b")
        try:
            await tabs.followers["b"].engine_for_reply("smart")
        except NoModel as no_model:
            assert "couldn't start" in no_model.problem.title
        else:
            raise AssertionError("a model that fails to start must be explained")

    run(scenario)


def test_replies_take_turns_and_stopping_a_waiting_one_leaves_the_other() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        tabs.rig.script({"replies": ["one two three", "b's turn"], "pause_after": 1})
        await tabs.start("b")
        models, b = tabs.rig.models, tabs.followers["b"]
        await models.take_turn()  # the owner tab's own reply
        engine = await models.engine_for_reply("smart")
        models.reply_started()
        owner_reply = asyncio.ensure_future(engine.chat(HI, lambda _: None))
        waiting = asyncio.ensure_future(b.engine_for_reply("smart"))
        for _ in range(30):
            await asyncio.sleep(0)
        assert not waiting.done()  # its turn comes after the owner's reply
        waiting.cancel()  # Stop in b while it waits
        for _ in range(30):
            await asyncio.sleep(0)
        assert engine.interrupts == 0 and not owner_reply.done()
        engine.resume()
        await owner_reply
        models.reply_ended()
        models.end_turn()
        engine.pause_after = None
        second = await asyncio.wait_for(b.engine_for_reply("smart"), 3)  # free again
        assert (await second.chat(HI, lambda _: None)).content == "b's turn"

    run(scenario)


def test_stop_in_a_follower_interrupts_only_its_reply() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        tabs.rig.script({"replies": ["a b c d"], "pause_after": 1})
        await tabs.start("b")
        b = tabs.followers["b"]
        engine = await b.engine_for_reply("smart")
        reply = asyncio.ensure_future(engine.chat(HI, lambda _: None))
        fake = tabs.rig.engines[0]
        await tabs.until(fake.paused.is_set, "the reply to stream")
        await engine.interrupt()
        result = await asyncio.wait_for(reply, 3)
        assert result.finish_reason == "abort" and fake.interrupts == 1

    run(scenario)


def test_a_follower_that_closes_mid_reply_frees_the_engine() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        tabs.rig.script({"replies": ["a b c d", "next"], "pause_after": 1})
        await tabs.start("b")
        b = tabs.followers["b"]
        b.conversation_model_changed("smart", download=False)
        engine = await b.engine_for_reply("smart")
        streaming = asyncio.ensure_future(engine.chat(HI, lambda _: None))
        fake = tabs.rig.engines[0]
        await tabs.until(fake.paused.is_set, "the reply to stream")
        assert tabs.rig.models.remote_wants == {"b": "smart"}
        tabs.bus.close("b")
        await tabs.until(lambda: fake.interrupts == 1, "the owner to stop b's reply")
        await tabs.until(lambda: not tabs.rig.models.remote_wants, "b's wish forgotten")
        await asyncio.wait_for(tabs.rig.models.take_turn(), 3)  # the engine is free
        streaming.cancel()  # b is gone: nobody reads its answer

    run(scenario)


def test_when_the_owner_closes_a_streaming_reply_is_lost_and_a_waiting_one_moves() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        tabs.rig.script({"replies": ["a b c d"], "pause_after": 1})
        await tabs.start("b", "c")
        b, c = tabs.followers["b"], tabs.followers["c"]
        engine = await b.engine_for_reply("smart")
        streaming = asyncio.ensure_future(engine.chat(HI, lambda _: None))
        await tabs.until(tabs.rig.engines[0].paused.is_set, "b's reply to stream")
        waiting = asyncio.ensure_future(c.engine_for_reply("smart"))
        for _ in range(30):
            await asyncio.sleep(0)
        tabs.bus.close("a")
        try:
            await asyncio.wait_for(streaming, 3)
        except EngineFailure as failure:
            assert engine_was_lost(failure)  # ChatService starts it again, once
        else:
            raise AssertionError("a reply of a closed owner's engine can't finish")
        assert not waiting.done()  # c waits for the next owner
        # b takes over: the waiting reply of c is answered by b's own ModelService.
        new = Rig(stored=(SMART,))
        new.host = tabs.rig.host
        hub = ModelHub(new.models, tabs.bus.tabs["b"])  # type: ignore[arg-type]
        b.close()
        await new.models.start(adopt=False)
        hub.announce()
        moved = await asyncio.wait_for(waiting, 3)
        assert moved.loaded_model == SMART and c.owner == "b"

    run(scenario)


def test_a_tab_that_takes_over_moves_its_own_waiting_reply() -> None:
    async def scenario() -> None:
        tabs = Tabs(stored=(SMART,))
        await tabs.start("b")
        b = tabs.followers["b"]
        await tabs.rig.models.take_turn()  # busy: b's request waits
        waiting = asyncio.ensure_future(b.engine_for_reply("smart"))
        for _ in range(20):
            await asyncio.sleep(0)
        b.close()
        try:
            await asyncio.wait_for(waiting, 3)
        except ModelsMoved:
            pass
        else:
            raise AssertionError("a closed RemoteModels must send replies to the new owner")

    run(scenario)


def test_the_owner_takes_a_followers_open_chat_as_needed_now() -> None:
    async def scenario() -> None:
        tabs = Tabs()
        await tabs.start("b")
        b = tabs.followers["b"]
        b.conversation_model_changed("quick", download=True)  # b's chat asks for Quick
        await tabs.until(lambda: tabs.rig.loaded == QUICK, "Quick to be started for b")
        assert tabs.rig.states("quick")[-2:] == [S.COMPILING, S.READY]

    run(scenario)


def test_choosing_the_loaded_model_again_is_confirmed_only_in_the_tab_that_chose_it(
) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        tabs = Tabs(stored=(SMART,))
        await tabs.start("b")
        b = tabs.followers["b"]
        owner_heard: list[str] = []
        b_heard: list[str] = []
        tabs.hub.on_switch = owner_heard.append
        b.on_switch = b_heard.append
        b.conversation_model_changed("smart", download=False)  # b's chat is on Smart
        await tabs.until(lambda: tabs.rig.loaded == SMART, "Smart to be loaded")
        await tabs.until(lambda: b.box.state.engine.loaded_model == SMART, "b sees Smart")
        del owner_heard[:], b_heard[:]  # the load itself is announced: not this test's point
        tabs.rig.models.conversation_model_changed("smart", download=True)  # the owner re-picks
        b.conversation_model_changed("smart", download=True)  # then b does
        await tabs.until(lambda: b_heard == ["smart"], "b's confirmation")
        for _ in range(10):  # the Bus delivers on the next loop turn: strays are in by now
            await asyncio.sleep(0)
        return owner_heard, b_heard

    owner_heard, b_heard = run(scenario)
    assert owner_heard == ["smart"]
    assert b_heard == ["smart"]


def test_progress_goes_out_a_few_times_a_second_and_state_changes_at_once() -> None:
    async def scenario() -> None:
        tabs = Tabs()
        await tabs.start("b")
        b = tabs.followers["b"]
        box = tabs.rig.box
        item = DownloadItem("quick", QUICK, S.DOWNLOADING, bytes_total=1000)

        def notices() -> int:
            return len([m for m in tabs.bus.sent if m["t"] == "state"])

        box.update(downloads={"quick": item})  # a new item: at once
        await tabs.until(lambda: b.item("quick") == item, "the new item")
        before = notices()
        for done in range(1, 20):  # 19 progress reports in a burst
            box.update(downloads={"quick": item.updated(bytes_done=done * 10)})
        for _ in range(10):
            await asyncio.sleep(0)
        assert notices() == before  # not yet: progress waits for the next slot
        await tabs.until(lambda: b.item("quick").bytes_done == 190, "the latest bytes")
        assert notices() == before + 1  # one notice carried the whole burst
        box.update(downloads={"quick": item.moved(DownloadEvent.CANCEL)})
        await tabs.until(lambda: b.item("quick").state is S.CANCELED, "the cancel")
        assert notices() == before + 2

    run(scenario)
