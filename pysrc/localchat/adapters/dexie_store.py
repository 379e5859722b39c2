"""The conversation store on IndexedDB, through web/js/db-bridge.js (Dexie).

Implements ports.ConversationStore. Records are decoded with the core's tolerant
decoders: a damaged record is shown as best it can be and never rewritten here.
"""

from __future__ import annotations

from typing import Any

from ..core.conversation import (
    Conversation,
    Message,
    conversation_from_record,
    conversation_to_record,
    message_from_record,
    message_to_record,
)
from ..core.errors import StoreFailure
from .ffi import call, js_object

__all__ = ["DexieStore"]


class DexieStore:
    def __init__(self, bridge: Any) -> None:
        self._db = bridge

    async def open(self) -> None:
        await call(self._db.open(), StoreFailure)

    async def list_conversations(self) -> list[Conversation]:
        records = await call(self._db.listConversations(), StoreFailure)
        decoded = (conversation_from_record(r) for r in records if isinstance(r, dict))
        return [c for c in decoded if c is not None]

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        record = await call(self._db.getConversation(conversation_id), StoreFailure)
        return conversation_from_record(record) if isinstance(record, dict) else None

    async def get_message(self, message_id: str) -> Message | None:
        record = await call(self._db.getMessage(message_id), StoreFailure)
        return message_from_record(record) if isinstance(record, dict) else None

    async def get_messages(self, conversation_id: str) -> list[Message]:
        records = await call(self._db.getMessages(conversation_id), StoreFailure)
        decoded = (message_from_record(r) for r in records if isinstance(r, dict))
        return [m for m in decoded if m is not None]

    async def add_conversation(self, conversation: Conversation) -> None:
        await call(self._db.addConversation(js_object(conversation_to_record(conversation))),
                   StoreFailure)

    async def add_message(self, message: Message, touch_updated_at: int | None) -> None:
        await call(self._db.addMessage(js_object(message_to_record(message)), touch_updated_at),
                   StoreFailure)

    async def put_message(self, message: Message, touch_updated_at: int | None) -> None:
        await call(self._db.putMessage(js_object(message_to_record(message)), touch_updated_at),
                   StoreFailure)

    async def update_message(self, message: Message) -> None:
        record = message_to_record(message)
        del record["id"]
        await call(self._db.updateMessage(message.id, js_object(record)), StoreFailure)

    async def delete_message(self, message_id: str) -> None:
        await call(self._db.deleteMessage(message_id), StoreFailure)

    async def update_conversation(self, conversation_id: str, changes: dict[str, Any]) -> None:
        await call(self._db.updateConversation(conversation_id, js_object(changes)),
                   StoreFailure)

    async def delete_conversation(self, conversation_id: str) -> None:
        await call(self._db.deleteConversation(conversation_id), StoreFailure)

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
