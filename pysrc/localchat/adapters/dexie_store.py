"""The conversation store on IndexedDB, through web/js/db-bridge.js (Dexie).

Implements ports.ConversationStore. Records are decoded with the core's tolerant
decoders: a damaged record is shown as best it can be and never rewritten here.
A record stored under a key that can't be an address (a number) is known to the core
by its alias (`key_alias`); this store remembers each alias it hands out and turns it
back into the stored key on every call, so the record itself never changes.
"""

from __future__ import annotations

from typing import Any

from ..core.conversation import (
    Conversation,
    Message,
    conversation_from_record,
    conversation_to_record,
    key_alias,
    message_from_record,
    message_to_record,
)
from ..core.errors import StoreFailure
from .ffi import call, js_object

__all__ = ["DexieStore"]


class DexieStore:
    def __init__(self, bridge: Any) -> None:
        self._db = bridge
        self._keys: dict[str, Any] = {}
        """Alias -> stored key, for the records whose key isn't its own id."""
        self._taken: dict[str, str] = {}
        """Conversation id -> the bridge's token for its taken records (see
        take_conversation)."""

    def _key(self, alias: str) -> Any:
        return self._keys.get(alias, alias)

    def _seen(self, record: dict[str, Any], *fields: str) -> None:
        for name in fields:
            key = record.get(name)
            alias = key_alias(key)
            if alias is not None and alias != key:
                self._keys[alias] = key

    def _conversation(self, record: Any) -> Conversation | None:
        if not isinstance(record, dict):
            return None
        self._seen(record, "id")
        return conversation_from_record(record)

    def _message(self, record: Any) -> Message | None:
        if not isinstance(record, dict):
            return None
        self._seen(record, "id", "conversationId")
        return message_from_record(record)

    def message_record(self, message: Message) -> dict[str, Any]:
        """The record to store for `message`, under its stored keys."""
        record = message_to_record(message)
        record["id"] = self._key(message.id)
        record["conversationId"] = self._key(message.conversation_id)
        return record

    async def open(self) -> None:
        await call(self._db.open(), StoreFailure)

    async def list_conversations(self) -> list[Conversation]:
        records = await call(self._db.listConversations(), StoreFailure)
        decoded = (self._conversation(r) for r in records)
        return [c for c in decoded if c is not None]

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        record = await call(self._db.getConversation(self._key(conversation_id)), StoreFailure)
        return self._conversation(record)

    async def get_message(self, message_id: str) -> Message | None:
        record = await call(self._db.getMessage(self._key(message_id)), StoreFailure)
        return self._message(record)

    async def get_messages(self, conversation_id: str) -> list[Message]:
        records = await call(self._db.getMessages(self._key(conversation_id)), StoreFailure)
        decoded = (self._message(r) for r in records)
        return [m for m in decoded if m is not None]

    async def add_conversation(self, conversation: Conversation) -> None:
        await call(self._db.addConversation(js_object(conversation_to_record(conversation))),
                   StoreFailure)

    async def add_message(self, message: Message, touch_updated_at: int | None) -> None:
        await call(self._db.addMessage(js_object(self.message_record(message)), touch_updated_at),
                   StoreFailure)

    async def put_message(self, message: Message, touch_updated_at: int | None) -> None:
        await call(self._db.putMessage(js_object(self.message_record(message)), touch_updated_at),
                   StoreFailure)

    async def update_message(self, message: Message) -> None:
        record = self.message_record(message)
        del record["id"]
        await call(self._db.updateMessage(self._key(message.id), js_object(record)),
                   StoreFailure)

    async def delete_message(self, message_id: str) -> None:
        await call(self._db.deleteMessage(self._key(message_id)), StoreFailure)

    async def update_conversation(self, conversation_id: str, changes: dict[str, Any]) -> None:
        await call(self._db.updateConversation(self._key(conversation_id), js_object(changes)),
                   StoreFailure)

    async def delete_conversation(self, conversation_id: str) -> None:
        await call(self._db.deleteConversation(self._key(conversation_id)), StoreFailure)

    async def take_conversation(self, conversation_id: str) -> None:
        token = await call(self._db.takeConversation(self._key(conversation_id)),
                           StoreFailure)
        self._taken[conversation_id] = str(token)

    async def restore_conversation(self, conversation_id: str) -> bool:
        token = self._taken.pop(conversation_id, None)
        if token is None:
            return False
        return bool(await call(self._db.restoreConversation(token), StoreFailure))

    def forget_taken(self, conversation_id: str) -> None:
        token = self._taken.pop(conversation_id, None)
        if token is not None:
            self._db.forgetTaken(token)

    async def import_conversations(self, conversations: list[Conversation],
                                   messages: list[Message]) -> None:
        await call(self._db.importConversations(
            js_object([conversation_to_record(c) for c in conversations]),
            js_object([message_to_record(m) for m in messages])), StoreFailure)

    # --- the download queue (ports.DownloadRecords) --------------------------------

    async def load_downloads(self) -> list[dict[str, Any]]:
        records = await call(self._db.listDownloads(), StoreFailure)
        return [r for r in records if isinstance(r, dict)]

    async def save_download(self, record: dict[str, Any]) -> None:
        await call(self._db.saveDownload(js_object(record)), StoreFailure)

    async def delete_download(self, key: str) -> None:
        await call(self._db.deleteDownload(key), StoreFailure)
