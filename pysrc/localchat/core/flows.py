"""The user flows that ask, wait and answer: deleting a conversation (with Undo),
exporting and importing, canceling a download, removing a model's files.

Each flow talks to the screen only through `Screen` (the page implements it), so the
flows run in CPython against fakes (tests/unit/test_flows.py). The composition root
(app.py) starts them as tasks; the words the user reads are here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from .chat import ChatService
from .downloads import DownloadState
from .errors import EngineFailure, StoreFailure, explain_store_failure
from .routes import conversation_route
from .transfer import (
    ImportProblem,
    as_copies,
    export_document,
    export_filename,
    markdown_document,
    parse_import,
)

__all__ = ["Flows", "Screen"]


class Screen(Protocol):
    """What a flow shows and asks (adapters/page.py)."""

    def toast(self, text: str, action: str | None = None,
              on_action: Callable[[], None] | None = None,
              on_expire: Callable[[], None] | None = None, ms: int = 6000) -> None: ...
    def show_alert(self, title: str, detail: str) -> None: ...
    async def confirm(self, title: str, body: str, confirm_label: str,
                      cancel_label: str = "Cancel", destructive: bool = True) -> bool: ...
    def download(self, filename: str, text: str, mime: str = "application/json") -> None: ...
    def focus_composer(self) -> None: ...
    def go_to(self, route: str) -> None: ...


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


class Flows:
    """The flows of one tab. `spawn` starts a coroutine as a task (for Undo, which runs
    after the flow that offered it); `today` is the local date ("2026-12-03"), for file
    names; `now_ms` the wall clock."""

    def __init__(self, service: ChatService, screen: Screen,
                 spawn: Callable[[Awaitable[object]], None],
                 now_ms: Callable[[], int], today: Callable[[], str]) -> None:
        self.service = service
        self.screen = screen
        self._spawn = spawn
        self._now_ms = now_ms
        self._today = today

    # --- conversations ---------------------------------------------------------------

    async def delete(self, conversation_id: str) -> None:
        """Delete at once and offer Undo for a few seconds (nothing is asked first: the
        deletion can be taken back, in every tab)."""
        service = self.service
        target = next((c for c in service.box.state.conversations
                       if c.id == conversation_id), None)
        if target is None:
            return
        was_active = service.box.state.active_id == conversation_id
        await service.delete(conversation_id)
        if was_active:
            self.screen.go_to("#/chat")
            self.screen.focus_composer()

        def undo() -> None:
            self._spawn(self.undo_delete(conversation_id, target.title, was_active))

        self.screen.toast(f"Deleted “{target.title}”.", action="Undo", on_action=undo,
                          on_expire=lambda: service.forget_deleted(conversation_id),
                          ms=8000)

    async def undo_delete(self, conversation_id: str, title: str, was_active: bool) -> None:
        if not await self.service.undo_delete(conversation_id):
            self.screen.show_alert(f"“{title}” could not be put back.",
                                   "The browser's storage didn't accept it. Reload the page "
                                   "to see what is stored.")
            return
        if was_active:
            self.screen.go_to(conversation_route(conversation_id))
        self.screen.toast(f"“{title}” is back.")

    async def export(self, conversation_id: str | None, markdown: bool = False) -> None:
        try:
            conversations, messages = await self.service.export(conversation_id)
        except StoreFailure as failure:
            problem = explain_store_failure(failure)
            self.screen.show_alert("Export failed.", f"{problem.title} {problem.detail}")
            return
        if not conversations:
            self.screen.toast("There are no conversations to export yet.")
            return
        now_ms = self._now_ms()
        if markdown:
            self.screen.download(export_filename(conversations, self._today(), "md"),
                                 markdown_document(conversations, messages, now_ms),
                                 "text/markdown")
        else:
            document = export_document(conversations, messages, now_ms)
            self.screen.download(export_filename(conversations, self._today()),
                                 json.dumps(document, ensure_ascii=False, indent=1))
        kind = " as Markdown" if markdown else ""
        self.screen.toast(f"Exported {_plural(len(conversations), 'conversation')}{kind}.")

    async def import_text(self, name: str, text: str) -> None:
        try:
            bundle = parse_import(text)
        except ImportProblem as problem:
            self.screen.show_alert(f"“{name}” can't be imported.",
                                   f"{problem} Nothing was changed.")
            return
        existing = {c.id for c in self.service.box.state.conversations}
        clashes = {c.id for c in bundle.conversations if c.id in existing}
        if clashes:
            n = len(clashes)
            agreed = await self.screen.confirm(
                "Import as copies?",
                f"{n} of these conversations {'is' if n == 1 else 'are'} already here. "
                "They will be added as copies; nothing will be overwritten.", "Import copies",
                cancel_label="Don't import", destructive=False)
            if not agreed:
                self.screen.toast("Import canceled; nothing was changed.")
                return
            bundle = as_copies(bundle, clashes)
        try:
            await self.service.import_bundle(bundle.conversations, bundle.messages)
        except StoreFailure as failure:
            reason = explain_store_failure(failure)
            self.screen.show_alert(f"“{name}” could not be saved.",
                                   f"{reason.title} {reason.detail} Nothing was imported.")
            return
        self.screen.toast(f"Imported {_plural(len(bundle.conversations), 'conversation')} "
                          f"({bundle.message_count} messages).")

    # --- model files -------------------------------------------------------------------

    async def cancel_download(self, key: str) -> None:
        models = self.service.models
        if models is None:
            return
        label = models.spec(key).label
        item = models.item(key)
        if item is not None and item.state is DownloadState.COMPILING:
            confirmed = await self.screen.confirm(
                f"Stop starting {label}?",
                f"Its files stay on this device. It starts again when you send a message in "
                f"a chat that uses {label}.", "Stop starting", cancel_label="Keep starting")
        else:
            confirmed = await self.screen.confirm(
                f"Cancel the {label} download?",
                "The files already downloaded are kept, so Resume continues from there.",
                "Cancel download", cancel_label="Keep downloading")
        if confirmed and self.service.models is not None:
            self.service.models.cancel(key)

    async def remove_model(self, key: str) -> None:
        models = self.service.models
        if models is None:
            return
        label = models.spec(key).label
        freed = models.kept_text(key)
        confirmed = await self.screen.confirm(
            f"Remove {label}'s files from this device?",
            f"This frees {freed}. Chats that use {label} stay; it can be downloaded again.",
            "Remove files", cancel_label="Keep files")
        if not confirmed or self.service.models is None:
            return
        try:
            await self.service.models.remove(key)
        except EngineFailure:
            self.screen.show_alert(f"{label}'s files could not be removed.",
                                   "The browser's storage didn't answer. Reload the page, "
                                   "then try again.")
            return
        self.screen.toast(f"Removed {label}'s files; {freed} is free again.")
