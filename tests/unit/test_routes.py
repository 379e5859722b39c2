"""Location hashes to conversation ids and back."""

from __future__ import annotations

import pytest

from localchat.core.conversation import new_id
from localchat.core.routes import conversation_route, parse_route


@pytest.mark.parametrize("hash_, expected", [
    ("#/chat/abc123", "abc123"),
    ("/chat/abc123", "abc123"),
    ("#/chat/abc123/", "abc123"),
    ("#/chat/A-b_9", "A-b_9"),
    ("#/chat/" + "x" * 64, "x" * 64),
])
def test_conversation_hashes_name_the_id(hash_: str, expected: str) -> None:
    assert parse_route(hash_) == expected


@pytest.mark.parametrize("hash_", [
    "", None, "#", "#/", "#/chat", "#/chat/", "#/chats/abc", "#/chat/abc/def",
    "#/chat/ab c", "#/chat/<script>", "#/chat/abc?x=1", "#/chat/" + "x" * 65,
    "#/chat/../x", "x#/chat/abc",
])
def test_anything_else_is_a_new_chat(hash_: str | None) -> None:
    assert parse_route(hash_) is None  # type: ignore[arg-type]


def test_routes_for_a_conversation_and_a_new_chat() -> None:
    assert conversation_route("abc123") == "#/chat/abc123"
    assert conversation_route(None) == "#/chat"
    assert conversation_route("") == "#/chat"


def test_a_new_id_survives_the_round_trip() -> None:
    cid = new_id()
    assert parse_route(conversation_route(cid)) == cid
