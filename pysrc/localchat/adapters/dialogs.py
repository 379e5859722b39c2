"""The page's modal dialogs: the one confirmation dialog (an alertdialog whose buttons
say what they do) and the list of keyboard shortcuts. Each gives focus back to what had
it when it closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import js  # type: ignore[import-not-found]

from ..ui import views
from .dom import Listeners, action_of

__all__ = ["Dialogs"]


class Dialogs:
    def __init__(self, document: Any, listeners: Listeners) -> None:
        get = document.getElementById
        self.doc = document
        self.confirm_dialog = get("confirm-dialog")
        self.shortcuts_dialog = get("shortcuts-dialog")
        self._future: asyncio.Future[bool] | None = None
        self._shortcuts_return: Any = None
        listen = listeners.listen
        listen(self.confirm_dialog, "click", self._confirm_click)
        listen(self.confirm_dialog, "close", lambda *_: self._confirm_closed())
        listen(self.shortcuts_dialog, "click", self._shortcuts_click)
        listen(self.shortcuts_dialog, "close", lambda *_: self._shortcuts_closed())

    @property
    def confirm_open(self) -> bool:
        return bool(self.confirm_dialog.open)

    async def confirm(self, title: str, body: str, confirm_label: str,
                      cancel_label: str = "Cancel", destructive: bool = True) -> bool:
        """Ask in the app's one confirmation dialog. True: confirmed. A choice that loses
        nothing is not styled as dangerous (`destructive=False`)."""
        if self._future is not None and not self._future.done():
            self._future.set_result(False)
        returning = self.doc.activeElement
        self.doc.getElementById("confirm-title").textContent = title
        self.doc.getElementById("confirm-body").textContent = body
        dialog = self.confirm_dialog
        button = dialog.querySelector('[data-choice="confirm"]')
        button.textContent = confirm_label
        button.className = "danger-button" if destructive else "primary-button"
        dialog.querySelector('[data-choice="cancel"]').textContent = cancel_label
        future: asyncio.Future[bool] = asyncio.get_event_loop().create_future()
        self._future = future
        dialog.showModal()
        dialog.querySelector('[data-choice="cancel"]').focus()
        try:
            return await future
        finally:
            if dialog.open:
                dialog.close()
            if returning and returning.isConnected:
                returning.focus()

    def _confirm_click(self, event: Any, *_: Any) -> None:
        choice = event.target.closest("[data-choice]")
        if not choice:
            return
        future = self._future
        if future is not None and not future.done():
            future.set_result(str(choice.dataset.choice) == "confirm")
        self.confirm_dialog.close()

    def _confirm_closed(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(False)  # Escape or closed some other way: not confirmed

    def show_shortcuts(self) -> None:
        if self.shortcuts_dialog.open:
            return
        self._shortcuts_return = self.doc.activeElement
        mac = "Mac" in str(js.navigator.platform or "")
        self.doc.getElementById("shortcuts-list").innerHTML = views.shortcuts_html(mac)
        self.shortcuts_dialog.showModal()
        self.shortcuts_dialog.querySelector('[data-action="close-shortcuts"]').focus()

    def _shortcuts_click(self, event: Any, *_: Any) -> None:
        action, _node = action_of(event)
        if action == "close-shortcuts":
            self.shortcuts_dialog.close()

    def _shortcuts_closed(self) -> None:
        returning, self._shortcuts_return = self._shortcuts_return, None
        if returning and returning.isConnected and returning != self.doc.body:
            returning.focus()
