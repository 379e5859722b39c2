"""Conversations and messages: the records the store keeps, decoded defensively.

Records are plain dicts as IndexedDB returns them (camelCase keys, epoch-ms times).
Decoding never raises and never rewrites: a record with missing or odd fields is
shown as best it can be, and the problem is reported.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .catalog import DEFAULT_MODEL_KEY

__all__ = [
    "Conversation",
    "Message",
    "MessageStatus",
    "Role",
    "conversation_from_record",
    "conversation_to_record",
    "message_from_record",
    "message_to_record",
    "new_id",
    "title_from",
]

TITLE_LIMIT = 60


class Role(Enum):
    """Who wrote a message."""

    USER = "user"
    """The person using LocalChat."""
    ASSISTANT = "assistant"
    """The model."""


class MessageStatus(Enum):
    """How a message ended."""

    DONE = "done"
    """Complete."""
    STREAMING = "streaming"
    """The reply is still arriving (or the page closed while it was)."""
    STOPPED = "stopped"
    """The user stopped the reply; the partial text is kept."""
    ERROR = "error"
    """The engine failed; `error` says why."""
    INTERRUPTED = "interrupted"
    """The tab that was streaming the reply went away (reload, closed tab): the text
    saved so far is kept, and the reply can be continued or regenerated. Stored by the
    tab on `pagehide`, or read so from a record still marked streaming whose tab is gone."""


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    model: str
    """Catalog key the conversation asked for (source of truth for its model)."""
    created_at: int
    updated_at: int
    problems: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    role: Role
    content: str
    model: str | None
    """WebLLM model id that wrote an assistant message; None for user messages."""
    created_at: int
    status: MessageStatus = MessageStatus.DONE
    error: str | None = None

    def with_content(self, content: str, status: MessageStatus) -> Message:
        return replace(self, content=content, status=status)


def new_id() -> str:
    """A random (version 4) UUID as 32 hex digits, like `uuid.uuid4().hex` without the
    `uuid` import at boot."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def title_from(text: str) -> str:
    """A sidebar title from the first user message: first line, trimmed, shortened."""
    first = " ".join(text.strip().split("\n", 1)[0].split())
    if not first:
        return "New chat"
    return first if len(first) <= TITLE_LIMIT else first[: TITLE_LIMIT - 1].rstrip() + "…"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    return None


def conversation_from_record(record: dict[str, Any]) -> Conversation | None:
    """Decode a stored conversation; None only if it has no usable id."""
    cid = record.get("id")
    if not isinstance(cid, str) or not cid:
        return None
    problems = []
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append("missing title")
        title = "Untitled chat"
    model = record.get("model")
    if not isinstance(model, str) or not model:
        problems.append("missing model")
        model = DEFAULT_MODEL_KEY
    created = _int(record.get("createdAt"))
    updated = _int(record.get("updatedAt"))
    if created is None:
        problems.append("missing createdAt")
    if updated is None:
        problems.append("missing updatedAt")
    created = created if created is not None else (updated or 0)
    updated = updated if updated is not None else created
    return Conversation(cid, title, model, created, updated, tuple(problems))


def conversation_to_record(c: Conversation) -> dict[str, Any]:
    return {"id": c.id, "title": c.title, "model": c.model, "createdAt": c.created_at,
            "updatedAt": c.updated_at}


def message_from_record(record: dict[str, Any]) -> Message | None:
    mid, cid = record.get("id"), record.get("conversationId")
    if not isinstance(mid, str) or not isinstance(cid, str):
        return None
    try:
        role = Role(record.get("role"))
    except ValueError:
        return None
    content = record.get("content")
    try:
        status = MessageStatus(record.get("status", "done"))
    except ValueError:
        status = MessageStatus.DONE
    model = record.get("model")
    error = record.get("error")
    return Message(mid, cid, role, content if isinstance(content, str) else "",
                   model if isinstance(model, str) else None,
                   _int(record.get("createdAt")) or 0, status,
                   error if isinstance(error, str) else None)


def message_to_record(m: Message) -> dict[str, Any]:
    record: dict[str, Any] = {"id": m.id, "conversationId": m.conversation_id,
                              "role": m.role.value, "content": m.content,
                              "createdAt": m.created_at, "status": m.status.value}
    if m.model is not None:
        record["model"] = m.model
    if m.error is not None:
        record["error"] = m.error
    return record
