"""Titles, and stored records decoded defensively (and encoded back)."""

from __future__ import annotations

import json
import uuid
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from localchat.core.catalog import DEFAULT_MODEL_KEY
from localchat.core.conversation import (
    TITLE_LIMIT,
    Conversation,
    Message,
    MessageStatus,
    Role,
    conversation_from_record,
    conversation_to_record,
    message_from_record,
    message_to_record,
    new_id,
    title_from,
)
from localchat.core.transfer import ImportProblem, parse_import

# --- titles -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, title", [
    ("Hello", "Hello"),
    ("   Plan   a\ttrip  ", "Plan a trip"),
    ("first line\nsecond line", "first line"),
    ("\n\n   \n  after blanks\nmore", "after blanks"),
    ("windows line\r\nnext", "windows line"),
    ("", "New chat"),
    ("  \n\t \n ", "New chat"),
])
def test_title_is_the_trimmed_first_line(text: str, title: str) -> None:
    assert title_from(text) == title


def test_title_of_exactly_the_limit_is_kept() -> None:
    text = "a" * TITLE_LIMIT
    assert title_from(text) == text


def test_long_title_is_cut_to_the_limit_with_an_ellipsis() -> None:
    text = "b" * (TITLE_LIMIT + 1)
    title = title_from(text)
    assert len(title) == TITLE_LIMIT == 60
    assert title == "b" * 59 + "…"


def test_cut_title_does_not_end_in_a_space_before_the_ellipsis() -> None:
    text = "a" * 58 + " " + "b" * 10
    assert title_from(text) == "a" * 58 + "…"


# --- conversations ------------------------------------------------------------------------

FULL_CONVERSATION = {"id": "c1", "title": "Trip", "model": "quick", "createdAt": 1000,
                     "updatedAt": 2000}


def test_a_complete_conversation_record_decodes_without_problems() -> None:
    c = conversation_from_record(FULL_CONVERSATION)
    assert c == Conversation("c1", "Trip", "quick", 1000, 2000)
    assert c.problems == ()


@pytest.mark.parametrize("cid", [None, "", 42, ["c1"]])
def test_a_conversation_without_a_usable_id_is_skipped(cid: Any) -> None:
    assert conversation_from_record({**FULL_CONVERSATION, "id": cid}) is None


def test_a_conversation_with_no_id_key_is_skipped() -> None:
    record = {k: v for k, v in FULL_CONVERSATION.items() if k != "id"}
    assert conversation_from_record(record) is None


@pytest.mark.parametrize("title", [None, "", "   ", 7])
def test_missing_title_is_shown_as_untitled(title: Any) -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "title": title})
    assert c is not None
    assert c.title == "Untitled chat"
    assert c.problems == ("missing title",)


@pytest.mark.parametrize("model", [None, "", 3])
def test_missing_model_uses_the_default(model: Any) -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "model": model})
    assert c is not None
    assert c.model == DEFAULT_MODEL_KEY == "smart"
    assert c.problems == ("missing model",)


def test_an_unknown_model_is_kept_as_stored() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "model": "gpt-9"})
    assert c is not None
    assert c.model == "gpt-9"
    assert c.problems == ()


def test_missing_created_at_falls_back_to_updated_at() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "createdAt": None})
    assert (c.created_at, c.updated_at) == (2000, 2000)
    assert c.problems == ("missing createdAt",)


def test_missing_updated_at_falls_back_to_created_at() -> None:
    c = conversation_from_record({"id": "c1", "title": "T", "model": "smart",
                                  "createdAt": 1000})
    assert (c.created_at, c.updated_at) == (1000, 1000)
    assert c.problems == ("missing updatedAt",)


@pytest.mark.parametrize("bad", ["1000", True, float("nan"), {"t": 1}])
def test_times_of_the_wrong_type_are_reported(bad: Any) -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "createdAt": bad, "updatedAt": bad})
    assert (c.created_at, c.updated_at) == (0, 0)
    assert c.problems == ("missing createdAt", "missing updatedAt")


def test_float_times_are_truncated_to_int() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "createdAt": 1500.9})
    assert c.created_at == 1500
    assert isinstance(c.created_at, int)


def test_a_record_of_nothing_but_an_id_lists_all_problems() -> None:
    c = conversation_from_record({"id": "only"})
    assert c == Conversation("only", "Untitled chat", "smart", 0, 0)
    assert c.problems == ("missing title", "missing model", "missing createdAt",
                          "missing updatedAt")


def test_decoding_does_not_change_the_record() -> None:
    record = {"id": "c1", "title": "", "extra": [1]}
    before = json.dumps(record, sort_keys=True)
    conversation_from_record(record)
    assert json.dumps(record, sort_keys=True) == before


