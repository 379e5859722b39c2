"""Hostile import files: each is refused with a clear message or imported safely."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localchat.core.transfer import (
    ID_PATTERN,
    MAX_IMPORT_DEPTH,
    ImportProblem,
    as_copies,
    nesting_depth,
    parse_import,
)


def doc(conversations: Any, **top: Any) -> str:
    return json.dumps({"format": "localchat-export", "version": 1,
                       "conversations": conversations, **top})


def conv(**changes: Any) -> dict[str, Any]:
    return {"id": "a" * 32, "title": "Trip", "model": "smart", "createdAt": 1,
            "updatedAt": 2, "messages": [{"id": "m1", "role": "user", "content": "hi",
                                          "createdAt": 1}], **changes}


DEEP = 100_000

REFUSED: list[tuple[str, str, str]] = [
    ("deep-list", "[" * DEEP + "]" * DEEP, f"nests {DEEP:,} levels deep"),
    ("deep-object", '{"a":' * DEEP + "1" + "}" * DEEP, f"nests {DEEP:,} levels deep"),
    ("deep-unclosed", "[" * DEEP, f"nests {DEEP:,} levels deep"),
    ("deep-inside-a-message", doc([conv(messages=[{"role": "user", "content": "x",
                                                   "extra": json.loads("[" * 60 + "]" * 60)}])]),
     "levels deep"),
    ("just-over-the-limit", "[" * (MAX_IMPORT_DEPTH + 1) + "]" * (MAX_IMPORT_DEPTH + 1),
     f"reads up to {MAX_IMPORT_DEPTH} levels"),
    ("not-json", "{oops", "not valid JSON"),
    ("empty", "", "empty"),
    ("only-spaces", "   \n ", "empty"),
    ("only-bom", "\ufeff", "empty"),
    ("binary", "\x00\x01\x02PK\x03\x04", "not valid JSON"),
    ("nan", "NaN", "not a LocalChat export file"),
    ("a-number", "12", "not a LocalChat export file"),
    ("a-string", '"localchat-export"', "not a LocalChat export file"),
    ("a-list", "[]", "not a LocalChat export file"),
    ("null", "null", "not a LocalChat export file"),
    ("other-json", json.dumps({"hello": 1}), "not a LocalChat export file"),
    ("format-a-list", json.dumps({"format": ["localchat-export"]}), "not a LocalChat"),
    ("no-version", json.dumps({"format": "localchat-export"}), "no version number"),
    ("version-string", doc([], version="1"), "no version number"),
    ("version-bool", doc([], version=True), "no version number"),
    ("future", doc([], version=9), "newer LocalChat"),
    ("conversations-object", doc({"a": 1}), "no list of conversations"),
    ("no-conversations", doc([]), "contains no conversations"),
    ("conversation-a-string", doc(["hi"]), "Conversation 1 is not an object"),
    ("conversation-null", doc([None]), "Conversation 1 is not an object"),
    ("id-missing", doc([conv(id=None)]), "has no id"),
    ("id-a-list", doc([conv(id=[1])]), "has no id"),
    ("id-an-object", doc([conv(id={"$gt": ""})]), "has no id"),
    ("title-a-number", doc([conv(title=5)]), "has no title"),
    ("title-a-list", doc([conv(title=["x"] * 5)]), "has no title"),
    ("model-unknown", doc([conv(model="gpt-9")]), "unknown model “gpt-9”"),
    ("model-a-list", doc([conv(model=[[1]])]), "unknown model “a list”"),
    ("messages-a-string", doc([conv(messages="hi")]), "no list of messages"),
    ("message-a-number", doc([conv(messages=[3])]), "Message 1 of the conversation 1"),
    ("content-missing", doc([conv(messages=[{"role": "user"}])]), "has no text"),
    ("content-a-list", doc([conv(messages=[{"role": "user", "content": ["a"]}])]),
     "has no text"),
    ("role-unknown", doc([conv(messages=[{"role": "wizard", "content": "x"}])]),
     "unknown role “wizard”"),
    ("role-a-list", doc([conv(messages=[{"role": ["user"], "content": "x"}])]),
     "unknown role “a list”"),
    ("role-an-object", doc([conv(messages=[{"role": {"a": "b"}, "content": "x"}])]),
     "unknown role “an object”"),
    ("role-huge", doc([conv(messages=[{"role": "r" * 1_000_000, "content": "x"}])]),
     "unknown role “rrrr"),
    ("title-huge-in-message", doc([conv(title="t" * 1_000_000, model="x")]), "unknown model"),
]


@pytest.mark.parametrize("name, text, reason", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_files_are_refused_in_plain_words(name: str, text: str, reason: str) -> None:
    with pytest.raises(ImportProblem) as caught:
        parse_import(text)
    message = str(caught.value)
    assert reason in message
    assert len(message) < 300, "a message quotes at most a little of the file"
    assert "Error" not in message and "Traceback" not in message


ACCEPTED: list[tuple[str, str]] = [
    ("dotted-ids", doc([conv(id="my.chat.1")])),
    ("long-id", doc([conv(id="x" * 100)])),
    ("quote-bracket-id", doc([conv(id='a"b]')])),
    ("number-id", doc([conv(id=7)])),
    ("upper-hex-id", doc([conv(id="A" * 32)])),
    ("script-id", doc([conv(id="<img src=x onerror=alert(1)>")])),
    ("repeated-ids", doc([conv(), conv()])),
    ("message-ids-odd", doc([conv(messages=[
        {"id": '"]', "role": "user", "content": "a"},
        {"id": '"]', "role": "assistant", "content": "b"},
        {"id": ["x"], "role": "user", "content": "c"}])])),
    ("bom", "\ufeff" + doc([conv()])),
    ("many-conversations", doc([conv(id=f"{i:032x}") for i in range(5_000)])),
    ("huge-content", doc([conv(messages=[{"role": "user", "content": "z" * 5_000_000}])])),
    ("brackets-in-strings", doc([conv(title="[" * 10_000, messages=[
        {"role": "user", "content": '{"\\"[' * 10_000}])])),
    ("exactly-the-limit", doc([conv(messages=[{"role": "user", "content": "x", "extra":
                                               json.loads("[" * 59 + "]" * 59)}])])),
    ("times-wrong", doc([conv(createdAt="yesterday", updatedAt=1e999)])),
]


@pytest.mark.parametrize("name, text", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_odd_files_import_with_ids_of_localchats_own(name: str, text: str) -> None:
    bundle = parse_import(text)
    cids = [c.id for c in bundle.conversations]
    assert all(ID_PATTERN.fullmatch(cid) for cid in cids)
    assert len(set(cids)) == len(cids)
    mids = [m.id for m in bundle.messages]
    assert all(ID_PATTERN.fullmatch(mid) for mid in mids) and len(set(mids)) == len(mids)
    assert {m.conversation_id for m in bundle.messages} <= set(cids)


def test_a_localchat_id_is_kept_and_message_references_follow_new_ids() -> None:
    bundle = parse_import(doc([conv(), conv(id="my.chat.1", messages=[
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])]))
    kept, fresh = bundle.conversations
    assert kept.id == "a" * 32 and fresh.id != "my.chat.1"
    assert [m.content for m in bundle.messages if m.conversation_id == fresh.id] == [
        "one", "two"]
    copies = as_copies(bundle, {kept.id})
    assert copies.conversations[0].id != kept.id
    # A copy is told from the conversation already here; the others keep their titles.
    assert copies.conversations[0].title == f"{kept.title} (imported)"
    assert copies.conversations[1].title == fresh.title
    assert {m.conversation_id for m in copies.messages} == {c.id for c in copies.conversations}


def test_the_depth_scan_honours_strings_and_escapes() -> None:
    assert nesting_depth('[[{"a": "[[[[\\"[[["}]]') == 3
    assert nesting_depth('["\\\\", [[]]]') == 3
    assert nesting_depth("[" * 10 + "]" * 10) == 10
    assert nesting_depth("[" * 100 + "]" * 100) == 100
    assert nesting_depth("") == 0
