"""Export and import of conversations as JSON files, and export as Markdown.

The file format (version 1):

    {"format": "localchat-export", "version": 1, "exportedAt": <epoch ms>,
     "conversations": [{<conversation record>, "messages": [<message record>, …]}, …]}

Records use the same camelCase fields as the store. Import validates everything before
anything is written and says exactly what is wrong; it never overwrites: conversations
whose ids already exist are reported so the app can ask, and are imported as copies
with new ids when the user agrees.

The Markdown export (`markdown_document`) is for reading, not for import: a heading per
conversation, one per message naming its author, model and time (UTC), and each
message's text as written. A code fence a message leaves open (a reply stopped inside a
code block) is closed, so it cannot swallow the messages after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .catalog import model_for_key, spec_for_model_id
from .conversation import (
    BAD_DATE,
    NO_DATE,
    Conversation,
    Message,
    MessageStatus,
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
    "markdown_document",
    "parse_import",
]

FORMAT = "localchat-export"
VERSION = 1
MAX_IMPORT_BYTES = 200 * 1024 * 1024
MAX_IMPORT_DEPTH = 64
"""How deeply an import file may nest arrays and objects. A LocalChat export nests 5
levels. Checked by a scan that does not recurse, before `json.loads` (whose decoder
recurses on the C stack: on Pyodide's small stack 100,000 levels kill the interpreter),
so nothing after the check ever meets a deep structure."""

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""The ids LocalChat makes (core.conversation.new_id). Imported ids that don't fit, or
that clash with stored ones, are replaced."""

_SHOWN = 60
"""At most this many characters of a value from the file are quoted in a message."""


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


def export_filename(conversations: list[Conversation], now_iso_date: str,
                    extension: str = "json") -> str:
    if len(conversations) == 1:
        slug = "".join(ch if ch.isalnum() else "-" for ch in conversations[0].title.lower())
        slug = "-".join(part for part in slug.split("-") if part)[:40] or "chat"
        return f"localchat-{slug}-{now_iso_date}.{extension}"
    return f"localchat-all-{now_iso_date}.{extension}"


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_HEADING_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~!])")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _heading_text(text: str) -> str:
    """Text safe inside a heading line: one line, Markdown's special characters escaped."""
    return _HEADING_SPECIAL.sub(r"\\\1", " ".join(text.split())) or "Untitled"


def close_open_fence(text: str) -> str:
    """The text with a closing fence added if it ends inside a fenced code block
    (CommonMark: a closing fence uses the opener's character, at least as many)."""
    opener: str | None = None
    for line in text.split("\n"):
        match = _FENCE.fullmatch(line.rstrip())
        if match is None:
            continue
        fence, rest = match.group(1), match.group(2)
        if opener is None:
            if not (fence[0] == "`" and "`" in rest):  # a backtick fence's info has none
                opener = fence
        elif fence[0] == opener[0] and len(fence) >= len(opener) and not rest.strip():
            opener = None
    if opener is None:
        return text
    return text + ("" if text.endswith("\n") else "\n") + opener


def _author(m: Message) -> str:
    """Who wrote the message, as heading text (the model id as code: kept verbatim)."""
    if m.role is Role.USER:
        return "You"
    if m.role is Role.ASSISTANT:
        if not m.model:
            return "Assistant"
        spec = spec_for_model_id(m.model)
        model_id = "`" + " ".join(m.model.replace("`", "").split()) + "`"
        return (f"Assistant ({_heading_text(spec.label)}, {model_id})" if spec is not None
                else f"Assistant ({model_id})")
    return "Unknown sender"


def _message_markdown(m: Message) -> str:
    head = _author(m)
    if m.created_at > 0 and NO_DATE not in m.problems and BAD_DATE not in m.problems:
        head += f" · {_when(m.created_at)}"
    if m.status in (MessageStatus.STOPPED, MessageStatus.INTERRUPTED):
        head += f" · {m.status.value}"
    parts = [f"### {head}"]
    body = m.content.strip("\n")
    if body:
        parts.append(close_open_fence(body))
    if m.status is MessageStatus.ERROR and m.error:
        parts.append(f"> The reply failed: {' '.join(m.error.split())}")
    return "\n\n".join(parts)


def markdown_document(conversations: Iterable[Conversation],
                      messages: Mapping[str, Iterable[Message]], now_ms: int) -> str:
    """Conversations as one Markdown document, for reading (see the module's docstring)."""
    chats = list(conversations)
    count = f"{len(chats)} conversation{'s' if len(chats) != 1 else ''}"
    out = ["# LocalChat export", f"Exported {_when(now_ms)} · {count}"]
    for c in chats:
        spec = model_for_key(c.model)
        model = spec.label if spec is not None else c.model
        out.append("---")
        out.append(f"## {_heading_text(c.title)}")
        out.append(f"Model: {_heading_text(model)} · started {_when(c.created_at)}"
                   if c.created_at > 0 else f"Model: {_heading_text(model)}")
        out.extend(_message_markdown(m) for m in messages.get(c.id, ()))
    return "\n\n".join(out) + "\n"