def test_conversation_round_trip() -> None:
    c = Conversation(new_id(), "Trip planning", "genius", 1_700_000_000_000, 1_700_000_500_000)
    record = conversation_to_record(c)
    assert record == {"id": c.id, "title": "Trip planning", "model": "genius",
                      "createdAt": 1_700_000_000_000, "updatedAt": 1_700_000_500_000}
    assert conversation_from_record(record) == c


def test_conversations_are_immutable() -> None:
    c = Conversation("c1", "T", "smart", 1, 2)
    with pytest.raises(FrozenInstanceError):
        c.title = "other"  # type: ignore[misc]


def test_an_infinite_time_is_reported_not_raised() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "createdAt": float("inf")})
    assert c is not None
    assert "missing createdAt" in c.problems


def test_import_of_an_out_of_range_time_does_not_crash() -> None:
    text = ('{"format": "localchat-export", "version": 1, "conversations": [{"id": "c1", '
            '"title": "T", "model": "smart", "createdAt": 1e999, "updatedAt": 1, '
            '"messages": []}]}')
    try:
        bundle = parse_import(text)
    except ImportProblem:
        return  # refusing the file in plain words is fine too
    assert len(bundle.conversations) == 1  # "c1" is not a LocalChat id: it gets a fresh one


# --- messages -------------------------------------------------------------------------------

FULL_MESSAGE = {"id": "m1", "conversationId": "c1", "role": "assistant", "content": "Hi!",
                "model": "Llama-3.2-1B-Instruct-q4f16_1-MLC", "createdAt": 5000,
                "status": "stopped", "error": None}


def test_a_complete_message_record_decodes() -> None:
    m = message_from_record(FULL_MESSAGE)
    assert m == Message("m1", "c1", Role.ASSISTANT, "Hi!", "Llama-3.2-1B-Instruct-q4f16_1-MLC",
                        5000, MessageStatus.STOPPED, None)


@pytest.mark.parametrize("changes", [
    {"id": None}, {"id": 1}, {"conversationId": None}, {"conversationId": 7},
    {"role": "system"}, {"role": None}, {"role": ["user"]}, {"role": "User"},
])
def test_messages_without_id_conversation_or_known_role_are_skipped(
        changes: dict[str, Any]) -> None:
    assert message_from_record({**FULL_MESSAGE, **changes}) is None


def test_a_minimal_user_message_gets_defaults() -> None:
    m = message_from_record({"id": "m2", "conversationId": "c1", "role": "user"})
    assert m == Message("m2", "c1", Role.USER, "", None, 0, MessageStatus.DONE, None)


@pytest.mark.parametrize("field, bad, attribute, value", [
    ("content", 42, "content", ""),
    ("content", None, "content", ""),
    ("status", "exploded", "status", MessageStatus.DONE),
    ("status", None, "status", MessageStatus.DONE),
    ("model", 12, "model", None),
    ("error", {"why": 1}, "error", None),
    ("createdAt", "yesterday", "created_at", 0),
    ("createdAt", False, "created_at", 0),
])
def test_message_fields_of_the_wrong_type_are_tolerated(field: str, bad: Any, attribute: str,
                                                        value: Any) -> None:
    m = message_from_record({**FULL_MESSAGE, field: bad})
    assert m is not None
    assert getattr(m, attribute) == value


def test_user_message_record_has_no_model_or_error() -> None:
    m = Message("m1", "c1", Role.USER, "question", None, 10)
    assert message_to_record(m) == {"id": "m1", "conversationId": "c1", "role": "user",
                                    "content": "question", "createdAt": 10, "status": "done"}


def test_failed_assistant_message_record_keeps_model_and_error() -> None:
    m = Message("m1", "c1", Role.ASSISTANT, "", "model-x", 10, MessageStatus.ERROR, "GPU lost")
    record = message_to_record(m)
    assert record["model"] == "model-x"
    assert record["error"] == "GPU lost"
    assert record["status"] == "error"


@pytest.mark.parametrize("status", list(MessageStatus))
@pytest.mark.parametrize("role", list(Role))
def test_message_round_trip(role: Role, status: MessageStatus) -> None:
    model = "Llama-3.2-3B-Instruct-q4f32_1-MLC" if role is Role.ASSISTANT else None
    error = "it broke" if status is MessageStatus.ERROR else None
    m = Message(new_id(), new_id(), role, "text <b>", model, 1_700_000_000_123, status, error)
    assert message_from_record(message_to_record(m)) == m


def test_with_content_replaces_text_and_status_only() -> None:
    m = Message("m1", "c1", Role.ASSISTANT, "", "x", 10, MessageStatus.STREAMING)
    done = m.with_content("All done", MessageStatus.DONE)
    assert done == Message("m1", "c1", Role.ASSISTANT, "All done", "x", 10, MessageStatus.DONE)
    assert m.content == ""


def test_new_ids_are_distinct_hex() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_new_ids_are_version_4_uuids() -> None:
    for _ in range(200):
        value = uuid.UUID(hex=new_id())
        assert value.version == 4
        assert value.variant == uuid.RFC_4122
