"""The thread region: the messages of the open conversation, their actions (Regenerate,
Continue, Edit, Copy code), the streaming reply, and Jump to latest.

Streamed text is appended to one node, never by re-rendering the thread. The thread is
patched per message (only changed or new messages are rendered; Markdown is rendered
once per finished message; a long one is shown as plain text first and formatted in
slices, one task each, see ui/heavy.py). The thread's last child is a scroll anchor
(CSS overflow-anchor) that keeps the view pinned to the end while the reader is there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from ..core.conversation import Message, Role
from ..core.state import AppState
from ..ui import heavy, views
from .dom import Listeners, action_of, with_attribute
from .ffi import create_proxy
from .packages import browser_turn

if TYPE_CHECKING:
    from .page import Actions

__all__ = ["Thread"]

ANCHOR = '<div class="scroll-anchor" aria-hidden="true"></div>'
"""Always the thread's last child (see `stream`)."""


class Thread:
    def __init__(self, document: Any, actions: Actions, listeners: Listeners, *,
                 announce: Callable[[str], None],
                 focus_composer: Callable[[], None]) -> None:
        get = document.getElementById
        self.doc = document
        self.actions = actions
        self.node = get("thread")
        self.jump_button = get("jump-latest")
        self._announce = announce
        self._focus_composer = focus_composer
        self.markdown: views.Markdown | None = None
        self._state: AppState | None = None
        self._stream_node: Any = None
        self._stream_id: str | None = None
        self._rendered: dict[str, tuple[Message, bool, str]] = {}
        self._generation = 0
        """Bumped whenever the thread is rendered anew: pending heavy renders then stop."""
        self._heavy_tasks: set[asyncio.Task[None]] = set()
        self._window = views.THREAD_WINDOW
        self.follow = True
        """The reader is at the end: new text keeps the end in view."""
        listen = listeners.listen
        listen(self.node, "click", self._click)
        listen(self.node, "submit", self._edit_submit)
        listen(self.node, "keydown", self._edit_keydown)
        listen(self.node, "scroll", lambda *_: self._note_scroll())
        listen(self.jump_button, "click", lambda *_: self.jump_to_latest())

    def _click(self, event: Any, *_: Any) -> None:
        action, node = action_of(event)
        if action == "regenerate":
            article = node.closest("article")
            self.follow = True
            self.actions.regenerate(str(article.dataset.messageId) if article else None)
        elif action == "continue":
            self.follow = True
            self.actions.continue_reply()
        elif action == "keep-as-new-chat":
            self.follow = True
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
            before = self.node.scrollHeight
            self._window += 500
            self._render(self._state, full=True)
            self.node.scrollTop = self.node.scrollHeight - before

    def _copied(self, button: Any, failed: bool = False) -> None:
        button.textContent = "Copy failed" if failed else "Copied"
        self._announce("Copy failed." if failed else "Code copied.")

    # --- editing a message of yours ------------------------------------------------
    # The bubble is swapped for a form until it is sent or canceled (Esc). Sending
    # replaces the replies after it (ChatService.edit_and_resend).

    def _article(self, message_id: str) -> Any:
        return with_attribute(self.node.querySelectorAll("article[data-message-id]"),
                              "data-message-id", message_id)

    def _start_edit(self, article: Any) -> None:
        if not article or self._state is None or self._state.replying:
            return
        mid = str(article.dataset.messageId)
        message = next((m for m in self._state.messages if m.id == mid), None)
        if message is None or article.querySelector(".edit-form"):
            return
        for other in self.node.querySelectorAll(".edit-form"):
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
            self._announce("The edited message is empty: write something, or press Esc.")
            return
        if self._state is not None and self._state.replying:
            self._announce("A reply is being written: stop it or wait, then send the edit.")
            return
        self._end_edit(form, restore_focus=False)
        self.follow = True
        self._focus_composer()
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

    def _open_edit(self) -> tuple[str, str, bool] | None:
        """The edit in progress (message id, text, focused), to survive a re-render."""
        form = self.node.querySelector(".edit-form")
        if not form:  # JS null
            return None
        field = form.querySelector(".edit-text")
        return (str(form.dataset.editId), str(field.value),
                bool(form.contains(self.doc.activeElement)))

    def _reopen_edit(self, edit: tuple[str, str, bool] | None) -> None:
        if edit is None:
            return
        mid, text, focused = edit
        article = self._article(mid)
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

    # --- following the end -----------------------------------------------------------

    def _note_scroll(self) -> None:
        self.follow = self._at_bottom()
        if bool(self.jump_button.hidden) != self.follow:
            self.jump_button.hidden = self.follow

    def jump_to_latest(self) -> None:
        """Scroll to the newest message and follow the thread again (the button's work;
        focus goes to the composer, as the button disappears)."""
        self.follow = True
        self.jump_button.hidden = True
        self.node.scrollTop = self.node.scrollHeight
        self._focus_composer()

    def _at_bottom(self) -> bool:
        t = self.node
        return bool(t.scrollHeight - t.scrollTop - t.clientHeight < 48)

    def keep_end(self) -> None:
        """The thread's size changed (a panel, toast or notice came or went): a thread
        that showed its newest message still does."""
        if self.follow:
            self.node.scrollTop = self.node.scrollHeight

    # --- messages --------------------------------------------------------------------

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
        article = self._article(m.id)
        old = article.querySelector(".bubble") if article else None
        if (old is None or not old.querySelector(f"[{heavy.PENDING_ATTR}]")
                or not self._still_shown(m, last, generation) or self._state is None):
            return
        old.replaceWith(bubble)
        inner = "".join(wrapped)
        simulated = self._state.engine_choice.simulated
        self._rendered[m.id] = (m, last, views.message_html(m, simulated, lambda _: inner, last))
        self.keep_end()

    # --- rendering -------------------------------------------------------------------

    def render(self, old: AppState | None, new: AppState) -> None:
        self._state = new
        switched = old is None or (old.active_id, old.not_found_id) != (new.active_id,
                                                                          new.not_found_id)
        if switched:
            self._window = views.THREAD_WINDOW
            self.follow = True
            if old is not None and old.active_id is None and old.messages:
                # The new chat just got saved: same messages, new id. Patch, don't flash.
                self._render(new, full=False)
            else:
                self._render(new, full=True)
        elif old is not None and (old.messages != new.messages or old.active != new.active
                                  or (old.deleted_elsewhere_id, old.unsent_text)
                                  != (new.deleted_elsewhere_id, new.unsent_text)):
            self._render(new, full=False)
        if old is None or old.replying != new.replying:
            self.node.classList.toggle("replying", bool(new.replying))

    def _render(self, new: AppState, full: bool) -> None:
        edit = self._open_edit()
        try:
            self._render_now(new, full)
        finally:
            self._reopen_edit(edit)

    def _render_now(self, new: AppState, full: bool) -> None:
        self._stream_node = None
        self._stream_id = None
        if full or not new.messages or new.not_found_id is not None:
            if full:
                self._rendered.clear()
                self._generation += 1
            self.node.innerHTML = (views.thread_html(new, self.markdown, self._window)
                                   if not new.messages or new.not_found_id is not None
                                   else self._body(new)) + ANCHOR
            self.node.scrollTop = self.node.scrollHeight
            self.jump_button.hidden = True
            return
        self._patch(new)

    def _body(self, new: AppState) -> str:
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

    def _patch(self, new: AppState) -> None:
        """Re-render only the messages that changed, were added or were removed."""
        simulated = new.engine_choice.simulated
        nodes = {str(n.dataset.messageId): n
                 for n in self.node.querySelectorAll("article[data-message-id]")}
        if not nodes:
            self.node.innerHTML = self._body(new) + ANCHOR
            self.keep_end()
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
                anchor = self.node.lastElementChild
                anchor.insertAdjacentHTML("beforebegin", html)
                node = anchor.previousElementSibling
            previous = node
        self.keep_end()

    def stream(self, message_id: str, text: str) -> None:
        """Append streamed text to the reply's bubble (one node, no re-render)."""
        if self._stream_id != message_id or not self._stream_node:
            self._stream_node = None
            node = self.node.lastElementChild  # the reply is last, before the anchor
            while node:
                if node.getAttribute("data-message-id") == message_id:
                    self._stream_node = node.querySelector(".bubble")
                    break
                node = node.previousElementSibling
            self._stream_id = message_id
        if not self._stream_node:
            return
        # No scrolling here (it would force a layout per delta): the scroll anchor keeps
        # the view pinned to the end while the reply grows, as long as the reader is there.
        self._stream_node.append(text)

    def set_markdown(self, render: views.Markdown) -> None:
        self.markdown = render
        if self._state is not None and self._state.messages:
            self._rendered.clear()
            self._generation += 1
            follow = self.follow
            top = self.node.scrollTop
            edit = self._open_edit()
            self.node.innerHTML = self._body(self._state) + ANCHOR
            self._reopen_edit(edit)
            if follow:
                self.node.scrollTop = self.node.scrollHeight
            else:
                self.node.scrollTop = top
