"""Two tabs of one browser profile in CPython: two ChatServices on one shared FakeStore
(each through its own FakeTabStore, whose writes are announced to the other tab as
db-bridge.js does) with shared FakeLocks, each tab applying the other's notices with a
real TabSync. End states are asserted: what each tab shows and what is stored."""

from __future__ import annotations

from typing import Any

from localchat.core.chat import CONTINUE_PROMPT, SAVE_EVERY_MS
from localchat.core.conversation import Conversation, Message, MessageStatus, Role
from localchat.core.errors import CONVERSATION_DELETED, StoreFailure, explain_store_failure
from localchat.core.sync import TabSync
from tests.fakes import FakeEngine, FakeLocks, FakeStore, FakeTabStore
from tests.unit.test_chat_service import NOW, SMART_F32, Rig, run


class Tab:
    """One tab: a Rig on its own view of the shared store, hearing the other tabs."""

    def __init__(self, shared: FakeStore, locks: FakeLocks, **rig: Any) -> None:
        self.view: FakeTabStore = shared.tab()
        self.rig = Rig(store=self.view, **rig)  # type: ignore[arg-type]
        self.locks = locks.tab_locks()
        self.rig.service.locks = self.locks
        self.sync = TabSync(self.rig.service)
        self.view.on_notice(self.sync.notice)

    @property
    def service(self) -> Any:
        return self.rig.service

    @property
    def state(self) -> Any:
        return self.rig.box.state

    def titles(self) -> list[str]:
        return [c.title for c in self.state.conversations]


def two_tabs(shared: FakeStore | None = None, **rig: Any) -> tuple[Tab, Tab, FakeStore]:
    shared = shared or FakeStore()
    locks = FakeLocks()
    return Tab(shared, locks, **rig), Tab(shared, locks), shared


async def boot(*tabs: Tab) -> None:
    for tab in tabs:
        await tab.rig.boot()


async def settle(*tabs: Tab) -> None:
    for _ in range(3):  # a refresh can cause no writes, so a few rounds always suffice
        for tab in tabs:
            await tab.sync.idle()


def orphans(store: FakeStore) -> list[dict[str, Any]]:
    return [m for m in store.message_records.values()
            if m["conversationId"] not in store.conversation_records]


def test_a_new_conversation_and_its_messages_show_in_the_other_tab() -> None:
    async def scenario() -> tuple[Tab, Tab]:
        a, b = two_tabs()[:2]
        await boot(a, b)
        await a.service.send("/echo hi")
        await settle(a, b)
        assert b.titles() == ["/echo hi"]
        await b.service.open(a.state.active_id)
        await a.service.send("second")
        await settle(a, b)
        return a, b

    a, b = run(scenario)
    assert [m.content for m in b.state.messages] == [m.content for m in a.state.messages]
    assert [m.role for m in b.state.messages] == [Role.USER, Role.ASSISTANT] * 2
    assert b.state.messages[-1].status is MessageStatus.DONE


def test_two_renames_converge_to_the_later_one_in_both_tabs() -> None:
    async def scenario() -> tuple[Tab, Tab, FakeStore]:
        shared = FakeStore([Conversation("c", "Old", "smart", 1, 1)])
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await a.service.rename("c", "From A")
        await b.service.rename("c", "From B")  # before A's notice is applied in B
        await settle(a, b)
        return a, b, shared

    a, b, shared = run(scenario)
    assert a.titles() == b.titles() == ["From B"]
    assert shared.conversation_records["c"]["title"] == "From B"


def test_a_model_change_in_one_tab_shows_in_the_other() -> None:
    async def scenario() -> Tab:
        shared = FakeStore([Conversation("c", "Chat", "smart", 1, 1)])
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await b.service.open("c")
        await a.service.open("c")
        await a.service.set_model("quick")
        await settle(a, b)
        return b

    assert run(scenario).state.active.model == "quick"


