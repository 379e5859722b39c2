"""The model controls in the DOM: the selector in the composer, the Download Manager,
the Downloads button's progress and failure mark, the "isn't downloaded" banner, the
failure toast with Retry, the tab title while hidden, and announcements.

Views (ui/views.py) make the HTML; this adapter decides what to patch. Download
progress arrives up to dozens of times a second, so a Download Manager row whose
structure did not change only gets its progress bar and text updated in place (focus
on its buttons survives), and the model list's options only get their texts patched
(keyboard focus on an option of the open list survives). Showing and hiding the list
and the Download Manager goes through `Popovers` (adapters/popover.py), never directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import js  # type: ignore[import-not-found]

from ..core.downloads import DownloadState
from ..core.gpu import slow_gpu_warning
from ..core.state import AppState
from ..ui import views
from .ffi import create_proxy, later
from .popover import Popover, Popovers

__all__ = ["ModelActions", "ModelPanel"]

TITLE = "LocalChat"


class ModelActions(Protocol):
    def choose_model(self, key: str) -> None: ...
    def download(self, key: str) -> None: ...
    def cancel_download(self, key: str) -> None: ...
    def retry_download(self, key: str) -> None: ...
    def delete_model(self, key: str) -> None: ...


class ModelPanel:
    def __init__(self, document: Any, actions: ModelActions, max_retries: int,
                 popovers: Popovers, keep_thread_end: Callable[[], None] | None = None) -> None:
        self.doc = document
        self.actions = actions
        self.max_retries = max_retries
        get = document.getElementById
        self.button = get("model-button")
        self.listbox = get("model-list")
        self.manager = get("download-manager")
        self.list = get("download-list")
        self.storage = get("dm-storage")
        self.gpu_note = get("dm-gpu")
        self.banner = get("model-banner")
        self.downloads_button = get("downloads-button")
        self.announcer = get("announcer")
        self.toasts = get("toasts")
        self._state: AppState | None = None
        self._proxies: list[Any] = []
        self._retry_tick = False
        self.popovers = popovers
        self.list_popover = popovers.add(Popover(self.listbox, self.button,
                                                 focus_target=self._selected_option))
        # The panel takes room from the thread: a thread that showed its end still does.
        self.manager_popover = popovers.add(Popover(
            self.manager, self.downloads_button, group="header",
            on_change=(lambda _visible: keep_thread_end()) if keep_thread_end else None))
        self._listen(self.button, "click", lambda *_: self.toggle_list())
        self._listen(self.button, "keydown", self._button_keydown)
        self._listen(self.listbox, "click", self._option_click)
        self._listen(self.listbox, "keydown", self._list_keydown)
        self._listen(self.downloads_button, "click", lambda *_: self.toggle_manager())
        self._listen(self.manager, "click", self._manager_click)
        self._listen(self.banner, "click", self._manager_click)
        self._listen(self.toasts, "click", self._toast_click)
        self._listen(document, "visibilitychange", lambda *_: self._update_title())

    def _listen(self, node: Any, event: str, handler: Any) -> None:
        proxy = create_proxy(handler)
        node.addEventListener(event, proxy)
        self._proxies.append(proxy)

    # --- the selector (a button and a listbox) ---------------------------------------

    def toggle_list(self, show: bool | None = None, restore: bool = True) -> None:
        visible = not self.list_popover.is_open if show is None else show
        if visible:
            self.popovers.open(self.list_popover)
        else:
            self.popovers.close(self.list_popover, restore=restore)

    def _selected_option(self) -> Any:
        return self.listbox.querySelector('[aria-selected="true"]') or \
            self.listbox.querySelector('[role="option"]')

    def _button_keydown(self, event: Any, *_: Any) -> None:
        if event.key in ("ArrowDown", "ArrowUp"):
            event.preventDefault()
            self.toggle_list(True)

    def _options(self) -> list[Any]:
        return list(self.listbox.querySelectorAll('[role="option"]'))

    def _list_keydown(self, event: Any, *_: Any) -> None:
        options = self._options()
        current = event.target.closest('[role="option"]')
        index = next((i for i, o in enumerate(options) if o == current), 0)
        if event.key in ("ArrowDown", "ArrowUp", "Home", "End"):
            event.preventDefault()
            step = {"ArrowDown": index + 1, "ArrowUp": index - 1, "Home": 0,
                    "End": len(options) - 1}[event.key]
            options[max(0, min(len(options) - 1, step))].focus()
        elif event.key in ("Enter", " "):
            event.preventDefault()
            if current:
                self._choose(current)
        elif event.key == "Tab":
            self.toggle_list(False, restore=False)  # focus moves on by itself

    def _option_click(self, event: Any, *_: Any) -> None:
        option = event.target.closest('[role="option"]')
        if option:
            self._choose(option)

    def _choose(self, option: Any) -> None:
        if option.getAttribute("aria-disabled") == "true":
            return
        key = str(option.dataset.key)
        self.toggle_list(False)
        self.button.focus()
        self.actions.choose_model(key)

    def confirm_switch(self) -> None:
        """A visible confirmation on the selector that the switch happened."""
        self.button.classList.add("switched")
        later(2500, lambda: self.button.classList.remove("switched"))

    # --- the Download Manager --------------------------------------------------------

    def toggle_manager(self, show: bool | None = None, focus: bool = True) -> None:
        """Show or hide the Download Manager. `focus=False`: it opened by itself (a
        download started), so the user's focus stays where it is."""
        visible = not self.manager_popover.is_open if show is None else show
        if visible:
            self.popovers.open(self.manager_popover, focus=focus)
        else:
            self.popovers.close(self.manager_popover, restore=focus)

    def _manager_click(self, event: Any, *_: Any) -> None:
        node = event.target.closest("[data-action]")
        if not node:
            return
        action = str(node.dataset.action)
        key = str(node.dataset.key) if node.hasAttribute("data-key") else ""
        if action == "close-downloads":
            self.toggle_manager(False)
        elif action == "download":
            self.actions.download(key)
        elif action == "cancel":
            self.actions.cancel_download(key)
        elif action == "retry":
            self.actions.retry_download(key)
        elif action == "delete-model":
            self.actions.delete_model(key)
        elif action == "use-model":
            self.actions.choose_model(key)

    # --- rendering -------------------------------------------------------------------

    def render(self, old: AppState | None, new: AppState) -> None:
        self._state = new
        if old is not None and (
                old.downloads, old.engine.loaded_model, old.model_sizes, old.gpu, old.storage,
                old.requested_model_key, old.engine_choice, old.models_checking) == (
                new.downloads, new.engine.loaded_model, new.model_sizes, new.gpu,
                new.storage, new.requested_model_key, new.engine_choice,
                new.models_checking):
            return
        rows = views.model_rows(new)
        requested = next(r for r in rows if r.requested)
        text = views.model_button_text(requested)
        if str(self.button.textContent) != text:
            self.button.textContent = text
        self._render_options(rows)
        self._render_rows(views.download_rows(rows, new))
        self.storage.textContent = views.storage_html(new.storage)
        warning = slow_gpu_warning(new.gpu)
        if str(self.gpu_note.textContent) != warning:
            self.gpu_note.textContent = warning
            self.gpu_note.hidden = not warning
        self._render_downloads_button(new)
        self._render_banner(new, rows, requested)
        self._update_title()
        if old is not None:
            self._announce_changes(old, new, rows)

    def _render_options(self, rows: list[views.ModelRow]) -> None:
        """The model list changes only where its content did: a progress tick patches one
        option's text, so keyboard focus on an option of the open list stays put."""
        options = self._options()
        if [str(o.dataset.key) for o in options] != [r.key for r in rows]:
            self.listbox.innerHTML = views.model_options_html(rows)
            return
        for option, row in zip(options, rows, strict=True):
            selected = "true" if row.requested else "false"
            if str(option.getAttribute("aria-selected")) != selected:
                option.setAttribute("aria-selected", selected)
            if row.fit.usable:
                if option.hasAttribute("aria-disabled"):
                    option.removeAttribute("aria-disabled")
            elif option.getAttribute("aria-disabled") != "true":
                option.setAttribute("aria-disabled", "true")
            for selector, text in ((".option-name", views.option_name(row)),
                                   (".option-state", views.model_option_text(row)),
                                   (".option-cost", views.model_option_cost(row))):
                node = option.querySelector(selector)
                if node is not None and str(node.textContent) != text:
                    node.textContent = text

    def _render_rows(self, rows: list[views.ModelRow]) -> None:
        """Rows in queue order; one whose structure is the same is patched in place."""
        now = int(js.Date.now())
        nodes = list(self.list.querySelectorAll("li[data-key]"))
        existing = {str(n.dataset.key): n for n in nodes}
        if [str(n.dataset.key) for n in nodes] != [r.key for r in rows]:
            focused = self.doc.activeElement
            inside = focused is not None and self.list.contains(focused) \
                and focused.hasAttribute("data-action")
            where = (str(focused.dataset.action), str(focused.dataset.key)) if inside else None
            self.list.innerHTML = "".join(views.download_row_html(r, self.max_retries, now)
                                          for r in rows)
            if where is not None:  # the queue's order changed: the focus stays on its button
                again = self.list.querySelector(
                    f'[data-action="{where[0]}"][data-key="{where[1]}"]')
                (again or self.manager).focus()
            self._tick_retries(rows)
            return
        for row in rows:
            node = existing[row.key]
            shape = views.download_row_shape(row)
            if str(node.dataset.shape) != shape:
                focused = self.doc.activeElement
                action = str(focused.dataset.action) if focused and node.contains(focused) \
                    and focused.hasAttribute("data-action") else None
                node.insertAdjacentHTML("beforebegin",
                                        views.download_row_html(row, self.max_retries, now))
                row_node = node.previousElementSibling
                node.remove()
                if action:
                    fresh = row_node.querySelector("button") if row_node else None
                    (fresh or self.manager).focus()
                continue
            bar = node.querySelector('[role="progressbar"]')
            if bar:
                bar.setAttribute("aria-valuenow", str(row.percent))
                bar.setAttribute("data-eta-s", views.eta_attr(row.item))
                bar.firstElementChild.style.width = f"{row.percent}%"
            detail = node.querySelector(".row-detail")
            if detail and row.item is not None and not row.loaded and row.fit.usable:
                text = views.row_words(row, self.max_retries, now)
                if str(detail.textContent) != text:
                    detail.textContent = text
        self._tick_retries(rows)

    def _tick_retries(self, rows: list[views.ModelRow]) -> None:
        """While an automatic retry waits, its countdown is redrawn every second."""
        if self._retry_tick or not any(
                r.item is not None and r.item.retry and r.item.retry_at_ms is not None
                and r.item.state is DownloadState.DOWNLOADING for r in rows):
            return
        self._retry_tick = True

        def tick() -> None:
            self._retry_tick = False
            state = self._state
            if state is not None:
                self._render_rows(views.download_rows(views.model_rows(state), state))

        later(1000, tick)

    def _render_downloads_button(self, state: AppState) -> None:
        """Progress and failures show on the Downloads button with the panel closed."""
        badge = views.downloads_badge(state)
        html = views.downloads_button_html(badge)
        if str(self.downloads_button.innerHTML) != html:
            self.downloads_button.innerHTML = html
        if str(self.downloads_button.getAttribute("aria-label") or "") != badge.label:
            self.downloads_button.setAttribute("aria-label", badge.label)
        self.downloads_button.classList.toggle("has-failed", badge.failed)

    def _toast_failure(self, item: Any) -> None:
        """A failure is shown in a toast with Retry (the toasts are a status region)."""
        node = self.doc.createElement("div")
        node.className = "toast"
        text = self.doc.createElement("span")
        text.textContent = views.failure_toast_text(item)
        retry = self.doc.createElement("button")
        retry.type = "button"
        retry.className = "toast-action"
        retry.dataset.action = "retry"
        retry.dataset.key = item.key
        retry.textContent = "Retry"
        node.append(text, retry)
        self.toasts.append(node)
        later(12000, node.remove)

    def _toast_click(self, event: Any, *_: Any) -> None:
        node = event.target.closest('[data-action="retry"]')
        if node:
            key = str(node.dataset.key)
            node.closest(".toast").remove()
            self.actions.retry_download(key)

    def _render_banner(self, state: AppState, rows: list[views.ModelRow],
                       requested: views.ModelRow) -> None:
        item = requested.item
        show = state.gpu is None or state.gpu.usable
        missing = not requested.loaded and not requested.checking and (
            item is None or item.state in (DownloadState.CANCELED, DownloadState.FAILED)) \
            and show
        if not missing:
            if self.banner.innerHTML:
                self.banner.innerHTML = ""
            return
        ready = [r for r in rows if r.key != requested.key and r.fit.usable and (
            r.loaded or (r.item is not None and r.item.state is DownloadState.READY))]
        alternative = next((r for r in ready if r.loaded), ready[0] if ready else None)
        first_visit = not state.downloads and not state.messages
        html = views.model_banner_html(requested, alternative, first_visit,
                                       slow_gpu_warning(state.gpu))
        if str(self.banner.innerHTML) != html:
            self.banner.innerHTML = html

    def _update_title(self) -> None:
        state = self._state
        active = None
        if state is not None:
            active = next((i for i in state.downloads.values()
                           if i.state in (DownloadState.DOWNLOADING, DownloadState.COMPILING)),
                          None)
        if self.doc.hidden and active is not None:
            label = active.key.capitalize()
            title = (f"{round(active.fraction * 100)}% · Downloading {label} — {TITLE}"
                     if active.state is DownloadState.DOWNLOADING
                     else f"Compiling {label} — {TITLE}")
        else:
            title = TITLE
        if str(self.doc.title) != title:
            self.doc.title = title

    def _announce_changes(self, old: AppState, new: AppState,
                          rows: list[views.ModelRow]) -> None:
        for row in rows:
            before = old.downloads.get(row.key)
            after = new.downloads.get(row.key)
            if after is None or (before is not None and before.state is after.state):
                continue
            if after.state is DownloadState.FAILED:
                self._toast_failure(after)  # a status region: it is announced
                continue
            self.announcer.textContent = f"{row.label}: {after.state.label}."
