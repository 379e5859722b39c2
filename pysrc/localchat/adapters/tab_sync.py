"""This tab among the others: their change notices in, reply locks, the save on pagehide.

Wires web/js/tab-sync.js (through db-bridge.js, which re-exports it) to the core:
- other tabs' notices (BroadcastChannel "localchat-data") go to `core.sync.TabSync`;
- `BrowserReplyLocks` (ports.ReplyLocks) holds "localchat-reply-<message id>" Web Locks
  while a reply streams here, and asks which are held anywhere;
- on `pagehide` the reply streaming now is stored as far as it has arrived, marked
  interrupted (the transaction starts synchronously, before the page goes).
Side effects: one channel listener and one `pagehide` listener per `connect_tabs` call;
`<body data-tab-sync="n">` counts the refreshes applied from other tabs' notices.

    sync, proxies = connect_tabs(bridges.db, service, app.spawn)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import js  # type: ignore[import-not-found]

from ..core.chat import ChatService
from ..core.conversation import message_to_record
from ..core.errors import StoreFailure
from ..core.sync import TabSync
from .dexie_store import DexieStore
from .ffi import call, create_proxy, js_object, py_value

__all__ = ["BrowserReplyLocks", "connect_tabs"]


class BrowserReplyLocks:
    """ports.ReplyLocks on the Web Locks API (a browser without it: this tab only)."""

    def __init__(self, bridge: Any) -> None:
        self._db = bridge

    async def hold(self, message_id: str) -> Callable[[], None]:
        try:
            release = await call(self._db.holdReplyLock(message_id), StoreFailure)
        except StoreFailure:
            return lambda: None
        return lambda: release()

    async def held(self) -> set[str]:
        try:
            ids = await call(self._db.heldReplyLocks(), StoreFailure)
        except StoreFailure:
            return set()
        return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()

    async def released(self, message_id: str) -> None:
        try:
            await call(self._db.replyLockReleased(message_id), StoreFailure)
        except StoreFailure:
            return


def connect_tabs(bridge: Any, service: ChatService,
                 spawn: Callable[[Awaitable[Any]], Any]) -> tuple[TabSync, list[Any]]:
    """Start hearing the other tabs: the TabSync that applies their notices, and the
    listeners' proxies (they live as long as the page)."""
    def applied(rounds: int) -> None:
        js.document.body.dataset.tabSync = str(rounds)  # tests wait on it, never sleep

    sync = TabSync(service, spawn, applied)

    def heard(data: Any, *_: Any) -> None:
        sync.notice(py_value(data))

    def leaving(*_: Any) -> None:
        partial = service.partial_reply(sync.unsettled)
        if partial is not None:
            store = service.store
            record = (store.message_record(partial) if isinstance(store, DexieStore)
                      else message_to_record(partial))
            bridge.putMessageNow(js_object(record))

    heard_proxy = create_proxy(heard)
    leaving_proxy = create_proxy(leaving)
    bridge.onDataChange(heard_proxy)
    js.window.addEventListener("pagehide", leaving_proxy)
    return sync, [heard_proxy, leaving_proxy]
