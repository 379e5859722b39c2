"""The page: puts the views' HTML into the DOM and turns DOM events into actions.

Owns the region roots of index.html (sidebar list, thread, notices, composer status),
one delegated listener per region root, and the streaming path: streamed text is
appended to one node, never by re-rendering the thread. The composer's textarea is
never re-rendered, so focus, selection and IME state survive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]

from ..core.gpu import explain_gpu
from ..core.state import AppState
from ..ui import views
from .ffi import create_proxy

__all__ = ["Page"]


class Page:
    def __init__(self, document: Any, on_send: Callable[[str], None],
                 on_stop: Callable[[], None]) -> None:
        self.doc = document
        self.sidebar = document.getElementById("conversation-list")
        self.thread = document.getElementById("thread")
        self.status = document.getElementById("composer-status")
        self.engine_label = document.getElementById("engine-label")
        self.form = document.getElementById("composer")
        self.textarea = document.getElementById("message")
        self.send_button = document.getElementById("send-button")
        self.stop_button = document.getElementById("stop-button")
        notice_area = document.getElementById("notice-area")
        self.notices = document.createElement("div")
        self.notices.className = "app-notices"
        notice_area.prepend(self.notices)
        self._on_send = on_send
        self._on_stop = on_stop
        self._stream_node: Any = None
        self._stream_id: str | None = None
        self._proxies = [
            self._listen(self.form, "submit", self._submit),
            self._listen(self.textarea, "keydown", self._keydown),
            self._listen(self.stop_button, "click", lambda *_: self._on_stop()),
        ]

    def _listen(self, node: Any, event: str, handler: Callable[..., None]) -> Any:
        proxy = create_proxy(handler)
        node.addEventListener(event, proxy)
        return proxy

    # --- events ------------------------------------------------------------------

    def _submit(self, event: Any, *_: Any) -> None:
        event.preventDefault()
        self.send_current()

    def send_current(self) -> None:
        text = str(self.textarea.value)
        if not text.strip():
            self.textarea.focus()
            return
        self.textarea.value = ""
        self._on_send(text)

    def _keydown(self, event: Any, *_: Any) -> None:
        if event.key == "Enter" and not event.shiftKey and not event.isComposing:
            event.preventDefault()
            self.form.requestSubmit()

    # --- rendering ---------------------------------------------------------------

    def render(self, old: AppState | None, new: AppState) -> None:
        first = old is None
        if first or (old.conversations, old.active_id, old.conversations_loaded) != (
                new.conversations, new.active_id, new.conversations_loaded):
            self.sidebar.innerHTML = views.conversation_items(
                new.conversations, new.active_id, new.conversations_loaded)
        if first or (old.messages, old.not_found_id) != (new.messages, new.not_found_id):
            self._render_thread(old, new)
        if first or (old.engine_choice, old.gpu, old.storage_error) != (
                new.engine_choice, new.gpu, new.storage_error):
            problem = explain_gpu(new.gpu) if new.gpu is not None else None
            self.notices.innerHTML = views.notices_html(new, problem)
            label = views.engine_label(new.engine_choice)
            self.engine_label.textContent = label
            self.engine_label.hidden = not label
        if first or (old.engine, old.replying) != (new.engine, new.replying):
            self.status.textContent = views.composer_status(new.engine, new.engine_choice,
                                                            new.replying)
            self.stop_button.hidden = not new.replying
            self.send_button.setAttribute("aria-disabled", "true" if new.replying else "false")

    def _render_thread(self, old: AppState | None, new: AppState) -> None:
        self._stream_node = None
        self._stream_id = None
        was_at_bottom = self._at_bottom()
        self.thread.innerHTML = views.thread_html(new)
        if was_at_bottom or (old is not None and len(new.messages) > len(old.messages)):
            self.thread.scrollTop = self.thread.scrollHeight

    def _at_bottom(self) -> bool:
        t = self.thread
        return bool(t.scrollHeight - t.scrollTop - t.clientHeight < 48)

    def stream(self, message_id: str, text: str) -> None:
        """Append streamed text to the reply's bubble (one node, no re-render)."""
        if self._stream_id != message_id or self._stream_node is None:
            self._stream_node = self.doc.querySelector(
                f'[data-message-id="{message_id}"] .bubble')
            self._stream_id = message_id
        if self._stream_node is None:
            return
        follow = self._at_bottom()
        self._stream_node.append(text)
        if follow:
            self.thread.scrollTop = self.thread.scrollHeight

    def mark_ready(self) -> None:
        self.doc.body.dataset.ready = "true"
        self.doc.getElementById("downloads-button").disabled = False
        self.doc.dispatchEvent(js.CustomEvent.new("localchat:ready"))