def test_a_send_into_a_chat_deleted_in_another_tab_stores_nothing_and_offers_a_new_chat(
) -> None:
    async def scenario() -> tuple[Tab, FakeStore, list[str]]:
        shared = FakeStore([Conversation("c", "Doomed", "smart", 1, 1),
                            Conversation("k", "Kept", "smart", 2, 2)])
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await a.service.open("c")
        await b.service.delete("c")  # A has not heard of it yet: the write itself refuses
        sent = await a.service.send("my words")
        assert sent is False
        titles = a.titles()
        assert a.service.persist, "a deleted chat is not a storage failure"
        await settle(a, b)
        assert await a.service.keep_as_new_chat()
        return a, shared, titles

    a, shared, titles_after_refusal = run(scenario)
    assert titles_after_refusal == ["Kept"]
    assert "c" not in shared.conversation_records and orphans(shared) == []
    new_id = a.state.active_id
    assert new_id not in (None, "c") and a.state.unsent_text is None
    assert [m["content"] for m in shared.messages_of(new_id)][:1] == ["my words"]


def test_a_chat_deleted_elsewhere_shows_as_such_and_a_send_there_is_offered_as_new() -> None:
    async def scenario() -> tuple[Tab, FakeStore, Any]:
        shared = FakeStore([Conversation("c", "Doomed", "smart", 1, 1)])
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await a.service.open("c")
        await b.service.delete("c")
        await settle(a, b)
        shown = a.state
        await a.service.send("typed after")
        return a, shared, shown

    a, shared, shown = run(scenario)
    assert shown.not_found_id == shown.deleted_elsewhere_id == "c"
    assert a.state.unsent_text == "typed after"
    assert shared.message_records == {}
    a.service.discard_unsent()
    assert a.state.unsent_text is None


def test_the_deleted_conversation_failure_is_explained_in_plain_words() -> None:
    problem = explain_store_failure(StoreFailure(CONVERSATION_DELETED, "gone"))
    assert problem.title == "This chat was deleted in another tab."


def _streaming(store: FakeStore) -> list[dict[str, Any]]:
    return [m for m in store.message_records.values() if m["role"] == "assistant"]


def test_a_streaming_reply_is_saved_as_it_grows_under_its_lock() -> None:
    async def scenario() -> tuple[Tab, list[dict[str, Any]], Message | None, bool]:
        engine = FakeEngine([["one ", "two ", "three ", "four ", "five"]], pause_after=4)
        a, _b, shared = two_tabs(engine=engine)
        a.rig.clock.step_ms = SAVE_EVERY_MS // 2
        await boot(a)
        import asyncio

        sending = asyncio.ensure_future(a.service.send("count"))
        await engine.paused.wait()
        await asyncio.sleep(0)
        saved = [dict(m) for m in _streaming(shared)]
        partial = a.service.partial_reply()
        held = partial is not None and a.locks._locks.holder(partial.id) is a.locks
        engine.resume()
        await sending
        return a, saved, partial, held

    a, saved, partial, held = run(scenario)
    assert saved and saved[0]["status"] == "streaming"
    assert saved[0]["content"].startswith("one ")
    assert partial is not None and partial.status is MessageStatus.INTERRUPTED
    assert partial.content == "one two three four "
    assert held
    assert a.service.partial_reply() is None
    final = a.rig.store.shared.message_records[partial.id]
    assert final["status"] == "done" and final["content"] == "one two three four five"


def test_a_reply_is_stored_at_its_first_text_so_the_other_tabs_show_it_at_once() -> None:
    async def scenario() -> list[dict[str, Any]]:
        engine = FakeEngine([["one ", "two ", "three"]], pause_after=1)
        a, _b, shared = two_tabs(engine=engine)
        a.rig.clock.step_ms = 0  # no time passes: only the first text may cause a save
        await boot(a)
        import asyncio

        sending = asyncio.ensure_future(a.service.send("count"))
        await engine.paused.wait()
        await asyncio.sleep(0)
        saved = [dict(m) for m in _streaming(shared)]
        engine.resume()
        await sending
        return saved

    saved = run(scenario)
    assert [(m["status"], m["content"]) for m in saved] == [("streaming", "one ")]


