"""The sidebar region: the conversation list (rename in place, delete, export, import),
its footer, and the drawer it becomes on a phone.

Above `SIDEBAR_ALL` conversations only a window of the list is rendered, moved (at most
once per frame) as the list scrolls near its edges. A re-render keeps keyboard focus on
the same item's same control, and a title being renamed survives it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from ..core.state import AppState
from ..core.transfer import MAX_IMPORT_BYTES
from ..ui import views
from .dom import Listeners, action_of, with_attribute
from .ffi import create_proxy

if TYPE_CHECKING:
    from .page import Actions

__all__ = ["Sidebar"]

SIDEBAR_ALL = 150
"""Up to this many conversations the sidebar renders them all; above, only a window."""
SIDEBAR_OVERSCAN = 25
"""Items rendered beyond each edge of the visible part of a windowed sidebar."""


class Sidebar:
    def __init__(self, document: Any, actions: Actions, listeners: Listeners, *,
                 announce: Callable[[str], None], focus_composer: Callable[[], None],
                 show_shortcuts: Callable[[], None],
                 show_alert: Callable[[str, str], None]) -> None:
        get = document.getElementById
        self.doc = document
        self.actions = actions
        self.node = get("sidebar")
        self.list = get("conversation-list")
        self.toggle_button = document.querySelector(".sidebar-toggle")
        self.import_input = get("import-file")
        self._announce = announce
        self._focus_composer = focus_composer
        self._show_shortcuts = show_shortcuts
        self._show_alert = show_alert
        self._state: AppState | None = None
        self._window = (0, 0)
        self._frame = False
        self._frame_proxy = create_proxy(self._frame_check)
        self._rerendering = False
        listen = listeners.listen
        listen(self.node, "click", self._click)
        listen(self.list, "keydown", self._keydown)
        listen(self.list, "focusout", self._focusout)
        listen(self.list, "scroll", lambda *_: self._scrolled())
        listen(self.toggle_button, "click", lambda *_: self.toggle_drawer())
        listen(get("chat"), "click", self._chat_click)
        listen(self.import_input, "change", self._import_chosen)

    # --- actions -----------------------------------------------------------------

    def _item_id(self, node: Any) -> str | None:
        item = node.closest("li[data-id]")
        return str(item.dataset.id) if item else None

    def _click(self, event: Any, *_: Any) -> None:
        action, node = action_of(event)
        if action == "rename":
            cid = self._item_id(node)
            if cid:
                self.start_rename(cid)
        elif action == "delete":
            cid = self._item_id(node)
            if cid:
                self.actions.delete(cid)
        elif action == "export":
            self.actions.export(self._item_id(node))
        elif action == "export-all":
            self.actions.export(None)
        elif action == "export-markdown":
            self.actions.export(self._item_id(node), markdown=True)
        elif action == "export-all-markdown":
            self.actions.export(None, markdown=True)
        elif action == "import":
            self.import_input.click()
        elif action == "shortcuts":
            self._show_shortcuts()
        elif event.target.closest("a"):
            self.toggle_drawer(False)

    def _import_chosen(self, *_: Any) -> None:
        files = self.import_input.files
        if not files or files.length == 0:
            return
        file = files.item(0)
        name = str(file.name)
        self.import_input.value = ""

        if int(file.size) > MAX_IMPORT_BYTES:  # refused before its text is read
            self._show_alert(f"“{name}” can't be imported.",
                             f"This file is too large to import (over "
                             f"{MAX_IMPORT_BYTES // (1024 * 1024)} MB). Nothing was changed.")
            return

        def read(text: Any, *_: Any) -> None:
            self.actions.import_text(name, str(text))

        def failed(*_: Any) -> None:  # the browser's error name means nothing to the reader
            self._show_alert("The file could not be read.",
                             "The browser couldn't read it (it may have been moved, or be "
                             "unreadable). Nothing was changed. Choose it again.")

        file.text().then(create_proxy(read), create_proxy(failed))

    # --- rename in place ---------------------------------------------------------

    def _item(self, conversation_id: str) -> Any:
        return with_attribute(self.list.children, "data-id", conversation_id)

    def _link(self, conversation_id: str) -> Any:
        item = self._item(conversation_id)
        return item.querySelector("a") if item else None

    def start_rename(self, conversation_id: str) -> None:
        item = self._item(conversation_id)
        if not item:
            return
        link = item.querySelector("a")
        title = str(link.textContent)
        field = self.doc.createElement("input")
        field.className = "rename-input"
        field.value = title
        field.setAttribute("aria-label", "Conversation title")
        field.setAttribute("data-original", title)
        link.replaceWith(field)
        field.focus()
        field.select()

    def _finish_rename(self, field: Any, commit: bool) -> None:
        if field.getAttribute("data-done") == "1":
            return
        field.setAttribute("data-done", "1")
        cid = self._item_id(field)
        value = str(field.value)
        if self._state is not None:
            self._render(self._state)
        if cid is not None:
            link = self._link(cid)
            if link:
                link.focus()
        original = str(field.getAttribute("data-original"))
        if commit and cid is not None and value.strip() and value != original:
            self.actions.rename(cid, value)

    def _keydown(self, event: Any, *_: Any) -> None:
        target = event.target
        if not target.classList.contains("rename-input"):
            if event.key == "F2" and target.closest("li[data-id]"):
                event.preventDefault()
                cid = self._item_id(target)
                if cid:
                    self.start_rename(cid)
            return
        if event.key == "Enter":
            event.preventDefault()
            self._finish_rename(target, True)
        elif event.key == "Escape":
            event.preventDefault()
            event.stopPropagation()
            self._finish_rename(target, False)

    def _focusout(self, event: Any, *_: Any) -> None:
        if self._rerendering:
            return
        if event.target.classList.contains("rename-input"):
            self._finish_rename(event.target, True)

    # --- the window of a long list -------------------------------------------------

    def _wanted_window(self, total: int) -> tuple[int, int]:
        if total <= SIDEBAR_ALL:
            return 0, total
        item = views.SIDEBAR_ITEM_PX
        top = int(self.list.scrollTop) // item
        visible = int(self.list.clientHeight or 800) // item + 1
        return max(0, top - SIDEBAR_OVERSCAN), min(total, top + visible + SIDEBAR_OVERSCAN)

    def _scrolled(self) -> None:
        """Re-render the window (at most once per frame) when scrolling nears its edges."""
        if self._frame or self._state is None:
            return
        self._frame = True
        js.requestAnimationFrame(self._frame_proxy)

    def _frame_check(self, *_: Any) -> None:
        self._frame = False
        state = self._state
        if state is None:
            return
        start, end = self._window
        want_start, want_end = self._wanted_window(len(state.conversations))
        margin = SIDEBAR_OVERSCAN // 2
        if (want_start < start or want_end > end or want_start > start + margin * 3
                or want_end < end - margin * 3):
            self._render(state)

    # --- drawer (phone) and column (wide screen) -----------------------------------

    @property
    def drawer_open(self) -> bool:
        return bool(self.doc.body.classList.contains("drawer-open"))

    def toggle_drawer(self, open_: bool | None = None) -> None:
        body = self.doc.body
        show = (not self.drawer_open) if open_ is None else open_
        body.classList.toggle("drawer-open", show)
        self.toggle_button.setAttribute("aria-expanded", "true" if show else "false")
        if show:
            first = self.node.querySelector("a")
            if first:
                first.focus()

    def close_drawer(self) -> None:
        """Close the drawer and give focus back to the button that opens it."""
        self.toggle_drawer(False)
        self.toggle_button.focus()

    def toggle(self) -> None:
        """Show or hide the conversations: the drawer on a phone, the column on a wide
        screen."""
        if js.matchMedia("(max-width: 640px)").matches:
            self.toggle_drawer()
            return
        hidden = bool(self.doc.body.classList.toggle("sidebar-collapsed"))
        if hidden and self.node.contains(self.doc.activeElement):
            self._focus_composer()
        self._announce("Conversations hidden." if hidden else "Conversations shown.")

    def _chat_click(self, event: Any, *_: Any) -> None:
        """A tap on the dimmed chat beside the open drawer closes the drawer (the dimming
        is the chat's own ::after, so such a tap targets the chat element itself)."""
        if event.target.id == "chat" and self.drawer_open:
            self.close_drawer()

    # --- rendering -----------------------------------------------------------------

    def render(self, old: AppState | None, new: AppState) -> None:
        self._state = new
        if old is None or self._changed(old, new):
            self._render(new)

    def _render(self, new: AppState) -> None:
        focused = self.doc.activeElement
        keep = None
        if focused and self.list.contains(focused) and \
                not focused.classList.contains("rename-input"):
            item = focused.closest("li[data-id]")
            action = focused.getAttribute("data-action")
            keep = (str(item.dataset.id), action) if item else None
        # A title being edited survives a re-render (another tab's change can cause one).
        editing = self.list.querySelector(".rename-input:not([data-done])")
        editing_id = self._item_id(editing) if editing else None
        start, end = self._wanted_window(len(new.conversations))
        self._window = (start, end)
        self._rerendering = True  # removing a focused field fires focusout: not a commit
        try:
            self.list.innerHTML = views.conversation_items(
                new.conversations, new.active_id, new.conversations_loaded, start, end)
        finally:
            self._rerendering = False
        if editing is not None and editing_id is not None:
            link = self._link(editing_id)
            if link:
                link.replaceWith(editing)
                editing.focus()
        if keep is not None:
            cid, action = keep
            item = self._item(cid)
            again = None
            if item is not None:
                again = item.querySelector("a") if not action else with_attribute(
                    item.querySelectorAll("[data-action]"), "data-action", action)
            if again:
                again.focus()

    @staticmethod
    def _changed(old: AppState, new: AppState) -> bool:
        """Only what the sidebar shows: order, titles, the current one (not models)."""
        if (old.active_id, old.conversations_loaded) != (new.active_id,
                                                         new.conversations_loaded):
            return True
        if old.conversations is new.conversations:
            return False
        if len(old.conversations) != len(new.conversations):
            return True
        return any(a.id != b.id or a.title != b.title
                   for a, b in zip(old.conversations, new.conversations, strict=True))
