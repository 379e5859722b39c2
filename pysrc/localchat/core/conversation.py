"""Conversations and messages: the records the store keeps, decoded defensively.

Records are plain dicts as IndexedDB returns them (camelCase keys, epoch-ms times).
Decoding never raises and never rewrites: a record with missing or odd fields is
shown as best it can be, and the problem is reported (in `problems`, which the views
show as a discreet note). Nothing the store holds under a string or number key is
dropped: a key that can't be used in an address (a number, `my.chat.1`) is shown under
a route-safe alias (`key_alias`), which the store adapter maps back to the stored key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .catalog import DEFAULT_MODEL_KEY
from .routes import ROUTE_ID

__all__ = [
    "CONTINUABLE",
    "FINISHED",
    "Conversation",
    "Message",
    "MessageStatus",
    "Role",
    "conversation_from_record",
    "conversation_to_record",
    "key_alias",
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
    UNKNOWN = "unknown"
    """A stored role this version doesn't know ("system", a number…): the message is
    shown with a note, never sent to the model and never written back."""


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
    CUT = "cut"
    """The reply reached the longest reply the engine may write (its `finish_reason` was
    "length": the maximum reply length, or the context window was full); Continue writes
    on."""


CONTINUABLE = frozenset({MessageStatus.INTERRUPTED, MessageStatus.STOPPED, MessageStatus.CUT})
"""A last reply in one of these states can be continued (the model writes on)."""
FINISHED = frozenset({MessageStatus.DONE, *CONTINUABLE})
"""A reply in one of these states has its text: it is shown formatted and can be
regenerated."""


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
    problems: tuple[str, ...] = field(default=(), compare=False)
    """What was odd in the stored record, as phrases that follow "This message"
    (`NO_DATE`, `NOT_TEXT`, …); empty for a sound record."""

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


LATEST_TIME_MS = 253_402_300_799_999
"""The end of year 9999: later times (JavaScript allows up to year 275760) are taken
as damage, as are negative ones."""

NO_DATE = "has no date"
BAD_DATE = "has a date that can't be right"
NO_TEXT = "has no text"
NOT_TEXT = "holds something other than text (shown as stored)"
"""The message's content is not a string: its JSON is shown as plain text."""

_ALIAS_PREFIX = "__"
"""Aliases start with it, and a stored string id that does is aliased too, so an alias
never equals a stored id."""


def key_alias(key: Any) -> str | None:
    """The id the app uses for a record stored under `key`: the key itself when it is a
    string that fits an address (`#/chat/<id>`), else a route-safe alias derived from
    it, always the same for the same key; None when `key` is neither a string nor a
    number (IndexedDB also allows dates, binary and arrays: not supported)."""
    if isinstance(key, str) and key:
        if ROUTE_ID.fullmatch(key) and not key.startswith(_ALIAS_PREFIX):
            return key
        kind = "s"
    elif isinstance(key, int) and not isinstance(key, bool):
        text = str(key)
        if len(text) <= 60:
            return f"{_ALIAS_PREFIX}n{text}"
        kind = "i"
    elif isinstance(key, float) and math.isfinite(key):
        kind = "f"
    else:
        return None
    digest = hashlib.sha256(f"{kind}:{key!r}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{_ALIAS_PREFIX}{kind}{digest[:24]}"


def _time(value: Any) -> tuple[int | None, bool]:
    """(epoch ms, present): the time if it is a plausible one; `present` says whether
    the record had a value there at all (to tell "missing" from "unusable")."""
    present = value is not None
    if isinstance(value, bool):
        return None, present
    if isinstance(value, (int, float)) and math.isfinite(value) \
            and 0 <= value <= LATEST_TIME_MS:
        return int(value), present
    return None, present


def conversation_from_record(record: dict[str, Any]) -> Conversation | None:
    """Decode a stored conversation; None only if its id is neither a string nor a
    number (see `key_alias`)."""
    raw_id = record.get("id")
    cid = key_alias(raw_id)
    if cid is None:
        return None
    problems = []
    if isinstance(raw_id, (int, float)):
        problems.append("a number as its id")
    elif cid != raw_id:
        problems.append("an id that can't be used in an address")
    title = record.get("title")
    if isinstance(title, (int, float)) and not isinstance(title, bool):
        problems.append("title not text")
        title = str(title)
    elif not isinstance(title, str) or not title.strip():
        problems.append("missing title")
        title = "Untitled chat"
    model = record.get("model")
    if not isinstance(model, str) or not model:
        problems.append("missing model")
        model = DEFAULT_MODEL_KEY
    created, created_present = _time(record.get("createdAt"))
    updated, updated_present = _time(record.get("updatedAt"))
    if created is None:
        problems.append("unusable createdAt" if created_present else "missing createdAt")
    if updated is None:
        problems.append("unusable updatedAt" if updated_present else "missing updatedAt")
    # Sorted by updatedAt (newest first): a conversation with no usable time at all
    # goes to the end of the list.
    created = created if created is not None else (updated or 0)
    updated = updated if updated is not None else created
    return Conversation(cid, title, model, created, updated, tuple(problems))


def conversation_to_record(c: Conversation) -> dict[str, Any]:
    return {"id": c.id, "title": c.title, "model": c.model, "createdAt": c.created_at,
            "updatedAt": c.updated_at}


def message_from_record(record: dict[str, Any]) -> Message | None:
    """Decode a stored message; None only if its id or its conversation's id is neither
    a string nor a number. A message with no usable date gets time 0 (it sorts first in
    its thread, in stored order); an unknown role or status is kept as a problem."""
    mid, cid = key_alias(record.get("id")), key_alias(record.get("conversationId"))
    if mid is None or cid is None:
        return None
    problems = []
    raw_role = record.get("role")
    try:
        role = Role(raw_role)
        if role is Role.UNKNOWN:
            raise ValueError(raw_role)
    except ValueError:
        role = Role.UNKNOWN
        problems.append(f"has an unknown sender (“{_shown(raw_role)}”)")
    content = record.get("content")
    if content is None:
        problems.append(NO_TEXT)
        content = ""
    elif not isinstance(content, str):
        problems.append(NOT_TEXT)
        content = _shown(content)
    raw_status = record.get("status", "done")
    try:
        status = MessageStatus(raw_status)
    except ValueError:
        status = MessageStatus.DONE
        problems.append(f"has an unknown status (“{_shown(raw_status)}”)")
    created, created_present = _time(record.get("createdAt"))
    if created is None:
        problems.append(BAD_DATE if created_present else NO_DATE)
    model = record.get("model")
    error = record.get("error")
    return Message(mid, cid, role, content, model if isinstance(model, str) else None,
                   created or 0, status, error if isinstance(error, str) else None,
                   tuple(problems))


def _shown(value: Any) -> str:
    """A stored value as text for a note or a bubble (JSON where it can be)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        return repr(value)


def message_to_record(m: Message) -> dict[str, Any]:
    record: dict[str, Any] = {"id": m.id, "conversationId": m.conversation_id,
                              "role": m.role.value, "content": m.content,
                              "createdAt": m.created_at, "status": m.status.value}
    if NO_DATE in m.problems or BAD_DATE in m.problems:
        del record["createdAt"]  # the stored one (or its absence) stays as it is
    if m.model is not None:
        record["model"] = m.model
    if m.error is not None:
        record["error"] = m.error
    return record