def test_a_reply_left_streaming_by_a_gone_tab_is_interrupted_but_not_one_still_streaming(
) -> None:
    async def scenario() -> tuple[Tab, Tab]:
        shared = FakeStore(
            [Conversation("gone", "Gone tab", "smart", 1, 1),
             Conversation("live", "Live tab", "smart", 2, 2)],
            [Message("u1", "gone", Role.USER, "q", None, 1),
             Message("r1", "gone", Role.ASSISTANT, "half a", SMART_F32, 2,
                     MessageStatus.STREAMING),
             Message("u2", "live", Role.USER, "q", None, 1),
             Message("r2", "live", Role.ASSISTANT, "so far", SMART_F32, 2,
                     MessageStatus.STREAMING)])
        a, b, _ = two_tabs(shared)
        await b.locks.hold("r2")  # tab B is still streaming r2
        await boot(a)
        await a.service.open("gone")
        gone = a.state.messages[-1]
        await a.service.open("live")
        assert a.state.messages[-1].status is MessageStatus.STREAMING
        assert gone.status is MessageStatus.INTERRUPTED and gone.content == "half a"
        # Stored records are only read, never rewritten.
        assert shared.message_records["r1"]["status"] == "streaming"
        return a, b

    run(scenario)


def test_continue_appends_to_an_interrupted_reply() -> None:
    async def scenario() -> tuple[Tab, FakeStore, FakeEngine]:
        shared = FakeStore(
            [Conversation("c", "Chat", "smart", 1, 1)],
            [Message("u", "c", Role.USER, "tell me", None, 1),
             Message("r", "c", Role.ASSISTANT, "Once upon", SMART_F32, 2,
                     MessageStatus.INTERRUPTED)])
        engine = FakeEngine([" a time."])
        a, _b, _ = two_tabs(shared, engine=engine)
        await boot(a)
        await a.service.open("c")
        assert await a.service.continue_reply()
        return a, shared, engine

    a, shared, engine = run(scenario)
    reply = a.state.messages[-1]
    assert (reply.id, reply.content, reply.status) == ("r", "Once upon a time.",
                                                       MessageStatus.DONE)
    assert shared.message_records["r"]["content"] == "Once upon a time."
    assert engine.prompts[-1][-2:] == [{"role": "assistant", "content": "Once upon"},
                                       {"role": "user", "content": CONTINUE_PROMPT}]
    assert len(a.state.messages) == 2


def test_a_refresh_while_this_tab_streams_waits_for_the_reply_to_end() -> None:
    async def scenario() -> tuple[Tab, Message, tuple[Message, ...]]:
        import asyncio

        engine = FakeEngine([["mine ", "still"]], pause_after=1)
        shared = FakeStore([Conversation("c", "Chat", "smart", 1, 1)])
        a, b, _ = two_tabs(shared, engine=engine)
        await boot(a, b)
        await a.service.open("c")
        await b.service.open("c")
        sending = asyncio.ensure_future(a.service.send("question"))
        await engine.paused.wait()
        streaming = a.state.messages[-1]
        # B writes into the same chat while A streams.
        await b.view.add_message(Message("x", "c", Role.USER, "from b", None, NOW + 5), None)
        await settle(a, b)
        during = a.state.messages
        engine.resume()
        await sending
        await settle(a, b)
        return a, streaming, during

    a, streaming, during = run(scenario)
    assert during[-1] is streaming  # the in-memory reply was not replaced meanwhile
    assert "from b" in [m.content for m in a.state.messages]  # read once the reply ended


def test_notices_are_coalesced_and_junk_is_ignored() -> None:
    async def scenario() -> tuple[Tab, int]:
        shared = FakeStore([Conversation("c", "One", "smart", 1, 1)])
        a, _b, _ = two_tabs(shared)
        await boot(a)
        shared.conversation_records["c"]["title"] = "Two"
        for notice in ({"kind": "conversations", "ids": ["c"]}, {"kind": "conversations"},
                       {"kind": "messages", "conversationId": "c"}, {"kind": "?"}, "junk",
                       {"kind": "messages"}):
            a.sync.notice(notice)
        await a.sync.idle()
        return a, a.sync.applied

    a, applied = run(scenario)
    assert a.titles() == ["Two"]
    assert applied == 1


