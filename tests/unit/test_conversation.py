"""Titles, and stored records decoded defensively (and encoded back)."""

from __future__ import annotations

import json
import uuid
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from localchat.core.catalog import DEFAULT_MODEL_KEY
from localchat.core.conversation import (
    BAD_DATE,
    NO_DATE,
    NO_TEXT,
    NOT_TEXT,
    TITLE_LIMIT,
    Conversation,
    Message,
    MessageStatus,
    Role,
    conversation_from_record,
    conversation_to_record,
    key_alias,
    message_from_record,
    message_to_record,
    new_id,
    title_from,
)
from localchat.core.routes import conversation_route, parse_route
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


@pytest.mark.parametrize("cid", [None, "", True, ["c1"], {"id": 1}, float("nan")])
def test_a_conversation_without_a_usable_id_is_skipped(cid: Any) -> None:
    assert conversation_from_record({**FULL_CONVERSATION, "id": cid}) is None


@pytest.mark.parametrize("cid, alias", [(42, "__n42"), (-7, "__n-7"), (0, "__n0")])
def test_a_numeric_id_is_shown_under_a_readable_alias(cid: Any, alias: str) -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "id": cid})
    assert c is not None
    assert c.id == alias == key_alias(cid)
    assert c.problems == ("a number as its id",)


@pytest.mark.parametrize("key", [1.5, 10**80, "my.chat.1", "a\"b]", "x" * 65, "__n42",
                                 "é", "__"])
def test_keys_that_cant_be_an_address_get_a_stable_route_safe_alias(key: Any) -> None:
    alias = key_alias(key)
    assert alias is not None and alias == key_alias(key)
    assert parse_route(conversation_route(alias)) == alias
    assert alias != key and alias.startswith("__")


def test_aliases_of_different_keys_differ_and_never_equal_a_plain_id() -> None:
    keys: list[Any] = [42, "42", "__n42", 42.5, "my.chat", "my.chat.", 10**80, 10**80 + 1]
    aliases = [key_alias(k) for k in keys]
    assert len(set(aliases)) == len(keys)
    assert key_alias("c1") == "c1"
    assert key_alias("a" * 64) == "a" * 64


def test_an_odd_string_id_is_reported() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "id": "my.chat.1"})
    assert c is not None
    assert c.problems == ("an id that can't be used in an address",)


def test_a_conversation_with_no_id_key_is_skipped() -> None:
    record = {k: v for k, v in FULL_CONVERSATION.items() if k != "id"}
    assert conversation_from_record(record) is None


def test_a_numeric_title_is_shown_as_text() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "title": 7})
    assert c is not None
    assert (c.title, c.problems) == ("7", ("title not text",))


@pytest.mark.parametrize("title", [None, "", "   ", True, ["T"]])
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


@pytest.mark.parametrize("bad", ["1000", True, float("nan"), {"t": 1}, -1, -8.64e15,
                                 8.64e15, 253_402_300_800_000])
def test_unusable_times_are_reported(bad: Any) -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "createdAt": bad, "updatedAt": bad})
    assert (c.created_at, c.updated_at) == (0, 0)
    assert c.problems == ("unusable createdAt", "unusable updatedAt")


def test_a_time_up_to_year_9999_is_kept() -> None:
    c = conversation_from_record({**FULL_CONVERSATION, "updatedAt": 253_402_300_799_999})
    assert c is not None
    assert (c.updated_at, c.problems) == (253_402_300_799_999, ())


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
    assert "unusable createdAt" in c.problems


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
    {"id": None}, {"id": True}, {"conversationId": None}, {"conversationId": [7]},
])
def test_messages_without_a_usable_id_or_conversation_are_skipped(
        changes: dict[str, Any]) -> None:
    assert message_from_record({**FULL_MESSAGE, **changes}) is None


def test_numeric_message_and_conversation_ids_are_aliased() -> None:
    m = message_from_record({**FULL_MESSAGE, "id": 1, "conversationId": 7})
    assert m is not None
    assert (m.id, m.conversation_id, m.problems) == ("__n1", "__n7", ())


@pytest.mark.parametrize("role", ["system", None, ["user"], "User", 3, "unknown"])
def test_a_message_of_an_unknown_role_is_kept_with_a_note(role: Any) -> None:
    m = message_from_record({**FULL_MESSAGE, "role": role})
    assert m is not None
    assert m.role is Role.UNKNOWN
    assert len(m.problems) == 1 and m.problems[0].startswith("has an unknown sender (“")


def test_a_minimal_user_message_gets_defaults() -> None:
    m = message_from_record({"id": "m2", "conversationId": "c1", "role": "user"})
    assert m == Message("m2", "c1", Role.USER, "", None, 0, MessageStatus.DONE, None)
    assert m.problems == (NO_TEXT, NO_DATE)


@pytest.mark.parametrize("field, bad, attribute, value, problem", [
    ("content", 42, "content", "42", NOT_TEXT),
    ("content", {"a": [1, "é"]}, "content", '{"a": [1, "é"]}', NOT_TEXT),
    ("content", None, "content", "", NO_TEXT),
    ("status", "exploded", "status", MessageStatus.DONE, "has an unknown status (“exploded”)"),
    ("status", None, "status", MessageStatus.DONE, "has an unknown status (“null”)"),
    ("model", 12, "model", None, None),
    ("error", {"why": 1}, "error", None, None),
    ("createdAt", "yesterday", "created_at", 0, BAD_DATE),
    ("createdAt", False, "created_at", 0, BAD_DATE),
    ("createdAt", float("nan"), "created_at", 0, BAD_DATE),
    ("createdAt", 8.64e15, "created_at", 0, BAD_DATE),
    ("createdAt", None, "created_at", 0, NO_DATE),
])
def test_message_fields_of_the_wrong_type_are_tolerated(field: str, bad: Any, attribute: str,
                                                        value: Any, problem: str | None) -> None:
    m = message_from_record({**FULL_MESSAGE, field: bad})
    assert m is not None
    assert getattr(m, attribute) == value
    assert m.problems == ((problem,) if problem else ())


def test_a_message_without_a_date_is_written_back_without_one() -> None:
    record = {k: v for k, v in FULL_MESSAGE.items() if k != "createdAt"}
    m = message_from_record(record)
    assert m is not None
    assert "createdAt" not in message_to_record(m)


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
@pytest.mark.parametrize("role", [Role.USER, Role.ASSISTANT])
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
