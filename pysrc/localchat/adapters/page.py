"""The page: its regions, wired together, and what belongs to the whole page.

Each region owns its part of index.html, turns its DOM events into actions and renders
its part of the state (views give the HTML):

- `Sidebar` (sidebar.py): the conversation list, rename, export/import, the drawer;
- `Thread` (thread.py): the messages, their actions, streaming, Jump to latest;
- `Composer` (composer.py): the message box, Send/Stop and the lines under it;
- `Notices` (notices.py): standing notices, alerts, toasts;
- `Dialogs` (dialogs.py): the confirmation dialog and the shortcuts list;
- the model selector and Download Manager are `ModelPanel` (model_panel.py), and the
  popovers' showing and hiding is `Popovers` (popover.py).

The page itself handles the app-wide keyboard shortcuts and Esc, the Performance panel,
the screen-reader announcements, and the ready mark. The composition root (app.py)
talks to the page only, never to a region.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import js  # type: ignore[import-not-found]

from ..core.errors import UserMessage
from ..core.state import AppState
from ..ui import views
from .composer import Composer
from .dialogs import Dialogs
from .dom import Announcer, Listeners, save_file
from .notices import Notices
from .popover import Popover, Popovers
from .sidebar import Sidebar
from .thread import Thread

__all__ = ["Actions", "Page"]


class Actions(Protocol):
    """What the page asks the app to do (the composition root implements it)."""

    def check(self, text: str) -> UserMessage | None: ...
    def send(self, text: str) -> None: ...
    def stop(self) -> None: ...
    def regenerate(self, message_id: str | None = None) -> None: ...
    def edit_and_resend(self, message_id: str, text: str) -> None: ...
    def continue_reply(self) -> None: ...
    def keep_as_new_chat(self) -> None: ...
    def discard_unsent(self) -> None: ...
    def rename(self, conversation_id: str, title: str) -> None: ...
    def delete(self, conversation_id: str) -> None: ...
    def export(self, conversation_id: str | None, markdown: bool = False) -> None: ...
    def import_text(self, name: str, text: str) -> None: ...


class Page:
    def __init__(self, document: Any, actions: Actions,
                 popovers: Popovers | None = None) -> None:
        self.doc = document
        self.actions = actions
        self._listeners = listeners = Listeners()
        self.announce = Announcer(document.getElementById("announcer"))
        self.dialogs = Dialogs(document, listeners)
        self.composer = Composer(document, actions, listeners, on_send=self._sent)
        self.thread = Thread(document, actions, listeners, announce=self.announce,
                             focus_composer=self.focus_composer)
        self.notices = Notices(document, keep_thread_end=self.thread.keep_end,
                               modal_open=lambda: self.dialogs.confirm_open)
        self.sidebar = Sidebar(document, actions, listeners, announce=self.announce,
                               focus_composer=self.focus_composer,
                               show_shortcuts=self.dialogs.show_shortcuts,
                               show_alert=self.notices.show_alert)
        self.popovers = popovers or Popovers(document)
        get = document.getElementById
        self.perf_button = get("perf-button")
        self.perf_body = get("perf-body")
        self.perf = self.popovers.add(Popover(get("perf-panel"), self.perf_button,
                                              group="header"))
        self._state: AppState | None = None
        listeners.listen(self.perf_button, "click", lambda *_: self.toggle_perf())
        listeners.listen(document, "keydown", self._document_keydown)

    # --- what the app asks of the page ---------------------------------------------

    def focus_composer(self) -> None:
        self.composer.focus()

    def go_to(self, route: str) -> None:
        """Open a route (`#/chat`, a conversation's): the app follows `hashchange`."""
        js.location.hash = route

    def send_current(self) -> None:
        self.composer.send_current()

    def show_composer_error(self, text: str) -> None:
        self.composer.show_error(text)

    def stream(self, message_id: str, text: str) -> None:
        self.thread.stream(message_id, text)

    def set_markdown(self, render: views.Markdown) -> None:
        self.thread.set_markdown(render)

    def keep_thread_end(self) -> None:
        self.thread.keep_end()

    def toast(self, text: str, action: str | None = None,
              on_action: Callable[[], None] | None = None,
              on_expire: Callable[[], None] | None = None, ms: int = 6000) -> None:
        self.notices.toast(text, action, on_action, on_expire, ms)

    def show_alert(self, title: str, detail: str) -> None:
        self.notices.show_alert(title, detail)

    async def confirm(self, title: str, body: str, confirm_label: str,
                      cancel_label: str = "Cancel", destructive: bool = True) -> bool:
        return await self.dialogs.confirm(title, body, confirm_label, cancel_label,
                                          destructive)

    def download(self, filename: str, text: str, mime: str = "application/json") -> None:
        save_file(self.doc, filename, text, mime)

    def _sent(self) -> None:
        self.thread.follow = True

    # --- app-wide keys ---------------------------------------------------------------

    def _document_keydown(self, event: Any, *_: Any) -> None:
        if self._shortcut(event):
            event.preventDefault()
            return
        if event.key == "Escape":
            if self.sidebar.drawer_open:
                self.sidebar.close_drawer()
            elif self._escape_stops(event):
                event.preventDefault()
                self.actions.stop()

    def _shortcut(self, event: Any) -> bool:
        """Run the app-wide shortcut the key press is, if it is one (True: handled; the
        list the user sees is views.SHORTCUTS)."""
        if event.defaultPrevented or event.isComposing or event.altKey:
            return False
        key = str(event.key)
        command = bool(event.ctrlKey or event.metaKey)
        if command and event.shiftKey and key.lower() == "o":
            self.new_chat()
        elif command and event.shiftKey and key.lower() == "s":
            self.sidebar.toggle()
        elif key == "Escape" and event.shiftKey and not command:
            self.focus_composer()
        elif key == "?" and not command and not self._typing(event.target):
            self.dialogs.show_shortcuts()
        else:
            return False
        return True

    @staticmethod
    def _typing(target: Any) -> bool:
        """Focus is in a text field (where `?` is text, not a shortcut)."""
        return bool(target and target.closest and target.closest(
            "input, textarea, select, [contenteditable]"))

    def _escape_stops(self, event: Any) -> bool:
        """Esc stops a streaming reply, unless it is closing what has focus: a dialog, a
        popover, the model list, or a title being renamed. (A popover that opened by
        itself, like the Download Manager on a first send, doesn't hold Esc back.)"""
        if self._state is None or not self._state.replying or event.defaultPrevented:
            return False
        return not (event.target.closest and event.target.closest(
            "dialog, [role=dialog], [role=listbox], .popover, .rename-input"))

    def new_chat(self) -> None:
        self.sidebar.toggle_drawer(False)
        if str(js.location.hash) != "#/chat":
            js.location.hash = "#/chat"
        self.focus_composer()

    # --- performance panel -------------------------------------------------------------

    def toggle_perf(self, show: bool | None = None) -> None:
        visible = not self.perf.is_open if show is None else show
        if visible:
            self.popovers.open(self.perf)
        else:
            self.popovers.close(self.perf)

    # --- rendering ---------------------------------------------------------------------

    def render(self, old: AppState | None, new: AppState) -> None:
        self._state = new
        self.sidebar.render(old, new)
        self.thread.render(old, new)
        self.notices.render(old, new)
        self.composer.render(old, new)
        if old is None or old.last_usage != new.last_usage:
            self.perf_body.innerHTML = views.perf_html(new.last_usage)
        if old is not None and old.replying and not new.replying:
            self._announce_reply(new)

    def _announce_reply(self, state: AppState) -> None:
        last = state.messages[-1] if state.messages else None
        if last is None:
            return
        status = last.status.value
        if status == "error":
            self.announce("The reply failed. " + (last.error or ""))
        elif status == "stopped":
            self.announce("Reply stopped.")
        else:
            self.announce("Reply finished: " + last.content[:300])

    def mark_ready(self) -> None:
        self.doc.body.dataset.ready = "true"
        self.doc.getElementById("downloads-button").disabled = False
        self.doc.dispatchEvent(js.CustomEvent.new("localchat:ready"))
