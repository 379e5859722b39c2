"""The user flows (core/flows.py) on a real ChatService over the fake store, with a
screen that records what it was asked to show and answers confirmations as told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from localchat.core.conversation import Conversation, new_id
from localchat.core.downloads import DownloadState
from localchat.core.errors import EngineFailure, StoreFailure
from localchat.core.flows import Flows
from localchat.core.routes import conversation_route
from tests.fakes import FakeStore
from tests.unit.test_chat_service import Rig, run, seeded_store


class Screen:
    def __init__(self, answers: tuple[bool, ...] = ()) -> None:
        self.answers = list(answers)
        self.toasts: list[dict[str, Any]] = []
        self.alerts: list[tuple[str, str]] = []
        self.asked: list[dict[str, Any]] = []
        self.files: list[tuple[str, str, str]] = []
        self.routes: list[str] = []
        self.focused = 0

    def toast(self, text: str, action: str | None = None,
              on_action: Callable[[], None] | None = None,
              on_expire: Callable[[], None] | None = None, ms: int = 6000) -> None:
        self.toasts.append({"text": text, "action": action, "on_action": on_action,
                            "on_expire": on_expire, "ms": ms})

    def show_alert(self, title: str, detail: str) -> None:
        self.alerts.append((title, detail))

    async def confirm(self, title: str, body: str, confirm_label: str,
                      cancel_label: str = "Cancel", destructive: bool = True) -> bool:
        self.asked.append({"title": title, "body": body, "confirm": confirm_label,
                           "cancel": cancel_label, "destructive": destructive})
        return self.answers.pop(0)

    def download(self, filename: str, text: str, mime: str = "application/json") -> None:
        self.files.append((filename, text, mime))

    def focus_composer(self) -> None:
        self.focused += 1

    def go_to(self, route: str) -> None:
        self.routes.append(route)


class Setup:
    def __init__(self, rig: Rig, screen: Screen) -> None:
        self.rig = rig
        self.screen = screen
        self.tasks: list[asyncio.Task[Any]] = []
        self.flows = Flows(rig.service, screen, self.spawn, now_ms=lambda: 1_700_000_000_000,
                           today=lambda: "2026-12-03")

    def spawn(self, coro: Awaitable[object]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def settle(self) -> None:
        while self.tasks:
            await self.tasks.pop(0)


async def started(answers: tuple[bool, ...] = (), store: Any = None) -> Setup:
    rig = Rig(store=store or seeded_store())
    await rig.boot()
    return Setup(rig, Screen(answers))


def ids(setup: Setup) -> list[str]:
    return [c.id for c in setup.rig.box.state.conversations]


def test_delete_offers_undo_and_undo_puts_the_open_chat_back() -> None:
    async def scenario() -> tuple[Setup, list[str], list[str]]:
        s = await started()
        await s.rig.service.open("old")
        await s.flows.delete("old")
        after_delete = ids(s)
        toast = s.screen.toasts[-1]
        assert toast["text"] == "Deleted “Old chat”." and toast["action"] == "Undo"
        toast["on_action"]()
        await s.settle()
        return s, after_delete, ids(s)

    s, after_delete, after_undo = run(scenario)
    assert after_delete == ["new", "mid"]
    assert sorted(after_undo) == ["mid", "new", "old"]
    assert s.screen.routes == ["#/chat", conversation_route("old")]
    assert s.screen.focused == 1  # the open chat went: the composer has focus
    assert s.screen.toasts[-1]["text"] == "“Old chat” is back."
    assert len(s.rig.store.messages_of("old")) == 2  # its messages came back too


def test_deleting_another_chat_keeps_the_route_and_expiry_forgets_it() -> None:
    async def scenario() -> tuple[Setup, bool]:
        s = await started()
        await s.rig.service.open("new")
        await s.flows.delete("old")
        s.screen.toasts[-1]["on_expire"]()
        return s, await s.rig.service.undo_delete("old")

    s, restored = run(scenario)
    assert s.screen.routes == [] and s.screen.focused == 0
    assert not restored  # after the toast expired, nothing is kept to put back


def test_undo_that_the_store_refuses_says_so() -> None:
    async def scenario() -> Setup:
        s = await started()
        await s.flows.delete("mid")
        s.rig.store.fail("restore_conversation", failure=StoreFailure("QuotaExceededError",
                                                                        "full"))
        s.screen.toasts[-1]["on_action"]()
        await s.settle()
        return s

    s = run(scenario)
    assert s.screen.alerts[-1][0] == "“Middle chat” could not be put back."


def test_export_names_the_file_and_counts() -> None:
    async def scenario() -> Setup:
        s = await started()
        await s.flows.export("old")
        await s.flows.export(None, markdown=True)
        return s

    s = run(scenario)
    (name, text, mime), (md_name, md_text, md_mime) = s.screen.files
    assert name == "localchat-old-chat-2026-12-03.json" and mime == "application/json"
    assert [c["id"] for c in json.loads(text)["conversations"]] == ["old"]
    assert md_name == "localchat-all-2026-12-03.md" and md_mime == "text/markdown"
    assert "Hi, how can I help?" in md_text
    assert [t["text"] for t in s.screen.toasts] == [
        "Exported 1 conversation.", "Exported 3 conversations as Markdown."]


def test_export_of_nothing_and_a_failing_store() -> None:
    async def scenario() -> tuple[Setup, Setup]:
        empty = await started(store=seeded_store().__class__())
        await empty.flows.export(None)
        s = await started()
        s.rig.store.fail("get_messages", failure=StoreFailure("UnknownError", "broken"))
        await s.flows.export(None)
        assert s.screen.toasts == []
        return empty, s

    empty, s = run(scenario)
    assert empty.screen.files == [] and s.screen.files == []
    assert empty.screen.toasts[0]["text"] == "There are no conversations to export yet."
    assert [a[0] for a in s.screen.alerts] == ["Export failed."]
    assert "broken" not in s.screen.alerts[0][1]  # plain words, not the browser's


def test_import_of_a_broken_file_changes_nothing() -> None:
    async def scenario() -> Setup:
        s = await started()
        await s.flows.import_text("notes.json", "{not json")
        return s

    s = run(scenario)
    title, detail = s.screen.alerts[0]
    assert title == "“notes.json” can't be imported." and detail.endswith("Nothing was changed.")
    assert sorted(ids(s)) == ["mid", "new", "old"]


def test_import_of_known_conversations_asks_and_adds_copies() -> None:
    async def scenario() -> tuple[Setup, Setup]:
        chats = [Conversation(new_id(), "Trip", "smart", 100, 1000),
                 Conversation(new_id(), "Recipes", "quick", 200, 2000)]
        source = await started(store=FakeStore(chats))
        await source.flows.export(chats[0].id)
        text = source.screen.files[0][1]
        declined = await started(answers=(False,), store=FakeStore(chats))
        await declined.flows.import_text("all.json", text)
        agreed = await started(answers=(True,), store=FakeStore(chats))
        await agreed.flows.import_text("all.json", text)
        return declined, agreed

    declined, agreed = run(scenario)
    assert declined.screen.asked[0]["destructive"] is False  # nothing is lost: not red
    assert declined.screen.asked[0]["confirm"] == "Import copies"
    assert declined.screen.toasts[-1]["text"] == "Import canceled; nothing was changed."
    assert "1 of these conversations is already here" in declined.screen.asked[0]["body"]
    assert len(ids(declined)) == 2
    titles = sorted(c.title for c in agreed.rig.box.state.conversations)
    assert titles == ["Recipes", "Trip", "Trip (imported)"]
    assert agreed.screen.toasts[-1]["text"] == "Imported 1 conversation (0 messages)."


class Models:
    """What the model flows use of the models (spec, item, kept_text, cancel, remove)."""

    def __init__(self, state: DownloadState, fail_remove: bool = False) -> None:
        self.state = state
        self.fail_remove = fail_remove
        self.canceled: list[str] = []
        self.removed: list[str] = []

    def spec(self, key: str) -> Any:
        return type("Spec", (), {"label": key.title()})()

    def item(self, key: str) -> Any:
        return type("Item", (), {"state": self.state})()

    def kept_text(self, key: str) -> str:
        return "1.7 GB"

    def cancel(self, key: str) -> None:
        self.canceled.append(key)

    async def remove(self, key: str) -> None:
        if self.fail_remove:
            raise EngineFailure("QuotaExceededError", "Failed to execute 'delete' on 'Cache'")
        self.removed.append(key)


def with_models(s: Setup, models: Models) -> Models:
    s.rig.service.models = models  # type: ignore[assignment]
    return models


def test_cancel_asks_in_the_words_of_the_state() -> None:
    async def scenario() -> tuple[Setup, Models, Models]:
        s = await started(answers=(False, True))
        downloading = with_models(s, Models(DownloadState.DOWNLOADING))
        await s.flows.cancel_download("smart")
        assert downloading.canceled == []  # "Keep downloading"
        compiling = with_models(s, Models(DownloadState.COMPILING))
        await s.flows.cancel_download("smart")
        return s, downloading, compiling

    s, _downloading, compiling = run(scenario)
    first, second = s.screen.asked
    assert (first["title"], first["confirm"], first["cancel"]) == (
        "Cancel the Smart download?", "Cancel download", "Keep downloading")
    assert (second["title"], second["cancel"]) == ("Stop starting Smart?", "Keep starting")
    assert compiling.canceled == ["smart"]


def test_remove_model_files_reports_success_and_failure_plainly() -> None:
    async def scenario() -> tuple[Setup, Models]:
        s = await started(answers=(True, True, False))
        fine = with_models(s, Models(DownloadState.READY))
        await s.flows.remove_model("smart")
        with_models(s, Models(DownloadState.READY, fail_remove=True))
        await s.flows.remove_model("smart")
        kept = with_models(s, Models(DownloadState.READY))
        await s.flows.remove_model("smart")
        assert kept.removed == []
        return s, fine

    s, fine = run(scenario)
    assert fine.removed == ["smart"]
    assert s.screen.toasts[0]["text"] == "Removed Smart's files; 1.7 GB is free again."
    title, detail = s.screen.alerts[0]
    assert title == "Smart's files could not be removed." and "Cache" not in detail
