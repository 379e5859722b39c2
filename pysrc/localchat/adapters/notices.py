"""The notices region: the standing notices above the thread (no WebGPU, storage
problems, the simulated engine), dismissible alerts, and toasts.

Toasts sit in the chat column's layout (a grid row), so they never cover a message or
the composer; the thread keeps its end in view as they come and go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.gpu import explain_gpu
from ..core.state import AppState
from ..ui import views
from .ffi import create_proxy, later

__all__ = ["Notices"]


class Notices:
    def __init__(self, document: Any, *, keep_thread_end: Callable[[], None],
                 modal_open: Callable[[], bool]) -> None:
        get = document.getElementById
        self.doc = document
        self.toasts = get("toasts")
        self.engine_label = get("engine-label")
        self.standing = document.createElement("div")
        self.standing.className = "app-notices"
        get("notice-area").prepend(self.standing)
        self._keep_thread_end = keep_thread_end
        self._modal_open = modal_open

    def render(self, old: AppState | None, new: AppState) -> None:
        if old is None or (old.engine_choice, old.gpu, old.storage_error) != (
                new.engine_choice, new.gpu, new.storage_error):
            problem = explain_gpu(new.gpu) if new.gpu is not None else None
            self.standing.innerHTML = views.notices_html(new, problem)
            label = views.engine_label(new.engine_choice)
            self.engine_label.textContent = label
            self.engine_label.hidden = not label

    def show_alert(self, title: str, detail: str) -> None:
        """A dismissible error notice (import problems and the like)."""
        box = self.doc.createElement("div")
        box.className = "notice notice-error"
        box.setAttribute("role", "alert")
        strong = self.doc.createElement("strong")
        strong.textContent = title
        para = self.doc.createElement("p")
        para.textContent = detail
        close = self.doc.createElement("button")
        close.type = "button"
        close.className = "link-button"
        close.textContent = "Dismiss"
        close.addEventListener("click", create_proxy(lambda *_: box.remove()))
        box.append(strong, para, close)
        self.standing.append(box)

    def toast(self, text: str, action: str | None = None,
              on_action: Callable[[], None] | None = None,
              on_expire: Callable[[], None] | None = None, ms: int = 6000) -> None:
        """A short notice at the top of the chat column, with an optional action button
        ("Undo"). It doesn't time out while a dialog is open (it can't be read under the
        backdrop) or while the pointer or focus is on it."""
        node = self.doc.createElement("div")
        node.className = "toast"
        words = self.doc.createElement("span")
        words.textContent = text
        node.append(words)
        done = False
        cleanups: list[Callable[[], None]] = []

        def finish(acted: bool) -> None:
            nonlocal done
            if done:
                return
            done = True
            node.remove()
            for cleanup in cleanups:
                cleanup()
            self._keep_thread_end()
            callback = on_action if acted else on_expire
            if callback is not None:
                callback()

        if action is not None:
            button = self.doc.createElement("button")
            button.type = "button"
            button.className = "toast-action"
            button.textContent = action
            clicked = create_proxy(lambda *_: finish(True))
            button.addEventListener("click", clicked)
            node.append(button)
            cleanups.append(lambda: later(0, clicked.destroy))
        self.toasts.append(node)
        self._keep_thread_end()  # the thread got shorter: keep its end in view

        def expire() -> None:
            if done:
                return
            if self._modal_open() or node.matches(":hover, :focus-within"):
                later(1000, expire)
                return
            finish(False)

        later(ms, expire)
