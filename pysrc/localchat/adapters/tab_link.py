"""ports.TabLink over web/js/tabs-bridge.js (BroadcastChannel and Web Locks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .ffi import create_proxy, js_object, py_value

__all__ = ["BrowserTabLink"]


class BrowserTabLink:
    """One tab's link; `owner` says whether it owns the models from the start, and
    `owned()` returns when it does (when the tabs before it in line have closed)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.tab_id = str(handle.id)
        self.owner = bool(handle.owner)
        self._handler: Callable[[dict[str, Any]], None] | None = None
        self._proxy = create_proxy(self._receive)
        handle.onMessage(self._proxy)

    @classmethod
    async def connect(cls, bridge: Any, scope: str) -> BrowserTabLink:
        return cls(await bridge.connect(scope))

    def _receive(self, message: Any, *_: Any) -> None:
        value = py_value(message)
        if self._handler is not None and isinstance(value, dict):
            self._handler(value)

    def post(self, message: dict[str, Any]) -> None:
        self._handle.post(js_object(message))

    def on_message(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self._handler = handler

    async def owned(self) -> None:
        await self._handle.owned

    async def when_gone(self, tab_id: str) -> None:
        await self._handle.whenGone(tab_id)
