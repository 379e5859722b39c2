"""Export and import of conversations as JSON files.

The file format (version 1):

    {"format": "localchat-export", "version": 1, "exportedAt": <epoch ms>,
     "conversations": [{<conversation record>, "messages": [<message record>, …]}, …]}

Records use the same camelCase fields as the store. Import validates everything before
anything is written and says exactly what is wrong; it never overwrites: conversations
whose ids already exist are reported so the app can ask, and are imported as copies
with new ids when the user agrees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .catalog import model_for_key
from .conversation import (
    Conversation,
    Message,
    Role,
    conversation_from_record,
    conversation_to_record,
    message_from_record,
    message_to_record,
    new_id,
)

__all__ = [
    "FORMAT",
    "ImportBundle",
    "ImportProblem",
    "as_copies",
    "export_document",
    "export_filename",
    "parse_import",
]

FORMAT = "localchat-export"
VERSION = 1
MAX_IMPORT_BYTES = 200 * 1024 * 1024


class ImportProblem(Exception):
    """The file cannot be imported; the message says why, in plain words."""


@dataclass(frozen=True)
class ImportBundle:
    conversations: tuple[Conversation, ...]
    messages: tuple[Message, ...]

    @property
    def message_count(self) -> int:
        return len(self.messages)


def export_document(conversations: Iterable[Conversation],
                    messages: Mapping[str, Iterable[Message]], now_ms: int) -> dict[str, Any]:
    out = []
    for c in conversations:
        record = conversation_to_record(c)
        record["messages"] = [message_to_record(m) for m in messages.get(c.id, ())]
        out.append(record)
    return {"format": FORMAT, "version": VERSION, "exportedAt": now_ms, "conversations": out}


def export_filename(conversations: list[Conversation], now_iso_date: str) -> str:
    if len(conversations) == 1:
        slug = "".join(ch if ch.isalnum() else "-" for ch in conversations[0].title.lower())
        slug = "-".join(part for part in slug.split("-") if part)[:40] or "chat"
        return f"localchat-{slug}-{now_iso_date}.json"
    return f"localchat-all-{now_iso_date}.json"


def _where(index: int, record: Mapping[str, Any]) -> str:
    title = record.get("title")
    name = f" (“{title}”)" if isinstance(title, str) and title else ""
    return f"conversation {index + 1}{name}"


def parse_import(text: str) -> ImportBundle:
    """Validate an export file's text. Raises ImportProblem with a specific message."""
    if len(text) > MAX_IMPORT_BYTES:
        raise ImportProblem("This file is too large to import (over 200 MB).")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportProblem(f"This file is not valid JSON (line {error.lineno}, column "
                            f"{error.colno}: {error.msg}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportProblem("This is not a LocalChat export file "
                            "(it has no \"format\": \"localchat-export\").")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ImportProblem("This export file has no version number.")
    if version > VERSION:
        raise ImportProblem(f"This file was exported by a newer LocalChat (format version "
                            f"{version}); this version reads version {VERSION}.")
    records = data.get("conversations")
    if not isinstance(records, list):
        raise ImportProblem("This export file has no list of conversations.")
    if not records:
        raise ImportProblem("This export file contains no conversations.")
    conversations: list[Conversation] = []
    messages: list[Message] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ImportProblem(f"Conversation {index + 1} is not an object.")
        where = _where(index, record)
        conversation = conversation_from_record(record)
        if conversation is None or not isinstance(record.get("id"), str):
            raise ImportProblem(f"The {where} has no id.")
        if conversation.id in seen:
            raise ImportProblem(f"The {where} repeats the id {conversation.id}.")
        seen.add(conversation.id)
        if not isinstance(record.get("title"), str):
            raise ImportProblem(f"The {where} has no title.")
        if model_for_key(conversation.model) is None:
            raise ImportProblem(f"The {where} uses an unknown model “{conversation.model}” "
                                "(expected quick, smart or genius).")
        items = record.get("messages")
        if not isinstance(items, list):
            raise ImportProblem(f"The {where} has no list of messages.")
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise ImportProblem(f"Message {position + 1} of the {where} is not an object.")
            fixed = {**item, "conversationId": conversation.id}
            if not isinstance(fixed.get("content"), str):
                raise ImportProblem(f"Message {position + 1} of the {where} has no text.")
            if fixed.get("role") not in {Role.USER.value, Role.ASSISTANT.value}:
                raise ImportProblem(f"Message {position + 1} of the {where} has an unknown "
                                    f"role “{fixed.get('role')}”.")
            if not isinstance(fixed.get("id"), str):
                fixed["id"] = new_id()
            message = message_from_record(fixed)
            if message is None:  # pragma: no cover - the checks above rule this out
                raise ImportProblem(f"Message {position + 1} of the {where} is damaged.")
            messages.append(message)
        conversations.append(conversation)
    return ImportBundle(tuple(conversations), tuple(messages))


def as_copies(bundle: ImportBundle, ids: set[str]) -> ImportBundle:
    """The bundle with the conversations in `ids` (and their messages) given new ids."""
    renamed = {cid: new_id() for cid in ids}
    conversations = tuple(replace(c, id=renamed.get(c.id, c.id)) for c in bundle.conversations)
    messages = tuple(
        replace(m, id=new_id(), conversation_id=renamed[m.conversation_id])
        if m.conversation_id in renamed else m
        for m in bundle.messages)
    return ImportBundle(conversations, messages)
