"""ChatService driven through the fake ports (tests/fakes.py) with asyncio.run.

The ModelService behind it is the real one, on a FakeRuntime: a "preloaded" rig has
already loaded the default model into its engine, as after a finished download.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from localchat.core.chat import MAX_MESSAGE_CHARS, ChatService
from localchat.core.conversation import Conversation, Message, MessageStatus, Role
from localchat.core.downloader import Downloader
from localchat.core.downloads import DownloadState
from localchat.core.errors import EngineFailure, StoreFailure, explain_engine_failure
from localchat.core.gpu import GpuReport
from localchat.core.models import ModelService
from localchat.core.state import AppState, EngineStatus, StateBox
from tests.fakes import (
    FakeClock,
    FakeDownloadRecords,
    FakeEngine,
    FakeLocks,
    FakeModelHost,
    FakeRuntime,
    FakeStore,
)

SMART_F32 = "Llama-3.2-3B-Instruct-q4f32_1-MLC"
SMART_F16 = "Llama-3.2-3B-Instruct-q4f16_1-MLC"
NOW = 1_700_000_000_000


class Rig:
    """A ChatService wired to fakes; build it inside the running event loop."""

    def __init__(self, *, store: FakeStore | None = None, engine: FakeEngine | None = None,
                 gpu: GpuReport | None = None) -> None:
        self.box = StateBox(AppState(gpu=gpu))
        self.store = store or FakeStore()
        self.clock = FakeClock(NOW)
        self.engine = engine or FakeEngine()
        self.host = FakeModelHost()
        self.runtime = FakeRuntime(lambda: self.engine, host=self.host)
        self.records = FakeDownloadRecords()

        async def no_wait(_seconds: float) -> None:
            await asyncio.sleep(0)

        self.models = ModelService(self.box, self.runtime, self.records,
                                   Downloader(self.host, sleep=no_wait),
                                   now_ms=self.clock.now_ms)
        self.service = ChatService(self.box, self.store, self.models, self.clock)
        self.streamed: list[tuple[str, str]] = []
        self.service.on_stream(lambda mid, text: self.streamed.append((mid, text)))

    async def boot(self, preload: bool = True) -> None:
        """Start the service; with `preload`, the default model is already loaded."""
        if preload:
            model_id = self.models.model_id("smart")
            self.host.store_all(model_id)
            self.engine.host = self.host
            await self.engine.load(model_id, lambda _fraction, _text: None)
            self.models.chat_engine = self.engine
            self.box.update(engine=EngineStatus(model_id))
        await self.service.start()

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.box.state.messages

    @property
    def reply(self) -> Message:
        last = self.messages[-1]
        assert last.role is Role.ASSISTANT
        return last


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def seeded_store() -> FakeStore:
    """Three stored conversations (inserted oldest, newest, middle) and two messages."""
    old = Conversation("old", "Old chat", "smart", 100, 1000)
    new = Conversation("new", "New chat", "quick", 300, 3000)
    mid = Conversation("mid", "Middle chat", "smart", 200, 2000)
    messages = [Message("m2", "old", Role.ASSISTANT, "Hi, how can I help?", SMART_F32, 20),
                Message("m1", "old", Role.USER, "Hello", None, 10)]
    return FakeStore([old, new, mid], messages)


# --- start and open --------------------------------------------------------------------------


def test_start_lists_conversations_newest_first() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store())
        await rig.boot()
        return rig

    rig = run(scenario)
    assert rig.store.opened
    assert [c.id for c in rig.box.state.conversations] == ["new", "mid", "old"]
    assert rig.box.state.conversations_loaded
    assert rig.box.state.storage_error is None


def test_damaged_conversations_are_listed_at_the_end_and_never_rewritten() -> None:
    store = seeded_store()
    damaged = {"nan": {"id": "nan", "title": "No time", "model": "smart",
                       "createdAt": float("nan"), "updatedAt": float("nan")},
               "future": {"id": "future", "title": "Far future", "updatedAt": 8.64e15},
               "stringly": {"id": "stringly", "title": 5, "updatedAt": "yesterday"}}
    store.conversation_records.update(damaged)
    before = repr(store.conversation_records)

    async def scenario() -> Rig:
        rig = Rig(store=store)
        await rig.boot()
        await rig.service.open("future")
        return rig

    rig = run(scenario)
    listed = [(c.id, c.title) for c in rig.box.state.conversations]
    assert listed[:3] == [("new", "New chat"), ("mid", "Middle chat"), ("old", "Old chat")]
    assert sorted(listed[3:]) == [("future", "Far future"), ("nan", "No time"),
                                  ("stringly", "5")]
    assert rig.box.state.active_id == "future"
    assert repr(store.conversation_records) == before
    assert not [name for name, _ in store.calls if name.startswith(("update", "put", "add"))]


def test_messages_without_a_date_come_first_in_stored_order_and_are_not_sent() -> None:
    store = seeded_store()
    store.message_records.update({
        "x1": {"id": "x1", "conversationId": "old", "role": "user", "content": "undated"},
        "x2": {"id": "x2", "conversationId": "old", "role": "system", "content": "be brief",
               "createdAt": 15},
        "x3": {"id": "x3", "conversationId": "old", "role": "assistant", "content": [1],
               "createdAt": "later", "status": "odd", "extra": True}})

    async def scenario() -> Rig:
        rig = Rig(store=store)
        await rig.boot()
        await rig.service.open("old")
        return rig

    rig = run(scenario)
    assert [m.id for m in rig.messages] == ["x1", "x3", "m1", "x2", "m2"]
    assert [m.role for m in rig.messages][3] is Role.UNKNOWN
    assert rig.messages[1].content == "[1]"
    assert [len(m.problems) for m in rig.messages] == [1, 3, 0, 1, 0]
    history = rig.service._history(rig.models.spec("smart"))
    assert "system" not in {h["role"] for h in history}


def test_start_without_storage_still_finishes_loading_and_says_why() -> None:
    async def scenario() -> Rig:
        store = FakeStore()
        store.fail("open", failure=StoreFailure("MissingAPIError", "IndexedDB API missing"))
        rig = Rig(store=store)
        await rig.boot()
        return rig

    rig = run(scenario)
    state = rig.box.state
    assert state.conversations_loaded
    assert state.conversations == ()
    assert state.storage_error is not None
    assert state.storage_error.title == "This browser isn't letting LocalChat store anything."
    assert not rig.service.persist


def test_open_shows_stored_messages_oldest_first() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store())
        await rig.boot()
        await rig.service.open("old")
        return rig

    rig = run(scenario)
    assert rig.box.state.active_id == "old"
    assert rig.box.state.not_found_id is None
    assert [(m.id, m.role, m.content) for m in rig.messages] == [
        ("m1", Role.USER, "Hello"), ("m2", Role.ASSISTANT, "Hi, how can I help?")]


def test_open_of_an_unknown_id_is_not_found() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store())
        await rig.boot()
        await rig.service.open("old")
        await rig.service.open("deleted-elsewhere")
        return rig

    rig = run(scenario)
    state = rig.box.state
    assert state.not_found_id == "deleted-elsewhere"
    assert state.active_id is None
    assert state.messages == ()
    assert rig.store.called("get_messages") == [("old",)]


def test_opening_a_known_chat_after_not_found_clears_it() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store())
        await rig.boot()
        await rig.service.open("nope")
        await rig.service.open("old")
        return rig

    rig = run(scenario)
    assert rig.box.state.not_found_id is None
    assert rig.box.state.active_id == "old"
    assert len(rig.messages) == 2


def test_open_none_is_a_new_unsaved_chat() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store())
        await rig.boot()
        await rig.service.open("old")
        await rig.service.open(None)
        return rig

    rig = run(scenario)
    assert rig.box.state.active_id is None
    assert rig.box.state.messages == ()
    assert rig.box.state.new_chat_model == "smart"


# --- sending --------------------------------------------------------------------------------


def test_send_creates_a_conversation_titled_from_the_first_message() -> None:
    async def scenario() -> tuple[Rig, bool]:
        rig = Rig(store=seeded_store())
        await rig.boot()
        sent = await rig.service.send("  Plan a trip to Lisbon\nwith two kids  ")
        return rig, sent

    rig, sent = run(scenario)
    assert sent
    active = rig.box.state.active
    assert active is not None
    assert active.title == "Plan a trip to Lisbon"
    assert active.model == "smart"
    assert [c.id for c in rig.box.state.conversations] == [active.id, "new", "mid", "old"]
    record = rig.store.conversation_records[active.id]
    assert (record["title"], record["model"], record["createdAt"]) == (
        "Plan a trip to Lisbon", "smart", NOW)


def test_send_persists_user_and_assistant_messages_with_the_model_id() -> None:
    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine([["Hel", "lo ", "there"]]))
        await rig.boot()
        await rig.service.send("Hi!\nSecond line ")
        return rig

    rig = run(scenario)
    cid = rig.box.state.active_id
    stored = rig.store.messages_of(cid)
    assert [(r["role"], r["content"], r.get("model"), r["status"]) for r in stored] == [
        ("user", "Hi!\nSecond line", None, "done"),
        ("assistant", "Hello there", SMART_F32, "done"),
    ]
    assert [(m.role, m.content, m.model, m.status) for m in rig.messages] == [
        (Role.USER, "Hi!\nSecond line", None, MessageStatus.DONE),
        (Role.ASSISTANT, "Hello there", SMART_F32, MessageStatus.DONE),
    ]
    assert [r["id"] for r in stored] == [m.id for m in rig.messages]
    assert rig.store.conversation_records[cid]["updatedAt"] == NOW
    assert not rig.box.state.replying


def test_deltas_stream_to_every_listener_while_the_reply_is_streaming() -> None:
    async def scenario() -> tuple[Rig, list[tuple[str, str, MessageStatus]]]:
        rig = Rig(engine=FakeEngine([["Hel", "lo ", "there"]]))
        seen: list[tuple[str, str, MessageStatus]] = []
        rig.service.on_stream(lambda mid, text: seen.append((mid, text, rig.reply.status)))
        await rig.boot()
        await rig.service.send("Hi")
        return rig, seen

    rig, seen = run(scenario)
    reply_id = rig.reply.id
    assert rig.streamed == [(reply_id, "Hel"), (reply_id, "lo "), (reply_id, "there")]
    assert seen == [(reply_id, text, MessageStatus.STREAMING) for text in ("Hel", "lo ", "there")]


def test_the_engine_gets_the_conversation_so_far() -> None:
    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine(["One.", "Two."]))
        await rig.boot()
        await rig.service.send("first")
        await rig.service.send("second")
        return rig

    rig = run(scenario)
    assert rig.engine.prompts == [
        [{"role": "user", "content": "first"}],
        [{"role": "user", "content": "first"}, {"role": "assistant", "content": "One."},
         {"role": "user", "content": "second"}],
    ]
    assert len(rig.store.conversation_records) == 1
    assert len(rig.store.message_records) == 4


def test_a_message_longer_than_the_window_is_sent_shortened_and_the_state_says_so() -> None:
    long = "start " + "x" * 20_000 + " end"  # Smart's 4,096-token window holds ~9,000

    async def scenario() -> tuple[Rig, list[tuple[int, bool]]]:
        rig = Rig(engine=FakeEngine(["One.", "Two.", "Three."]))
        await rig.boot()
        notes = []
        await rig.service.send("short")
        notes.append((rig.box.state.context_dropped, rig.box.state.context_shortened))
        await rig.service.send(long)
        notes.append((rig.box.state.context_dropped, rig.box.state.context_shortened))
        await rig.service.send("short again")
        notes.append((rig.box.state.context_dropped, rig.box.state.context_shortened))
        return rig, notes

    rig, notes = run(scenario)
    # The long one went alone and cut from the front; the next prompt drops it whole.
    assert notes == [(0, False), (2, True), (4, False)]
    sent = rig.engine.prompts[1]
    assert len(sent) == 1 and sent[0]["content"].endswith(" end")
    assert not sent[0]["content"].startswith("start")
    stored = [m.content for m in rig.messages if m.role is Role.USER]
    assert stored == ["short", long, "short again"]  # what is stored is never cut


def test_a_finished_reply_is_stored_before_it_is_shown_finished() -> None:
    async def scenario() -> tuple[Rig, list[bool]]:
        rig = Rig(engine=FakeEngine(["Done."]))
        stored_when_shown: list[bool] = []

        def watch(old: AppState, new: AppState) -> None:
            for m in new.messages:
                if m.role is Role.ASSISTANT and m.status is MessageStatus.DONE and \
                        m not in old.messages:
                    record = rig.store.message_records.get(m.id)
                    stored_when_shown.append(record is not None and record["status"] == "done")

        rig.box.subscribe(watch)
        await rig.boot()
        await rig.service.send("Hi")
        return rig, stored_when_shown

    _rig, stored_when_shown = run(scenario)
    assert stored_when_shown == [True]


def test_sending_in_an_existing_chat_moves_it_to_the_top() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store())
        await rig.boot()
        await rig.service.open("old")
        await rig.service.send("Tell me more")
        return rig

    rig = run(scenario)
    conversations = rig.box.state.conversations
    assert [c.id for c in conversations] == ["old", "new", "mid"]
    assert conversations[0].updated_at == NOW
    assert rig.store.conversation_records["old"]["updatedAt"] == NOW
    assert [m.content for m in rig.messages][:3] == ["Hello", "Hi, how can I help?",
                                                     "Tell me more"]


def test_empty_and_overlong_messages_are_not_sent() -> None:
    async def scenario() -> tuple[Rig, list[bool]]:
        rig = Rig()
        await rig.boot()
        results = [await rig.service.send(""), await rig.service.send(" \n\t "),
                   await rig.service.send("x" * (MAX_MESSAGE_CHARS + 1))]
        return rig, results

    rig, results = run(scenario)
    assert results == [False, False, False]
    assert rig.engine.prompts == []
    assert rig.box.state.conversations == ()
    assert [name for name, _ in rig.store.calls] == ["open", "list_conversations"]


def test_a_chat_picked_model_is_saved_and_the_reply_names_its_writer() -> None:
    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine(["From Smart."]))
        await rig.boot()
        assert await rig.service.set_model("quick")
        await rig.service.send("Hi")
        return rig

    rig = run(scenario)
    cid = rig.box.state.active_id
    assert rig.store.conversation_records[cid]["model"] == "quick"
    # Quick is not downloaded yet, so the loaded Smart answers, and the reply says so.
    assert rig.reply.model == SMART_F32
    assert rig.store.messages_of(cid)[-1]["model"] == SMART_F32


def test_first_send_loads_the_model_reporting_progress() -> None:
    gpu = GpuReport(usable=True, reason="ok", f16=True, low_resource=False)

    async def scenario() -> tuple[Rig, list[DownloadState]]:
        rig = Rig(engine=FakeEngine(["Loaded and ready."]), gpu=gpu)
        states: list[DownloadState] = []

        def watch(_old: AppState, new: AppState) -> None:
            item = new.downloads.get("smart")
            if item is not None and (not states or states[-1] is not item.state):
                states.append(item.state)

        rig.box.subscribe(watch)
        await rig.boot(preload=False)
        await rig.service.send("Hi")
        return rig, states

    rig, states = run(scenario)
    assert rig.engine.loads == [SMART_F16]
    assert states == [DownloadState.QUEUED, DownloadState.DOWNLOADING,
                      DownloadState.COMPILING, DownloadState.READY]
    assert rig.box.state.engine.loaded_model == SMART_F16
    assert rig.reply.model == SMART_F16
    assert (rig.reply.content, rig.reply.status) == ("Loaded and ready.", MessageStatus.DONE)


# --- stop ---------------------------------------------------------------------------------


def test_stop_keeps_the_partial_reply_marked_stopped() -> None:
    async def scenario() -> tuple[Rig, bool, bool, bool]:
        rig = Rig(engine=FakeEngine([["Once ", "upon ", "a time"]], pause_after=2))
        await rig.boot()
        sending = asyncio.ensure_future(rig.service.send("Tell me a story"))
        await rig.engine.paused.wait()
        replying_then = rig.box.state.replying
        second_send = await rig.service.send("Another?")
        await rig.service.stop()
        return rig, await sending, replying_then, second_send

    rig, sent, replying_then, second_send = run(scenario)
    assert sent
    assert replying_then
    assert not second_send  # one reply at a time
    assert rig.engine.interrupts == 1
    assert (rig.reply.content, rig.reply.status) == ("Once upon ", MessageStatus.STOPPED)
    stored = rig.store.messages_of(rig.box.state.active_id)[-1]
    assert (stored["content"], stored["status"]) == ("Once upon ", "stopped")
    assert not rig.box.state.replying
    assert len(rig.messages) == 2


def test_stop_with_nothing_streaming_does_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig()
        await rig.boot()
        await rig.service.stop()
        await rig.service.send("Hi")
        await rig.service.stop()
        return rig

    rig = run(scenario)
    assert rig.engine.interrupts == 0
    assert rig.reply.status is MessageStatus.DONE


# --- failures -------------------------------------------------------------------------------


def test_engine_failure_shows_an_error_message() -> None:
    failure = EngineFailure("ContextWindowSizeExceededError", "Prompt exceeds 4096 tokens")
    problem = explain_engine_failure(failure)

    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine(chat_failure=failure))
        await rig.boot()
        await rig.service.send("A very long question")
        return rig

    rig = run(scenario)
    reply = rig.reply
    assert reply.status is MessageStatus.ERROR
    assert reply.content == ""
    assert reply.error == f"{problem.title} {problem.detail} {problem.action}"
    assert rig.box.state.engine.error == problem
    assert problem.title == "This conversation is too long for the model."
    assert not rig.box.state.replying
    stored = rig.store.messages_of(rig.box.state.active_id)
    assert [(r["role"], r["status"]) for r in stored] == [("user", "done"),
                                                          ("assistant", "error")]
    assert stored[-1]["error"] == reply.error


def test_chatting_goes_on_after_an_engine_failure() -> None:
    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine(["Better now."],
                                    chat_failure=EngineFailure("TimeoutError", "no answer")))
        await rig.boot()
        await rig.service.send("first")
        rig.engine.chat_failure = None
        await rig.service.send("second")
        return rig

    rig = run(scenario)
    assert [m.status for m in rig.messages] == [MessageStatus.DONE, MessageStatus.ERROR,
                                                MessageStatus.DONE, MessageStatus.DONE]
    assert rig.reply.content == "Better now."
    # The failed reply is not part of the prompt.
    assert rig.engine.prompts[-1] == [{"role": "user", "content": "first"},
                                      {"role": "user", "content": "second"}]


def test_a_model_that_cannot_load_shows_why_in_the_reply() -> None:
    failure = EngineFailure("ShaderF16SupportError", "shader-f16 is not supported")

    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine(load_failure=failure))
        await rig.boot(preload=False)
        await rig.service.send("Hi")
        return rig

    rig = run(scenario)
    assert rig.reply.status is MessageStatus.ERROR
    assert rig.reply.error is not None
    # Every file was downloaded, then the start failed: "couldn't start", never "download".
    assert rig.reply.error.startswith("Smart couldn't start. It needs WebGPU's shader-f16")
    item = rig.box.state.downloads["smart"]
    assert item.state is DownloadState.FAILED and item.failed_to_start
    assert rig.host.model_files(SMART_F32) and set(rig.host.model_files(SMART_F32)) <= \
        rig.host.stored_urls()
    assert rig.engine.prompts == []
    assert rig.engine.terminated


def test_storage_failure_keeps_chatting_and_deletes_nothing() -> None:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store(), engine=FakeEngine(["Sure.", "Again."]))
        await rig.boot()
        await rig.service.open("old")
        rig.store.fail("add_message", failure=StoreFailure("QuotaExceededError", "full"),
                       times=1)
        await rig.service.send("Tell me more")
        await rig.service.send("And more")
        return rig

    rig = run(scenario)
    state = rig.box.state
    assert state.storage_error is not None
    assert state.storage_error.title == "Storage is full."
    assert [(m.content, m.status) for m in rig.messages] == [
        ("Hello", MessageStatus.DONE), ("Hi, how can I help?", MessageStatus.DONE),
        ("Tell me more", MessageStatus.DONE), ("Sure.", MessageStatus.DONE),
        ("And more", MessageStatus.DONE), ("Again.", MessageStatus.DONE)]
    # Nothing stored was deleted or rewritten; later writes are not attempted.
    assert set(rig.store.conversation_records) == {"old", "new", "mid"}
    assert [r["id"] for r in rig.store.messages_of("old")] == ["m1", "m2"]
    names = [name for name, _ in rig.store.calls]
    assert not any(name.startswith(("delete", "update")) for name in names)
    assert names.count("add_message") == 1
    assert not rig.service.persist


def test_storage_failure_on_a_new_chat_keeps_it_in_the_list() -> None:
    async def scenario() -> Rig:
        store = FakeStore()
        store.fail("add_conversation", failure=StoreFailure("InvalidStateError", "private"))
        rig = Rig(store=store, engine=FakeEngine(["Hello!"]))
        await rig.boot()
        await rig.service.send("Hi there")
        return rig

    rig = run(scenario)
    state = rig.box.state
    assert [c.title for c in state.conversations] == ["Hi there"]
    assert state.active_id == state.conversations[0].id
    assert (rig.reply.content, rig.reply.status) == ("Hello!", MessageStatus.DONE)
    assert state.storage_error is not None
    assert state.storage_error.title == "This browser isn't letting LocalChat store anything."
    assert rig.store.conversation_records == {}
    assert rig.store.message_records == {}


# --- deleting while replying, and after a failed write ---------------------------------------


def test_deleting_a_chat_while_it_replies_leaves_no_orphan_message() -> None:
    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine([["Once ", "upon"]], pause_after=1))
        await rig.boot()
        sending = asyncio.ensure_future(rig.service.send("Tell me a story"))
        await rig.engine.paused.wait()
        assert await rig.service.delete(rig.box.state.active_id)
        await sending
        return rig

    rig = run(scenario)
    assert rig.box.state.conversations == ()
    assert rig.store.conversation_records == {}
    assert rig.store.message_records == {}


def _rig_after_a_failed_write() -> Callable[[], Awaitable[Rig]]:
    async def scenario() -> Rig:
        rig = Rig(store=seeded_store(), engine=FakeEngine(["Noted."]))
        await rig.boot()
        rig.store.fail("add_conversation", failure=StoreFailure("QuotaExceededError", "full"),
                       times=1)
        await rig.service.send("Something new")
        assert rig.box.state.storage_error is not None
        return rig

    return scenario


def test_after_a_failed_write_stored_chats_still_open_with_their_messages() -> None:
    async def scenario() -> Rig:
        rig = await _rig_after_a_failed_write()()
        await rig.service.open("old")
        return rig

    rig = run(scenario)
    assert [m.content for m in rig.messages] == ["Hello", "Hi, how can I help?"]


def test_after_a_failed_write_export_still_has_stored_messages() -> None:
    async def scenario() -> dict[str, list[Message]]:
        rig = await _rig_after_a_failed_write()()
        _conversations, messages = await rig.service.export(None)
        return messages

    messages = run(scenario)
    assert [m.id for m in messages["old"]] == ["m1", "m2"]


# --- edit and resend -------------------------------------------------------------------------


def test_editing_a_message_replaces_it_and_everything_after_with_a_new_reply() -> None:
    async def scenario() -> tuple[Rig, list[str]]:
        rig = Rig(engine=FakeEngine(["One.", "Two.", "Fresh."]))
        await rig.boot()
        await rig.service.send("first")
        await rig.service.send("second")
        ids = [m.id for m in rig.messages]
        rig.clock.advance(5_000)
        assert await rig.service.edit_and_resend(ids[0], "  first, edited ")
        return rig, ids

    rig, ids = run(scenario)
    assert [(m.role, m.content) for m in rig.messages] == [
        (Role.USER, "first, edited"), (Role.ASSISTANT, "Fresh.")]
    edited = rig.messages[0]
    assert (edited.id, edited.created_at) == (ids[0], NOW)  # same message, same place
    # The engine answered the edited history only.
    assert rig.engine.prompts[-1] == [{"role": "user", "content": "first, edited"}]
    cid = rig.box.state.active_id
    stored = rig.store.messages_of(cid)
    assert [(r["role"], r["content"]) for r in stored] == [
        ("user", "first, edited"), ("assistant", "Fresh.")]
    assert not ({ids[1], ids[2], ids[3]} & {r["id"] for r in stored})
    assert rig.store.conversation_records[cid]["updatedAt"] == NOW + 5_000
    assert not rig.box.state.replying


def test_editing_the_last_message_keeps_what_came_before() -> None:
    async def scenario() -> Rig:
        rig = Rig(engine=FakeEngine(["One.", "Two.", "Again."]))
        await rig.boot()
        await rig.service.send("first")
        await rig.service.send("second")
        assert await rig.service.edit_and_resend(rig.messages[2].id, "second, better")
        return rig

    rig = run(scenario)
    assert [m.content for m in rig.messages] == ["first", "One.", "second, better", "Again."]
    assert rig.engine.prompts[-1] == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "One."},
        {"role": "user", "content": "second, better"}]


def test_edits_that_cannot_be_sent_change_nothing() -> None:
    async def scenario() -> tuple[Rig, tuple[Message, ...], list[bool]]:
        rig = Rig(engine=FakeEngine(["One."]))
        await rig.boot()
        await rig.service.send("first")
        before = rig.messages
        user, reply = before
        results = [
            await rig.service.edit_and_resend(user.id, "   "),
            await rig.service.edit_and_resend(user.id, "x" * (MAX_MESSAGE_CHARS + 1)),
            await rig.service.edit_and_resend(reply.id, "not yours"),
            await rig.service.edit_and_resend("no-such-id", "hello"),
        ]
        return rig, before, results

    rig, before, results = run(scenario)
    assert results == [False, False, False, False]
    assert rig.messages == before
    assert len(rig.engine.prompts) == 1


def test_an_edit_is_refused_while_another_tab_writes_a_reply_it_would_delete() -> None:
    async def scenario() -> tuple[bool, tuple[Message, ...]]:
        locks = FakeLocks()
        rig = Rig(engine=FakeEngine(["One."]))
        rig.service.locks = locks.tab_locks()
        await rig.boot()
        await rig.service.send("first")
        # Another tab is writing (continuing) the reply after it.
        other = locks.tab_locks()
        release = await other.hold(rig.reply.id)
        result = await rig.service.edit_and_resend(rig.messages[0].id, "edited")
        after = rig.messages
        release()
        return result, after

    result, after = run(scenario)
    assert result is False
    assert [m.content for m in after] == ["first", "One."]


# --- regenerate any reply, continue a stopped or cut one ---------------------------------------


def test_regenerating_an_earlier_reply_replaces_it_and_what_came_after() -> None:
    async def scenario() -> tuple[Rig, list[str]]:
        rig = Rig(engine=FakeEngine(["One.", "Two.", "One, again."]))
        await rig.boot()
        await rig.service.send("first")
        await rig.service.send("second")
        ids = [m.id for m in rig.messages]
        assert await rig.service.regenerate(ids[1])
        return rig, ids

    rig, ids = run(scenario)
    assert [m.content for m in rig.messages] == ["first", "One, again."]
    assert rig.messages[0].id == ids[0] and rig.messages[1].id not in ids
    assert rig.engine.prompts[-1] == [{"role": "user", "content": "first"}]
    stored = rig.store.messages_of(rig.box.state.active_id)
    assert [r["content"] for r in stored] == ["first", "One, again."]
    assert not rig.box.state.replying


def test_regenerate_refuses_a_message_of_yours_and_unknown_ids() -> None:
    async def scenario() -> tuple[Rig, list[bool]]:
        rig = Rig(engine=FakeEngine(["One."]))
        await rig.boot()
        await rig.service.send("first")
        return rig, [await rig.service.regenerate(rig.messages[0].id),
                     await rig.service.regenerate("no-such-id")]

    rig, results = run(scenario)
    assert results == [False, False]
    assert [m.content for m in rig.messages] == ["first", "One."]


def test_a_reply_cut_at_the_length_limit_is_marked_so_and_can_be_continued() -> None:
    async def scenario() -> tuple[Rig, MessageStatus, bool]:
        rig = Rig(engine=FakeEngine(["Once upon", " a time."], finish_reasons=["length"]))
        await rig.boot()
        await rig.service.send("tell me")
        cut = rig.reply.status
        return rig, cut, await rig.service.continue_reply()

    rig, cut, continued = run(scenario)
    assert cut is MessageStatus.CUT and continued
    assert (rig.reply.content, rig.reply.status) == ("Once upon a time.", MessageStatus.DONE)
    stored = rig.store.messages_of(rig.box.state.active_id)[-1]
    assert (stored["content"], stored["status"]) == ("Once upon a time.", "done")
    assert len(rig.messages) == 2


def test_a_stopped_reply_can_be_continued_but_a_finished_one_cannot() -> None:
    async def scenario() -> tuple[Rig, bool, bool]:
        rig = Rig(engine=FakeEngine([["Once ", "upon ", "a time"], " a time."],
                                    pause_after=2))
        await rig.boot()
        sending = asyncio.ensure_future(rig.service.send("Tell me a story"))
        await rig.engine.paused.wait()
        await rig.service.stop()
        await sending
        rig.engine.pause_after = None
        continued = await rig.service.continue_reply()
        return rig, continued, await rig.service.continue_reply()

    rig, continued, again = run(scenario)
    assert continued and not again
    assert (rig.reply.content, rig.reply.status) == ("Once upon  a time.", MessageStatus.DONE)
