"""Routes: `#/chat` is a new, unsaved chat; `#/chat/<id>` an existing conversation."""

from __future__ import annotations

import re

__all__ = ["ROUTE_ID", "conversation_route", "parse_route"]

ROUTE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What an id in an address may be (core.conversation.key_alias maps other keys)."""

_CHAT = re.compile(rf"^#?/chat/({ROUTE_ID.pattern})/?$")


def parse_route(hash_: str) -> str | None:
    """The conversation id a location hash names, or None for a new chat."""
    match = _CHAT.match(hash_ or "")
    return match.group(1) if match else None


def conversation_route(conversation_id: str | None) -> str:
    return f"#/chat/{conversation_id}" if conversation_id else "#/chat"