def test_old_records_without_the_new_fields_load_unchanged() -> None:
    async def scenario() -> tuple[Tab, FakeStore, dict[str, Any]]:
        shared = FakeStore()
        shared.conversation_records["c"] = {"id": "c", "title": "Old", "model": "smart",
                                            "createdAt": 1, "updatedAt": 1}
        shared.message_records["m"] = {"id": "m", "conversationId": "c", "role": "assistant",
                                       "content": "old reply", "createdAt": 2}
        before = {k: dict(v) for k, v in shared.message_records.items()}
        a, _b, _ = two_tabs(shared)
        await boot(a)
        await a.service.open("c")
        return a, shared, before

    a, shared, before = run(scenario)
    assert a.state.messages[0].status is MessageStatus.DONE
    assert shared.message_records == before


def test_a_reply_whose_tab_vanishes_mid_stream_turns_interrupted_in_the_other_tab() -> None:
    async def scenario() -> tuple[MessageStatus, Message]:
        import asyncio

        shared = FakeStore(
            [Conversation("c", "Chat", "smart", 1, 1)],
            [Message("u", "c", Role.USER, "q", None, 1),
             Message("r", "c", Role.ASSISTANT, "so far", SMART_F32, 2,
                     MessageStatus.STREAMING)])
        a, b, _ = two_tabs(shared)
        await b.locks.hold("r")  # B streams r, then crashes: no pagehide save
        await boot(a)
        await a.service.open("c")
        before = a.state.messages[-1].status
        b.locks.close_tab()
        for _ in range(10):
            await asyncio.sleep(0)
        return before, a.state.messages[-1]

    before, after = run(scenario)
    assert before is MessageStatus.STREAMING
    assert after.status is MessageStatus.INTERRUPTED and after.content == "so far"


def test_no_pagehide_save_while_a_change_to_its_chat_is_unread() -> None:
    async def scenario() -> tuple[Message | None, Message | None, Message | None]:
        import asyncio

        engine = FakeEngine([["a ", "b ", "c"]], pause_after=1)
        shared = FakeStore([Conversation("c", "Chat", "smart", 1, 1)])
        a, b, _ = two_tabs(shared, engine=engine)
        await boot(a, b)
        await a.service.open("c")
        sending = asyncio.ensure_future(a.service.send("q"))
        await engine.paused.wait()
        before = a.service.partial_reply(a.sync.unsettled)
        a.sync.notice({"kind": "conversations", "ids": ["c"]})  # heard, not yet read
        unread = a.service.partial_reply(a.sync.unsettled)
        await a.sync.idle()
        after = a.service.partial_reply(a.sync.unsettled)
        engine.resume()
        await sending
        return before, unread, after

    before, unread, after = run(scenario)
    assert before is not None and before.content == "a "
    assert unread is None
    assert after is not None


def test_a_notice_naming_messages_reads_only_those() -> None:
    async def scenario() -> tuple[Tab, FakeStore, int]:
        shared = FakeStore([Conversation("c", "Chat", "smart", 1, 1)],
                           [Message(f"m{i}", "c", Role.USER, f"old {i}", None, i)
                            for i in range(50)])
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await b.service.open("c")
        full_reads = len(shared.called("get_messages"))
        await a.service.open("c")
        await a.service.send("new one")
        await settle(a, b)
        # Delete one message in A's view of the store: B drops just that one.
        await a.view.delete_message("m3")
        await settle(a, b)
        return b, shared, len(shared.called("get_messages")) - full_reads

    b, shared, more_full_reads = run(scenario)
    assert more_full_reads == 1  # only A's own open(); B read single messages
    assert "m3" not in shared.message_records
    assert [m.content for m in b.state.messages][-2:] == ["new one", "Hello!"]
    assert "old 3" not in [m.content for m in b.state.messages]
    assert len(b.state.messages) == 51


