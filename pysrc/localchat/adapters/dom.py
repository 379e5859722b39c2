"""The one small DOM helper the page's regions share.

- `Listeners`: adds event listeners and keeps their proxies alive (a listener's proxy
  that is garbage-collected stops the listener);
- `action_of(event)`: the `data-action` the event's target belongs to, and its node;
- `with_attribute(nodes, name, value)`: the first node whose attribute equals a value,
  found by comparing (never a selector built from an id: ids come from stored data);
- `Announcer`: the polite live region that tells screen readers what happened;
- `save_file`: hands text to the browser as a download.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import js  # type: ignore[import-not-found]

from .ffi import create_proxy, later

__all__ = ["Announcer", "Listeners", "action_of", "save_file", "with_attribute"]


class Listeners:
    """Event listeners of one region, with their proxies kept alive."""

    def __init__(self) -> None:
        self._proxies: list[Any] = []

    def listen(self, node: Any, event: str, handler: Callable[..., None]) -> None:
        proxy = create_proxy(handler)
        node.addEventListener(event, proxy)
        self._proxies.append(proxy)


def action_of(event: Any) -> tuple[str, Any]:
    """The `data-action` of the element the event happened in ("" and None: none)."""
    node = event.target.closest("[data-action]")
    if not node:
        return "", None
    return str(node.dataset.action), node


def with_attribute(nodes: Iterable[Any], name: str, value: str) -> Any:
    """The first of `nodes` whose attribute `name` is `value`, or None."""
    return next((n for n in nodes if n.getAttribute(name) == value), None)


class Announcer:
    """Tells screen readers (the text is replaced, so a repeated text is announced)."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def __call__(self, text: str) -> None:
        self.node.textContent = ""
        later(50, lambda: setattr(self.node, "textContent", text))


def save_file(document: Any, filename: str, text: str, mime: str) -> None:
    """Offer `text` as a file download (an object URL, revoked a little later)."""
    blob = js.Blob.new([text], js.Object.fromEntries([["type", mime]]))
    url = js.URL.createObjectURL(blob)
    link = document.createElement("a")
    link.href = url
    link.download = filename
    link.hidden = True
    document.body.append(link)
    link.click()
    link.remove()
    later(10_000, lambda: js.URL.revokeObjectURL(url))