def _shown(value: object) -> str:
    """A value from the file, as quoted in a message: short, never recursing."""
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
    elif isinstance(value, list):
        text = "a list"
    elif isinstance(value, dict):
        text = "an object"
    else:  # pragma: no cover - json.loads makes nothing else
        text = type(value).__name__
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[:_SHOWN + 1])
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


def _where(index: int, record: Mapping[str, Any]) -> str:
    title = record.get("title")
    name = f" (“{_shown(title)}”)" if isinstance(title, str) and title else ""
    return f"conversation {index + 1}{name}"


def nesting_depth(text: str) -> int:
    """How deeply `text` nests `[` and `{` outside JSON strings (escapes honoured),
    without recursing (one regular-expression step per bracket or quote). Not a
    validator: json.loads is."""
    depth = deepest = 0
    in_string = False
    i, end = 0, len(text)
    opener = re.compile(r'["\[\]{}]')
    quote_or_escape = re.compile(r'["\\]')
    while i < end:
        if in_string:
            match = quote_or_escape.search(text, i)
            if match is None:
                break
            i = match.end()
            if match.group() == "\\":
                i += 1  # the escaped character, whatever it is
            else:
                in_string = False
            continue
        match = opener.search(text, i)
        if match is None:
            break
        ch = match.group()
        i = match.end()
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_import(text: str) -> ImportBundle:
    """Validate an export file's text. Raises ImportProblem with a specific message."""
    if len(text) > MAX_IMPORT_BYTES:
        raise ImportProblem("This file is too large to import (over 200 MB).")
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if not text.strip():
        raise ImportProblem("This file is empty.")
    depth = nesting_depth(text)
    if depth > MAX_IMPORT_DEPTH:
        raise ImportProblem(f"This file nests {depth:,} levels deep; LocalChat reads up to "
                            f"{MAX_IMPORT_DEPTH} levels.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportProblem(f"This file is not valid JSON (line {error.lineno}, column "
                            f"{error.colno}: {error.msg}).") from None
    except (RecursionError, ValueError, MemoryError):
        raise ImportProblem("This file is not valid JSON, or too large to read.") from None
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
    roles = {Role.USER.value, Role.ASSISTANT.value}  # an unknown role is not imported
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ImportProblem(f"Conversation {index + 1} is not an object.")
        where = _where(index, record)
        raw_id = record.get("id")
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or raw_id == "":
            raise ImportProblem(f"The {where} has no id.")
        if not isinstance(record.get("title"), str):
            raise ImportProblem(f"The {where} has no title.")
        # Ids are never trusted: one that isn't LocalChat's kind, or repeats, is replaced.
        cid = raw_id if isinstance(raw_id, str) and ID_PATTERN.fullmatch(raw_id) else new_id()
        if cid in seen:
            cid = new_id()
        seen.add(cid)
        conversation = conversation_from_record({**record, "id": cid})
        if conversation is None:  # pragma: no cover - the id is set above
            raise ImportProblem(f"The {where} has no id.")
        raw_model = record.get("model", conversation.model)
        if not isinstance(raw_model, str) or model_for_key(raw_model) is None:
            raise ImportProblem(f"The {where} uses an unknown model “"
                                f"{_shown(record.get('model'))}” "
                                "(expected quick, smart or genius).")
        items = record.get("messages")
        if not isinstance(items, list):
            raise ImportProblem(f"The {where} has no list of messages.")
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise ImportProblem(f"Message {position + 1} of the {where} is not an object.")
            if not isinstance(item.get("content"), str):
                raise ImportProblem(f"Message {position + 1} of the {where} has no text.")
            role = item.get("role")
            if not isinstance(role, str) or role not in roles:
                raise ImportProblem(f"Message {position + 1} of the {where} has an unknown "
                                    f"role “{_shown(role)}”.")
            # Message ids are LocalChat's own business (nothing outside refers to one):
            # every imported message gets a fresh id, so none can clash with a stored one.
            message = message_from_record({**item, "id": new_id(), "conversationId": cid})
            if message is None:  # pragma: no cover - the checks above rule this out
                raise ImportProblem(f"Message {position + 1} of the {where} is damaged.")
            messages.append(message)
        conversations.append(conversation)
    return ImportBundle(tuple(conversations), tuple(messages))


IMPORTED_MARK = "(imported)"


def as_copies(bundle: ImportBundle, ids: set[str]) -> ImportBundle:
    """The bundle with the conversations in `ids` (and their messages) given new ids, and
    titles that tell each copy from the conversation already here ("… (imported)")."""
    renamed = {cid: new_id() for cid in ids}
    conversations = tuple(
        replace(c, id=renamed[c.id], title=f"{c.title} {IMPORTED_MARK}")
        if c.id in renamed else c
        for c in bundle.conversations)
    messages = tuple(
        replace(m, id=new_id(), conversation_id=renamed[m.conversation_id])
        if m.conversation_id in renamed else m
        for m in bundle.messages)
    return ImportBundle(conversations, messages)
