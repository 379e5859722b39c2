"""The page: puts the views' HTML into the DOM and turns DOM events into actions.

Owns the region roots of index.html (sidebar list, thread, notices, composer status,
performance panel, confirmation dialog, live regions), one delegated listener per
region root, and the streaming path: streamed text is appended to one node, never by
re-rendering the thread. The thread is patched per message (only changed or new
messages are rendered; Markdown is rendered once per finished message; a long one is
shown as plain text first and formatted in slices, one task each, see ui/heavy.py). The
composer's textarea is never re-rendered, so focus, selection and IME state survive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import js  # type: ignore[import-not-found]

from ..core.conversation import Message, Role
from ..core.errors import UserMessage
from ..core.gpu import explain_gpu
from ..core.state import AppState
from ..core.transfer import MAX_IMPORT_BYTES
from ..ui import heavy, views
from .ffi import create_proxy, later
from .packages import browser_turn
from .popover import Popover, Popovers

__all__ = ["Actions", "Page"]

ANCHOR = '<div class="scroll-anchor" aria-hidden="true"></div>'
"""Always the thread's last child (see `stream`)."""

SIDEBAR_ALL = 150
"""Up to this many conversations the sidebar renders them all; above, only a window."""
SIDEBAR_OVERSCAN = 25
"""Items rendered beyond each edge of the visible part of a windowed sidebar."""


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
        get = document.getElementById
        self.sidebar = get("sidebar")
        self.sidebar_list = get("conversation-list")
        self.sidebar_toggle = document.querySelector(".sidebar-toggle")
        self.chat = get("chat")
        self.thread = get("thread")
        self.jump_button = get("jump-latest")
        self.status = get("composer-status")
        self.composer_error = get("composer-error")
        self.context_note = get("context-note")
        self.engine_label = get("engine-label")
        self.form = get("composer")
        self.textarea = get("message")
        self.send_button = get("send-button")
        self.stop_button = get("stop-button")
        self.perf_button = get("perf-button")
        self.perf_panel = get("perf-panel")
        self.perf_body = get("perf-body")
        self.popovers = popovers or Popovers(document)
        self.perf = self.popovers.add(Popover(self.perf_panel, self.perf_button,
                                              group="header"))
        self.dialog = get("confirm-dialog")
        self.shortcuts_dialog = get("shortcuts-dialog")
        self._shortcuts_return: Any = None
        self.announcer = get("announcer")
        self.toasts = get("toasts")
        self.import_input = get("import-file")
        notice_area = get("notice-area")
        self.notices = document.createElement("div")
        self.notices.className = "app-notices"
        notice_area.prepend(self.notices)

        self.markdown: views.Markdown | None = None
        self._state: AppState | None = None
        self._stream_node: Any = None
        self._stream_id: str | None = None
        self._rendered: dict[str, tuple[Message, bool, str]] = {}
        self._generation = 0
        """Bumped whenever the thread is rendered anew: pending heavy renders then stop."""
        self._heavy_tasks: set[asyncio.Task[None]] = set()
        self._window = views.THREAD_WINDOW
        self._sidebar_window = (0, 0)
        self._sidebar_frame = False
        self._sidebar_frame_proxy = create_proxy(self._sidebar_frame_check)
        self._dialog_future: asyncio.Future[bool] | None = None
        self._proxies: list[Any] = []
        listen = self._listen
        listen(self.form, "submit", self._submit)
        listen(self.textarea, "keydown", self._keydown)
        listen(self.textarea, "input", lambda *_: self._clear_composer_error())
        listen(self.stop_button, "click", lambda *_: self.actions.stop())
        listen(self.sidebar, "click", self._sidebar_click)
        listen(self.sidebar_list, "keydown", self._sidebar_keydown)
        listen(self.sidebar_list, "focusout", self._sidebar_focusout)
        listen(self.thread, "click", self._thread_click)
        listen(self.thread, "submit", self._edit_submit)
        listen(self.thread, "keydown", self._edit_keydown)
        listen(self.thread, "scroll", lambda *_: self._note_scroll())
        listen(self.jump_button, "click", lambda *_: self.jump_to_latest())
        listen(self.perf_button, "click", lambda *_: self.toggle_perf())
        listen(self.sidebar_toggle, "click", lambda *_: self.toggle_drawer())
        listen(self.chat, "click", self._chat_click)
        listen(self.import_input, "change", self._import_chosen)
        listen(self.dialog, "click", self._dialog_click)
        listen(self.dialog, "close", lambda *_: self._dialog_closed())
        listen(document, "keydown", self._document_keydown)
        listen(self.shortcuts_dialog, "click", self._shortcuts_click)
        listen(self.shortcuts_dialog, "close", lambda *_: self._shortcuts_closed())
        listen(self.sidebar_list, "scroll", lambda *_: self._sidebar_scrolled())
        self._follow = True
        self._rerendering = False

    def _listen(self, node: Any, event: str, handler: Callable[..., None]) -> None:
        proxy = create_proxy(handler)
        node.addEventListener(event, proxy)
        self._proxies.append(proxy)

    # --- composer ----------------------------------------------------------------

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
            self.composer_error.textContent = f"{problem.title} {problem.detail} {problem.action}"
            self.composer_error.hidden = False
            return
        if self._state is not None and self._state.replying:
            self.show_composer_error("A reply is still being written. Stop it or wait, "
                                     "then send; your message is still in the box.")
            return
        self._clear_composer_error()
        self.textarea.value = ""
        self._follow = True
        self.actions.send(text)

    def show_composer_error(self, text: str) -> None:
        self.composer_error.textContent = text
        self.composer_error.hidden = False

    def _clear_composer_error(self) -> None:
        if not self.composer_error.hidden:
            self.composer_error.hidden = True
            self.composer_error.textContent = ""

    def _keydown(self, event: Any, *_: Any) -> None:
        if event.key == "Enter" and not event.shiftKey and not event.isComposing:
            event.preventDefault()
            self.form.requestSubmit()

    def _document_keydown(self, event: Any, *_: Any) -> None:
        if self._shortcut(event):
            event.preventDefault()
            return
        if event.key == "Escape":
            if self.doc.body.classList.contains("drawer-open"):
                self.toggle_drawer(False)
                self.sidebar_toggle.focus()
            elif self._escape_stops(event):
                event.preventDefault()
                self.actions.stop()

    # --- keyboard shortcuts (listed by views.SHORTCUTS) --------------------------

    def _shortcut(self, event: Any) -> bool:
        """Run the app-wide shortcut the key press is, if it is one (True: handled)."""
        if event.defaultPrevented or event.isComposing or event.altKey:
            return False
        key = str(event.key)
        command = bool(event.ctrlKey or event.metaKey)
        if command and event.shiftKey and key.lower() == "o":
            self.new_chat()
        elif command and event.shiftKey and key.lower() == "s":
            self.toggle_sidebar()
        elif key == "Escape" and event.shiftKey and not command:
            self.textarea.focus()
        elif key == "?" and not command and not self._typing(event.target):
            self.show_shortcuts()
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
        self.toggle_drawer(False)
        if str(js.location.hash) != "#/chat":
            js.location.hash = "#/chat"
        self.textarea.focus()

    def toggle_sidebar(self) -> None:
        """Show or hide the conversations: the drawer on a phone, the column on a wide
        screen."""
        if js.matchMedia("(max-width: 640px)").matches:
            self.toggle_drawer()
            return
        hidden = bool(self.doc.body.classList.toggle("sidebar-collapsed"))
        if hidden and self.sidebar.contains(self.doc.activeElement):
            self.textarea.focus()
        self.announce("Conversations hidden." if hidden else "Conversations shown.")

    def show_shortcuts(self) -> None:
        if self.shortcuts_dialog.open:
            return
        self._shortcuts_return = self.doc.activeElement
        mac = "Mac" in str(js.navigator.platform or "")
        self.doc.getElementById("shortcuts-list").innerHTML = views.shortcuts_html(mac)
        self.shortcuts_dialog.showModal()
        self.shortcuts_dialog.querySelector('[data-action="close-shortcuts"]').focus()

    def _shortcuts_click(self, event: Any, *_: Any) -> None:
        action, _node = self._target(event)
        if action == "close-shortcuts":
            self.shortcuts_dialog.close()

    def _shortcuts_closed(self) -> None:
        returning, self._shortcuts_return = self._shortcuts_return, None
        if returning and returning.isConnected and returning != self.doc.body:
            returning.focus()

    # --- sidebar -----------------------------------------------------------------

    @staticmethod
    def _target(event: Any) -> tuple[str, Any]:
        node = event.target.closest("[data-action]")
        if not node:
            return "", None
        return str(node.dataset.action), node

    def _item_id(self, node: Any) -> str | None:
        item = node.closest("li[data-id]")
        return str(item.dataset.id) if item else None

    def _sidebar_click(self, event: Any, *_: Any) -> None:
        action, node = self._target(event)
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
            self.show_shortcuts()
        elif event.target.closest("a"):
            self.toggle_drawer(False)

    def _sidebar_item(self, conversation_id: str) -> Any:
        """The sidebar item of a conversation, found by comparing ids (never a selector
        built from an id: ids come from stored data)."""
        for item in self.sidebar_list.children:
            if item.getAttribute("data-id") == conversation_id:
                return item
        return None

    def _sidebar_link(self, conversation_id: str) -> Any:
        item = self._sidebar_item(conversation_id)
        return item.querySelector("a") if item else None

    def start_rename(self, conversation_id: str) -> None:
        item = self._sidebar_item(conversation_id)
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
            self._render_sidebar(self._state)
        if cid is not None:
            link = self._sidebar_link(cid)
            if link:
                link.focus()
        original = str(field.getAttribute("data-original"))
        if commit and cid is not None and value.strip() and value != original:
            self.actions.rename(cid, value)

    def _sidebar_keydown(self, event: Any, *_: Any) -> None:
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

    def _sidebar_focusout(self, event: Any, *_: Any) -> None:
        if self._rerendering:
            return
        if event.target.classList.contains("rename-input"):
            self._finish_rename(event.target, True)

    def _wanted_window(self, total: int) -> tuple[int, int]:
        if total <= SIDEBAR_ALL:
            return 0, total
        item = views.SIDEBAR_ITEM_PX
        top = int(self.sidebar_list.scrollTop) // item
        visible = int(self.sidebar_list.clientHeight or 800) // item + 1
        return max(0, top - SIDEBAR_OVERSCAN), min(total, top + visible + SIDEBAR_OVERSCAN)

    def _sidebar_scrolled(self) -> None:
        """Re-render the window (at most once per frame) when scrolling nears its edges."""
        if self._sidebar_frame or self._state is None:
            return
        self._sidebar_frame = True
        js.requestAnimationFrame(self._sidebar_frame_proxy)

    def _sidebar_frame_check(self, *_: Any) -> None:
        self._sidebar_frame = False
        state = self._state
        if state is None:
            return
        start, end = self._sidebar_window
        want_start, want_end = self._wanted_window(len(state.conversations))
        margin = SIDEBAR_OVERSCAN // 2
        if (want_start < start or want_end > end or want_start > start + margin * 3
                or want_end < end - margin * 3):
            self._render_sidebar(state)

    def toggle_drawer(self, open_: bool | None = None) -> None:
        body = self.doc.body
        show = (not body.classList.contains("drawer-open")) if open_ is None else open_
        body.classList.toggle("drawer-open", show)
        self.sidebar_toggle.setAttribute("aria-expanded", "true" if show else "false")
        if show:
            first = self.sidebar.querySelector("a")
            if first:
                first.focus()

    def _chat_click(self, event: Any, *_: Any) -> None:
        """A tap on the dimmed chat beside the open drawer closes the drawer (the dimming
        is the chat's own ::after, so such a tap targets the chat element itself)."""
        if event.target.id == "chat" and self.doc.body.classList.contains("drawer-open"):
            self.toggle_drawer(False)
            self.sidebar_toggle.focus()

    # --- thread ------------------------------------------------------------------

    def _thread_click(self, event: Any, *_: Any) -> None:
        action, node = self._target(event)
        if action == "regenerate":
            article = node.closest("article")
            self._follow = True
            self.actions.regenerate(str(article.dataset.messageId) if article else None)
        elif action == "continue":
            self._follow = True
            self.actions.continue_reply()
        elif action == "keep-as-new-chat":
            self._follow = True
            self.actions.keep_as_new_chat()
        elif action == "discard-unsent":
            self.actions.discard_unsent()
        elif action == "edit-message":
            self._start_edit(node.closest("article"))
        elif action == "cancel-edit":
            self._end_edit(node.closest("form"), restore_focus=True)
        elif action == "copy-code":
            code = node.closest(".code-block").querySelector("code")
            js.navigator.clipboard.writeText(code.textContent).then(
                create_proxy(lambda *_: self._copied(node)),
                create_proxy(lambda *_: self._copied(node, failed=True)))
        elif action == "show-earlier" and self._state is not None:
            before = self.thread.scrollHeight
            self._window += 500
            self._render_thread(self._state, full=True)
            self.thread.scrollTop = self.thread.scrollHeight - before

    # Editing a message of yours: the bubble is swapped for a form until it is sent or
    # canceled (Esc). Sending replaces the replies after it (ChatService.edit_and_resend).

    def _start_edit(self, article: Any) -> None:
        if not article or self._state is None or self._state.replying:
            return
        mid = str(article.dataset.messageId)
        message = next((m for m in self._state.messages if m.id == mid), None)
        if message is None or article.querySelector(".edit-form"):
            return
        for other in self.thread.querySelectorAll(".edit-form"):
            self._end_edit(other, restore_focus=False)
        article.classList.add("editing")
        article.querySelector(".bubble").insertAdjacentHTML("afterend",
                                                            views.edit_form_html(message))
        field = article.querySelector(".edit-text")
        field.focus()
        end = len(str(field.value))
        field.setSelectionRange(end, end)

    def _end_edit(self, form: Any, restore_focus: bool) -> None:
        if not form:
            return
        article = form.closest("article")
        form.remove()
        if article:
            article.classList.remove("editing")
            button = article.querySelector('[data-action="edit-message"]')
            if restore_focus and button:
                button.focus()

    def _edit_submit(self, event: Any, *_: Any) -> None:
        form = event.target
        if not form.classList.contains("edit-form"):
            return
        event.preventDefault()
        text = str(form.querySelector(".edit-text").value)
        mid = str(form.dataset.editId)
        if not text.strip():
            self.announce("The edited message is empty: write something, or press Esc.")
            return
        if self._state is not None and self._state.replying:
            self.announce("A reply is being written: stop it or wait, then send the edit.")
            return
        self._end_edit(form, restore_focus=False)
        self._follow = True
        self.textarea.focus()
        self.actions.edit_and_resend(mid, text)

    def _edit_keydown(self, event: Any, *_: Any) -> None:
        target = event.target
        if not target.classList.contains("edit-text"):
            return
        if event.key == "Escape":
            event.preventDefault()
            event.stopPropagation()  # Esc here ends the edit, nothing else
            self._end_edit(target.closest("form"), restore_focus=True)
        elif event.key == "Enter" and not event.shiftKey and not event.isComposing:
            event.preventDefault()
            target.closest("form").requestSubmit()

    def _copied(self, button: Any, failed: bool = False) -> None:
        button.textContent = "Copy failed" if failed else "Copied"
        self.announce("Copy failed." if failed else "Code copied.")

    def _note_scroll(self) -> None:
        self._follow = self._at_bottom()
        if bool(self.jump_button.hidden) != self._follow:
            self.jump_button.hidden = self._follow

    def jump_to_latest(self) -> None:
        """Scroll to the newest message and follow the thread again (the button's work;
        focus goes to the composer, as the button disappears)."""
        self._follow = True
        self.jump_button.hidden = True
        self.thread.scrollTop = self.thread.scrollHeight
        self.textarea.focus()

    def _at_bottom(self) -> bool:
        t = self.thread
        return bool(t.scrollHeight - t.scrollTop - t.clientHeight < 48)

    def _message_html(self, m: Message, last: bool, simulated: bool) -> str:
        cached = self._rendered.get(m.id)
        if cached is not None and cached[0] == m and cached[1] == last:
            return cached[2]
        html = views.message_html(m, simulated, self._markdown_for(m, last), last)
        self._rendered[m.id] = (m, last, html)
        return html

    def _markdown_for(self, m: Message, last: bool) -> views.Markdown | None:
        """The Markdown renderer for one message: at once when it is small; when it is
        long, plain text now and its HTML rendered in slices later (`_render_heavy`), or
        plain text with a note when it is too large to format within budget."""
        md = self.markdown
        if md is None or m.role is not Role.ASSISTANT or not heavy.is_heavy(m.content):
            return md

        def render(text: str) -> str:
            chunks = heavy.plan(text)
            if chunks is None:
                return heavy.plain_html(text, note=heavy.TOO_LONG_NOTE)
            task = asyncio.ensure_future(self._render_heavy(m, last, chunks, self._generation))
            self._heavy_tasks.add(task)
            task.add_done_callback(self._heavy_done)
            self.doc.body.dataset.heavyRenders = str(len(self._heavy_tasks))
            return heavy.plain_html(text, pending=True)
        return render

    def _heavy_done(self, task: asyncio.Task[None]) -> None:
        self._heavy_tasks.discard(task)
        # How many long messages are still being rendered (tests and benchmarks wait on 0).
        self.doc.body.dataset.heavyRenders = str(len(self._heavy_tasks))
        if not task.cancelled() and task.exception() is not None:
            js.console.error(f"LocalChat: a long message could not be rendered: "
                             f"{task.exception()!r}")

    def _still_shown(self, m: Message, last: bool, generation: int) -> bool:
        """The message is still the one on screen, unchanged, in the same thread."""
        cached = self._rendered.get(m.id)
        return (generation == self._generation and cached is not None
                and cached[0] == m and cached[1] == last)

    async def _render_heavy(self, m: Message, last: bool, chunks: heavy.Plan,
                            generation: int) -> None:
        """Render a long message chunk by chunk, one per task, build its bubble part by
        part (detached: nothing is laid out), then swap it in if the message is still
        the one shown."""
        md = self.markdown
        assert md is not None
        parts: list[str] = []
        for chunk in chunks.chunks:
            await browser_turn()
            if not self._still_shown(m, last, generation):
                return
            heavy.merge(parts, chunk, md(chunk.text))
        wrapped = [f'<div class="md-part">{part}</div>' for part in parts] if len(
            parts) > 1 else parts
        bubble = self.doc.createElement("div")
        bubble.className = "bubble markdown"
        for part in wrapped:
            await browser_turn()
            if not self._still_shown(m, last, generation):
                return
            bubble.insertAdjacentHTML("beforeend", part)
        article = next((n for n in self.thread.querySelectorAll("article[data-message-id]")
                        if n.getAttribute("data-message-id") == m.id), None)
        old = article.querySelector(".bubble") if article else None
        if (old is None or not old.querySelector(f"[{heavy.PENDING_ATTR}]")
                or not self._still_shown(m, last, generation) or self._state is None):
            return
        old.replaceWith(bubble)
        inner = "".join(wrapped)
        simulated = self._state.engine_choice.simulated
        self._rendered[m.id] = (m, last, views.message_html(m, simulated, lambda _: inner, last))
        self._scroll_if_following()

    def _render_thread(self, new: AppState, full: bool) -> None:
        edit = self._open_edit()
        try:
            self._render_thread_now(new, full)
        finally:
            self._reopen_edit(edit)

    def _open_edit(self) -> tuple[str, str, bool] | None:
        """The edit in progress (message id, text, focused), to survive a re-render."""
        form = self.thread.querySelector(".edit-form")
        if not form:  # JS null
            return None
        field = form.querySelector(".edit-text")
        return (str(form.dataset.editId), str(field.value),
                bool(form.contains(self.doc.activeElement)))

    def _reopen_edit(self, edit: tuple[str, str, bool] | None) -> None:
        if edit is None:
            return
        mid, text, focused = edit
        article = next((n for n in self.thread.querySelectorAll("article[data-message-id]")
                        if n.getAttribute("data-message-id") == mid), None)
        if not article or article.querySelector(".edit-form"):
            return
        message = next((m for m in (self._state.messages if self._state else ())
                        if m.id == mid), None)
        if message is None:
            return
        article.classList.add("editing")
        article.querySelector(".bubble").insertAdjacentHTML("afterend",
                                                            views.edit_form_html(message))
        field = article.querySelector(".edit-text")
        field.value = text
        if focused:
            field.focus()

    def _render_thread_now(self, new: AppState, full: bool) -> None:
        self._stream_node = None
        self._stream_id = None
        if full or not new.messages or new.not_found_id is not None:
            if full:
                self._rendered.clear()
                self._generation += 1
            self.thread.innerHTML = (views.thread_html(new, self.markdown, self._window)
                                     if not new.messages or new.not_found_id is not None
                                     else self._thread_body(new)) + ANCHOR
            self.thread.scrollTop = self.thread.scrollHeight
            self.jump_button.hidden = True
            return
        self._patch_thread(new)

    def _thread_body(self, new: AppState) -> str:
        simulated = new.engine_choice.simulated
        shown = new.messages[-self._window:]
        hidden = len(new.messages) - len(shown)
        parts = [views.thread_notes(new)]
        if hidden:
            parts.append('<p class="earlier"><button type="button" class="link-button" '
                         f'data-action="show-earlier">Show {hidden:,} earlier messages'
                         "</button></p>")
        last = len(shown) - 1
        parts.extend(self._message_html(m, i == last, simulated) for i, m in enumerate(shown))
        return "".join(parts)

    def _patch_thread(self, new: AppState) -> None:
        """Re-render only the messages that changed, were added or were removed."""
        simulated = new.engine_choice.simulated
        nodes = {str(n.dataset.messageId): n
                 for n in self.thread.querySelectorAll("article[data-message-id]")}
        if not nodes:
            self.thread.innerHTML = self._thread_body(new) + ANCHOR
            self._scroll_if_following()
            return
        shown = new.messages[-self._window:]
        wanted = {m.id for m in shown}
        for mid, node in nodes.items():
            if mid not in wanted:
                node.remove()
                self._rendered.pop(mid, None)
        last = len(shown) - 1
        previous: Any = None
        for i, m in enumerate(shown):
            node = nodes.get(m.id)
            cached = self._rendered.get(m.id)
            if node and cached is not None and cached[0] == m and cached[1] == (
                    i == last):
                previous = node
                continue
            html = self._message_html(m, i == last, simulated)
            if node:
                node.insertAdjacentHTML("beforebegin", html)
                fresh = node.previousElementSibling
                node.remove()
                node = fresh
            elif previous:
                previous.insertAdjacentHTML("afterend", html)
                node = previous.nextElementSibling
            else:
                anchor = self.thread.lastElementChild
                anchor.insertAdjacentHTML("beforebegin", html)
                node = anchor.previousElementSibling
            previous = node
        self._scroll_if_following()

    def _scroll_if_following(self) -> None:
        if self._follow:
            self.thread.scrollTop = self.thread.scrollHeight

    def stream(self, message_id: str, text: str) -> None:
        """Append streamed text to the reply's bubble (one node, no re-render)."""
        if self._stream_id != message_id or not self._stream_node:
            self._stream_node = None
            node = self.thread.lastElementChild  # the reply is last, before the anchor
            while node:
                if node.getAttribute("data-message-id") == message_id:
                    self._stream_node = node.querySelector(".bubble")
                    break
                node = node.previousElementSibling
            self._stream_id = message_id
        if not self._stream_node:
            return
        # No scrolling here (it would force a layout per delta): the thread's last child
        # is a scroll anchor (CSS overflow-anchor) that keeps the view pinned to the end
        # while the reply grows, as long as the reader is at the end.
        self._stream_node.append(text)

    def set_markdown(self, render: views.Markdown) -> None:
        self.markdown = render
        if self._state is not None and self._state.messages:
            self._rendered.clear()
            self._generation += 1
            follow = self._follow
            top = self.thread.scrollTop
            edit = self._open_edit()
            self.thread.innerHTML = self._thread_body(self._state) + ANCHOR
            self._reopen_edit(edit)
            if follow:
                self.thread.scrollTop = self.thread.scrollHeight
            else:
                self.thread.scrollTop = top

    # --- performance panel, notices, dialogs, live regions -----------------------

    def toggle_perf(self, show: bool | None = None) -> None:
        visible = not self.perf.is_open if show is None else show
        if visible:
            self.popovers.open(self.perf)
        else:
            self.popovers.close(self.perf)

    def keep_thread_end(self) -> None:
        """The thread's size changed (a panel beside or above it opened or closed): a
        thread that showed its newest message still does."""
        if self._follow:
            self.thread.scrollTop = self.thread.scrollHeight

    def announce(self, text: str) -> None:
        """Tell screen readers (the text is replaced, so repeats are announced)."""
        self.announcer.textContent = ""
        later(50, lambda: setattr(self.announcer, "textContent", text))

    def toast(self, text: str, action: str | None = None,
              on_action: Callable[[], None] | None = None,
              on_expire: Callable[[], None] | None = None, ms: int = 6000) -> None:
        """A short notice at the top of the chat column (in the layout, so it never covers
        a message or the composer), with an optional action button ("Undo"). It doesn't
        time out while a dialog is open (it can't be read under the backdrop) or while
        the pointer or focus is on it."""
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
            self._scroll_if_following()
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
        self._scroll_if_following()  # the thread got shorter: keep its end in view

        def expire() -> None:
            if done:
                return
            if self.dialog.open or node.matches(":hover, :focus-within"):
                later(1000, expire)
                return
            finish(False)

        later(ms, expire)

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
        self.notices.append(box)

    async def confirm(self, title: str, body: str, confirm_label: str,
                      cancel_label: str = "Cancel", destructive: bool = True) -> bool:
        """Ask in the app's one confirmation dialog (an alertdialog). True: confirmed.
        Both buttons say what they do; a choice that loses nothing is not styled as
        dangerous (`destructive=False`)."""
        if self._dialog_future is not None and not self._dialog_future.done():
            self._dialog_future.set_result(False)
        returning = self.doc.activeElement
        self.doc.getElementById("confirm-title").textContent = title
        self.doc.getElementById("confirm-body").textContent = body
        button = self.dialog.querySelector('[data-choice="confirm"]')
        button.textContent = confirm_label
        button.className = "danger-button" if destructive else "primary-button"
        self.dialog.querySelector('[data-choice="cancel"]').textContent = cancel_label
        future: asyncio.Future[bool] = asyncio.get_event_loop().create_future()
        self._dialog_future = future
        self.dialog.showModal()
        self.dialog.querySelector('[data-choice="cancel"]').focus()
        try:
            return await future
        finally:
            if self.dialog.open:
                self.dialog.close()
            if returning and returning.isConnected:
                returning.focus()

    def _dialog_click(self, event: Any, *_: Any) -> None:
        choice = event.target.closest("[data-choice]")
        if not choice:
            return
        future = self._dialog_future
        if future is not None and not future.done():
            future.set_result(str(choice.dataset.choice) == "confirm")
        self.dialog.close()

    def _dialog_closed(self) -> None:
        future = self._dialog_future
        if future is not None and not future.done():
            future.set_result(False)  # Escape or closed some other way: not confirmed

    def _import_chosen(self, *_: Any) -> None:
        files = self.import_input.files
        if not files or files.length == 0:
            return
        file = files.item(0)
        name = str(file.name)
        self.import_input.value = ""

        if int(file.size) > MAX_IMPORT_BYTES:  # refused before its text is read
            self.show_alert(f"“{name}” can't be imported.",
                            f"This file is too large to import (over "
                            f"{MAX_IMPORT_BYTES // (1024 * 1024)} MB). Nothing was changed.")
            return

        def read(text: Any, *_: Any) -> None:
            self.actions.import_text(name, str(text))

        def failed(*_: Any) -> None:  # the browser's error name means nothing to the reader
            self.show_alert("The file could not be read.",
                            "The browser couldn't read it (it may have been moved, or be "
                            "unreadable). Nothing was changed. Choose it again.")

        file.text().then(create_proxy(read), create_proxy(failed))

    def download(self, filename: str, text: str, mime: str = "application/json") -> None:
        blob = js.Blob.new([text], js.Object.fromEntries([["type", mime]]))
        url = js.URL.createObjectURL(blob)
        link = self.doc.createElement("a")
        link.href = url
        link.download = filename
        link.hidden = True
        self.doc.body.append(link)
        link.click()
        link.remove()
        later(10_000, lambda: js.URL.revokeObjectURL(url))

    # --- rendering ---------------------------------------------------------------

    def _render_sidebar(self, new: AppState) -> None:
        focused = self.doc.activeElement
        keep = None
        if focused and self.sidebar_list.contains(focused) and \
                not focused.classList.contains("rename-input"):
            item = focused.closest("li[data-id]")
            action = focused.getAttribute("data-action")
            keep = (str(item.dataset.id), action) if item else None
        # A title being edited survives a re-render (another tab's change can cause one).
        editing = self.sidebar_list.querySelector(".rename-input:not([data-done])")
        editing_id = self._item_id(editing) if editing else None
        start, end = self._wanted_window(len(new.conversations))
        self._sidebar_window = (start, end)
        self._rerendering = True  # removing a focused field fires focusout: not a commit
        try:
            self.sidebar_list.innerHTML = views.conversation_items(
                new.conversations, new.active_id, new.conversations_loaded, start, end)
        finally:
            self._rerendering = False
        if editing is not None and editing_id is not None:
            link = self._sidebar_link(editing_id)
            if link:
                link.replaceWith(editing)
                editing.focus()
        if keep is not None:
            cid, action = keep
            item = self._sidebar_item(cid)
            again = None
            if item is not None:
                again = item.querySelector("a") if not action else next(
                    (n for n in item.querySelectorAll("[data-action]")
                     if n.getAttribute("data-action") == action), None)
            if again:
                again.focus()

    @staticmethod
    def _sidebar_changed(old: AppState, new: AppState) -> bool:
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

    def render(self, old: AppState | None, new: AppState) -> None:
        self._state = new
        first = old is None
        if first or self._sidebar_changed(old, new):
            self._render_sidebar(new)
        switched = first or (old.active_id, old.not_found_id) != (new.active_id,
                                                                    new.not_found_id)
        if switched:
            self._window = views.THREAD_WINDOW
            self._follow = True
            if old is not None and old.active_id is None and old.messages:
                # The new chat just got saved: same messages, new id. Patch, don't flash.
                self._render_thread(new, full=False)
            else:
                self._render_thread(new, full=True)
        elif old.messages != new.messages or (old.active != new.active) or (
                old.deleted_elsewhere_id, old.unsent_text) != (new.deleted_elsewhere_id,
                                                               new.unsent_text):
            self._render_thread(new, full=False)
        if first or (old.engine_choice, old.gpu, old.storage_error) != (
                new.engine_choice, new.gpu, new.storage_error):
            problem = explain_gpu(new.gpu) if new.gpu is not None else None
            self.notices.innerHTML = views.notices_html(new, problem)
            label = views.engine_label(new.engine_choice)
            self.engine_label.textContent = label
            self.engine_label.hidden = not label
        # The last message too: the reply is credited to the model that really answers.
        if first or (old.engine, old.replying, old.downloads, old.requested_model_key,
                     old.messages[-1:]) != (new.engine, new.replying, new.downloads,
                                            new.requested_model_key, new.messages[-1:]):
            status = views.composer_status(new)
            if str(self.status.textContent) != status:
                self.status.textContent = status
            self.stop_button.hidden = not new.replying
            self.thread.classList.toggle("replying", bool(new.replying))
            self.send_button.setAttribute("aria-disabled", "true" if new.replying else "false")
        if first or (old.context_dropped, old.context_shortened) != (
                new.context_dropped, new.context_shortened):
            note = views.context_note(new.context_dropped, new.context_shortened)
            self.context_note.textContent = note
            self.context_note.hidden = not note
        if first or old.last_usage != new.last_usage:
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
