"""The composer region: the message box, Send and Stop, and the lines under it (who
answers, a problem with the message, how much of the chat the model still sees).

The textarea is never re-rendered, so focus, selection and IME state survive every
state change; only the status lines and the buttons' states are written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.state import AppState
from ..ui import views
from .dom import Listeners

if TYPE_CHECKING:
    from .page import Actions

__all__ = ["Composer"]


class Composer:
    def __init__(self, document: Any, actions: Actions, listeners: Listeners,
                 on_send: Callable[[], None]) -> None:
        get = document.getElementById
        self.actions = actions
        self.form = get("composer")
        self.textarea = get("message")
        self.send_button = get("send-button")
        self.stop_button = get("stop-button")
        self.status = get("composer-status")
        self.error = get("composer-error")
        self.context_note = get("context-note")
        self._on_send = on_send
        """Called as a message goes (the thread follows its end again)."""
        self._state: AppState | None = None
        listen = listeners.listen
        listen(self.form, "submit", self._submit)
        listen(self.textarea, "keydown", self._keydown)
        listen(self.textarea, "input", lambda *_: self._clear_error())
        listen(self.stop_button, "click", lambda *_: self.actions.stop())

    def focus(self) -> None:
        self.textarea.focus()

    def _submit(self, event: Any, *_: Any) -> None:
        event.preventDefault()
        self.send_current()

    def send_current(self) -> None:
        text = str(self.textarea.value)
        if not text.strip():
            self.textarea.focus()
            return
        problem = self.actions.check(text)
        if problem is not None:
            self.show_error(f"{problem.title} {problem.detail} {problem.action}")
            return
        if self._state is not None and self._state.replying:
            self.show_error("A reply is still being written. Stop it or wait, "
                            "then send; your message is still in the box.")
            return
        self._clear_error()
        self.textarea.value = ""
        self._on_send()
        self.actions.send(text)

    def show_error(self, text: str) -> None:
        self.error.textContent = text
        self.error.hidden = False

    def _clear_error(self) -> None:
        if not self.error.hidden:
            self.error.hidden = True
            self.error.textContent = ""

    def _keydown(self, event: Any, *_: Any) -> None:
        if event.key == "Enter" and not event.shiftKey and not event.isComposing:
            event.preventDefault()
            self.form.requestSubmit()

    def render(self, old: AppState | None, new: AppState) -> None:
        self._state = new
        # The last message too: the reply is credited to the model that really answers.
        if old is None or (old.engine, old.replying, old.downloads, old.requested_model_key,
                           old.messages[-1:]) != (new.engine, new.replying, new.downloads,
                                                  new.requested_model_key, new.messages[-1:]):
            status = views.composer_status(new)
            if str(self.status.textContent) != status:
                self.status.textContent = status
            self.stop_button.hidden = not new.replying
            self.send_button.setAttribute("aria-disabled", "true" if new.replying else "false")
        if old is None or (old.context_dropped, old.context_shortened) != (
                new.context_dropped, new.context_shortened):
            note = views.context_note(new.context_dropped, new.context_shortened)
            self.context_note.textContent = note
            self.context_note.hidden = not note
