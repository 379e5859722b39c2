"""Other tabs' changes, applied to this one: their notices in, fresh reads from the store.

Every tab announces each successful store write to the others (in the browser a
BroadcastChannel, sent by web/js/db-bridge.js), as a plain dict:

    {"kind": "conversations", "ids": ["c1", ...]}   # these changed (ids None: any of them)
    {"kind": "messages", "conversationId": "c1", "ids": ["m1"]}
        # these messages of that conversation changed (added, grown, deleted); without
        # ids: any of its messages

`TabSync.notice()` takes them in; one refresh at a time re-reads what changed from the
store, the source of truth (so every tab shows the store's last write: two renames
converge to the later one everywhere). Notices that arrive during a refresh are merged
into the next one. Example:

    sync = TabSync(service)
    channel.on_message(sync.notice)     # the adapter (adapters/tab_sync.py) does this
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .chat import ChatService
from .conversation import key_alias

__all__ = ["TabSync"]

Spawn = Callable[[Awaitable[Any]], Any]


class TabSync:
    def __init__(self, service: ChatService, spawn: Spawn | None = None,
                 on_applied: Callable[[int], None] | None = None) -> None:
        self.service = service
        self.on_applied = on_applied
        """Called with `applied` after each refresh round (the page marks it for tests)."""
        self._spawn: Spawn = spawn or asyncio.ensure_future
        self._ids: set[str] = set()
        self._all = False
        self._messages: dict[str, set[str] | None] = {}
        """Conversation id -> the ids of its changed messages (None: any of them)."""
        self._refreshing: set[str] | None = set()
        """Conversations being read again now (None: all of them)."""
        self._running: asyncio.Event | None = None
        """Set while a refresh runs; None when idle."""
        self.applied = 0
        """Refresh rounds finished (for tests and benchmarks)."""

    def notice(self, raw: Any) -> None:
        """Take another tab's notice (anything else is ignored); refreshes soon."""
        if not isinstance(raw, dict):
            return
        kind = raw.get("kind")
        # Notices name records by their stored keys; the app knows them by key_alias.
        ids = raw.get("ids")
        aliases = [key_alias(i) for i in ids] if isinstance(ids, list) else [None]
        if kind == "conversations":
            if None not in aliases:
                self._ids.update(a for a in aliases if a is not None)
            else:
                self._all = True
        elif kind == "messages":
            cid = key_alias(raw.get("conversationId"))
            if cid is None:
                return
            known = self._messages.get(cid, set())
            if known is not None and None not in aliases:
                self._messages[cid] = known | {a for a in aliases if a is not None}
            else:
                self._messages[cid] = None
        else:
            return
        if self._running is None:
            self._running = asyncio.Event()
            self._spawn(self._drain())

    def unsettled(self, conversation_id: str) -> bool:
        """Another tab changed this conversation (it may be deleted) and this tab hasn't
        read it again yet."""
        return (self._all or self._refreshing is None or conversation_id in self._ids
                or conversation_id in self._refreshing)

    @property
    def pending(self) -> bool:
        return bool(self._all or self._ids or self._messages)

    async def _drain(self) -> None:
        try:
            while self.pending:
                every, ids, messages = self._all, self._ids, self._messages
                self._all, self._ids, self._messages = False, set(), {}
                if every or ids:
                    self._refreshing = None if every else ids
                    try:
                        await self.service.refresh_conversations(
                            None if every else sorted(ids))
                    finally:
                        self._refreshing = set()
                for cid, mids in sorted(messages.items()):
                    await self.service.refresh_messages(
                        cid, None if mids is None else sorted(mids))
                self.applied += 1
                if self.on_applied is not None:
                    self.on_applied(self.applied)
        finally:
            running, self._running = self._running, None
            if running is not None:
                running.set()

    async def idle(self) -> None:
        """Wait until every notice so far is applied."""
        while self._running is not None:
            await self._running.wait()
