"""Showing and hiding the page's popovers: one owner for all of them.

Each popover (the model list, the Download Manager, the performance panel) is a
`Popover`: a panel, the button that controls it (`aria-expanded` follows), and what
happens to focus. `Popovers` holds them all and is the only code that shows or hides
one, so that the panels never reach into each other by element id:

- Esc closes the popover opened last, from anywhere on the page (not while a modal
  dialog is open: Esc belongs to it then);
- a click outside a popover (and outside its button) closes it, and focus stays where
  the user clicked;
- popovers in the same `group` exclude each other (opening one closes the others);
- closing gives focus back to what opened it, but only if focus was inside the popover
  (or nowhere): a popover that opened by itself never moves the user's focus.

    popovers = Popovers(document)
    manager = popovers.add(Popover(panel, button, group="header"))
    popovers.open(manager, focus=True)    # the user opened it: focus goes into it
    popovers.open(manager, focus=False)   # it opened by itself: focus stays

Side effects: two listeners on the document (keydown, click in the capture phase, so a
click that opens a popover is seen after the one that closed the others).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .ffi import create_proxy

__all__ = ["Popover", "Popovers"]


class Popover:
    """One panel that shows and hides, and the button that controls it."""

    def __init__(self, panel: Any, button: Any, *, group: str = "",
                 focus_target: Callable[[], Any] | None = None,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.panel = panel
        self.button = button
        self.group = group
        """Popovers with the same non-empty group are never open together."""
        self.focus_target = focus_target
        """What gets focus when the user opens it (default: the panel itself)."""
        self.on_change = on_change
        """Called with the new visibility after it was shown or hidden."""
        self.opener: Any = None

    @property
    def is_open(self) -> bool:
        return not bool(self.panel.hidden)

    def contains(self, node: Any) -> bool:
        return bool(self.panel.contains(node) or self.button.contains(node))


class Popovers:
    """The one owner of showing and hiding popovers (see the module docstring)."""

    def __init__(self, document: Any) -> None:
        self.doc = document
        self._items: list[Popover] = []
        self._stack: list[Popover] = []
        self._proxies: list[Any] = []
        self._listen("keydown", self._keydown, False)
        self._listen("click", self._click, True)

    def _listen(self, event: str, handler: Callable[..., None], capture: bool) -> None:
        proxy = create_proxy(handler)
        self.doc.addEventListener(event, proxy, capture)
        self._proxies.append(proxy)

    def add(self, popover: Popover) -> Popover:
        self._items.append(popover)
        return popover

    def toggle(self, popover: Popover, focus: bool = True) -> None:
        if popover.is_open:
            self.close(popover)
        else:
            self.open(popover, focus)

    def open(self, popover: Popover, focus: bool = True) -> None:
        """Show it; `focus`: the user asked, so focus goes into it (else it stays)."""
        for other in self._items:
            if other is not popover and other.group and other.group == popover.group:
                self.close(other, restore=False)
        if not popover.is_open:
            active = self.doc.activeElement
            popover.opener = active if active is not None and active != self.doc.body \
                else popover.button
            self._set(popover, True)
        if popover in self._stack:
            self._stack.remove(popover)
        self._stack.append(popover)
        if focus:
            target = popover.focus_target() if popover.focus_target else None
            (target or popover.panel).focus()

    def close(self, popover: Popover, restore: bool = True) -> None:
        """Hide it; focus inside it (or nowhere) goes back to what opened it."""
        if popover in self._stack:
            self._stack.remove(popover)
        if not popover.is_open:
            return
        active = self.doc.activeElement
        inside = active is None or active == self.doc.body or popover.panel.contains(active)
        self._set(popover, False)
        if restore and inside:
            opener = popover.opener
            target = opener if opener is not None and opener.isConnected \
                and not opener.closest("[hidden]") else popover.button
            target.focus()
        popover.opener = None

    def _set(self, popover: Popover, visible: bool) -> None:
        popover.panel.hidden = not visible
        popover.button.setAttribute("aria-expanded", "true" if visible else "false")
        if popover.on_change is not None:
            popover.on_change(visible)

    def _keydown(self, event: Any, *_: Any) -> None:
        if event.key != "Escape" or event.defaultPrevented or not self._stack:
            return
        if self.doc.querySelector("dialog[open]"):
            return  # a confirmation is asking: Esc is its own
        event.preventDefault()
        self.close(self._stack[-1])

    def _click(self, event: Any, *_: Any) -> None:
        target = event.target
        if target is None or not target.isConnected:
            return
        if target.closest("dialog"):
            return  # answering a confirmation the popover asked for
        for popover in list(self._stack):
            if not popover.contains(target):
                self.close(popover, restore=False)  # focus stays where the user clicked
