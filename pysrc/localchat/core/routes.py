"""Routes: `#/chat` is a new, unsaved chat; `#/chat/<id>` an existing conversation."""

from __future__ import annotations

import re

__all__ = ["conversation_route", "parse_route"]

_CHAT = re.compile(r"^#?/chat/([A-Za-z0-9_-]{1,64})/?$")


def parse_route(hash_: str) -> str | None:
    """The conversation id a location hash names, or None for a new chat."""
    match = _CHAT.match(hash_ or "")
    return match.group(1) if match else None


def conversation_route(conversation_id: str | None) -> str:
    return f"#/chat/{conversation_id}" if conversation_id else "#/chat"