def test_continue_is_refused_while_another_tab_continues_the_same_reply() -> None:
    async def scenario() -> tuple[bool, Tab]:
        shared = FakeStore(
            [Conversation("c", "Chat", "smart", 1, 1)],
            [Message("u", "c", Role.USER, "q", None, 1),
             Message("r", "c", Role.ASSISTANT, "half", SMART_F32, 2,
                     MessageStatus.INTERRUPTED)])
        a, b, _ = two_tabs(shared)
        await boot(a)
        await a.service.open("c")
        await b.locks.hold("r")  # B pressed Continue first
        return await a.service.continue_reply(), a

    refused, a = run(scenario)
    assert refused is False
    assert a.state.messages[-1].status is MessageStatus.INTERRUPTED


def test_notices_naming_numeric_keys_refresh_the_aliased_records() -> None:
    async def scenario() -> tuple[Tab, list[str]]:
        shared = FakeStore()
        # The store names records by their stored keys; FakeStore holds them by alias.
        shared.conversation_records["__n42"] = {"id": 42, "title": "One", "model": "smart",
                                                "createdAt": 1, "updatedAt": 1}
        shared.message_records["__n7"] = {"id": 7, "conversationId": 42, "role": "user",
                                          "content": "first", "createdAt": 1}
        a, _b, _ = two_tabs(shared)
        await boot(a)
        await a.service.open("__n42")
        shared.conversation_records["__n42"]["title"] = "Two"
        shared.message_records["__n8"] = {"id": 8, "conversationId": 42, "role": "user",
                                          "content": "second", "createdAt": 2}
        a.sync.notice({"kind": "conversations", "ids": [42]})
        a.sync.notice({"kind": "messages", "conversationId": 42, "ids": [8]})
        await a.sync.idle()
        return a, [m.content for m in a.state.messages]

    a, contents = run(scenario)
    assert a.titles() == ["Two"]
    assert contents == ["first", "second"]


def test_undo_puts_a_deleted_chat_back_exactly_in_every_tab() -> None:
    """Deleting offers Undo: the records come back as they were stored (odd fields too),
    and the tab that had the chat open shows it again."""
    async def scenario() -> tuple[Tab, Tab, FakeStore, dict[str, Any], Any, Any]:
        shared = FakeStore([Conversation("c", "Recipes", "genius", 10, 20),
                            Conversation("k", "Kept", "smart", 2, 2)],
                           [Message("m1", "c", Role.USER, "soup?", None, 11),
                            Message("m2", "c", Role.ASSISTANT, "Yes.", SMART_F32, 12)])
        shared.conversation_records["c"]["extra"] = {"from": "an older version"}
        before = {"c": dict(shared.conversation_records["c"]),
                  "m1": dict(shared.message_records["m1"]),
                  "m2": dict(shared.message_records["m2"])}
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await a.service.open("c")
        await b.service.open("c")
        assert await b.service.delete("c")
        await settle(a, b)
        gone = a.state
        assert "c" not in shared.conversation_records and orphans(shared) == []
        assert await b.service.undo_delete("c")
        await settle(a, b)
        assert not await b.service.undo_delete("c")  # once
        return a, b, shared, before, gone, b.state

    a, b, shared, before, gone, b_state = run(scenario)
    assert gone.deleted_elsewhere_id == "c"
    assert {"c": shared.conversation_records["c"], "m1": shared.message_records["m1"],
            "m2": shared.message_records["m2"]} == before
    for tab in (a, b):
        assert tab.titles() == ["Recipes", "Kept"]
    # The tab that showed "deleted in another tab" shows the chat again, messages and all.
    assert a.state.active_id == "c" and a.state.not_found_id is None
    assert a.state.deleted_elsewhere_id is None
    assert [m.content for m in a.state.messages] == ["soup?", "Yes."]
    assert a.state.active.model == "genius"
    assert b_state.active_id is None  # the deleting tab: the app reopens it (route)


def test_after_the_undo_offer_the_deleted_chat_is_gone_for_good() -> None:
    async def scenario() -> tuple[Tab, FakeStore]:
        shared = FakeStore([Conversation("c", "Doomed", "smart", 1, 1)])
        a, b, _ = two_tabs(shared)
        await boot(a, b)
        await a.service.delete("c")
        a.service.forget_deleted("c")
        assert not await a.service.undo_delete("c")
        await settle(a, b)
        return b, shared

    b, shared = run(scenario)
    assert shared.conversation_records == {} and b.titles() == []
