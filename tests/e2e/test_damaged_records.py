"""Nothing stored is hidden: damaged records, written with the raw IndexedDB API as some
other version or tool might have left them, are shown with a discreet note, sorted
sensibly, usable (open, rename, export, delete), and never rewritten unless the user
changes them (then only the field changed). A reply nested beyond Markdown's limit shows
its text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage

NESTING_NOTE = "Shown as plain text: it is nested too deeply to format."  # ui/markdown.py
SMART = "Llama-3.2-3B-Instruct-q4f16_1-MLC"

# Written in JavaScript, not passed from Python: NaN, numeric keys and odd values must
# reach IndexedDB exactly as a damaged store would hold them.
DAMAGED_CONVERSATIONS = """() => [
    {id: "sound", title: "Sound chat", model: "smart", createdAt: 5000, updatedAt: 5000},
    {id: 42, title: "Numbered chat", model: "smart", createdAt: 1000, updatedAt: 1000},
    {id: "c-nan", title: "No-time chat", model: "smart", createdAt: NaN, updatedAt: NaN},
    {id: "c-far", title: "Far-future chat", model: "smart", createdAt: 8.64e15,
     updatedAt: 8.64e15},
    {id: "c-neg", title: "Negative chat", model: "smart", createdAt: -5, updatedAt: -5},
    {id: "c-str", title: "Stringly chat", model: "smart", createdAt: "yesterday",
     updatedAt: "today"},
    {id: "c-untitled", model: "smart", createdAt: 900, updatedAt: 900},
    {id: "c-numtitle", title: 12345, model: "smart", createdAt: 800, updatedAt: 800,
     extra: {kept: [1, 2]}},
]"""

DAMAGED_MESSAGES = """() => [
    {id: "n-1", conversationId: 42, role: "user", content: "hello numbered",
     createdAt: 1000, status: "done"},
    {id: 7, conversationId: 42, role: "assistant", content: "numbered reply",
     createdAt: 1001, status: "done", model: SMART_MODEL},
    {id: "o-1", conversationId: "sound", role: "user", content: "dated question",
     createdAt: 5000, status: "done"},
    {id: "o-2", conversationId: "sound", role: "user", content: "undated question",
     status: "done"},
    {id: "o-3", conversationId: "sound", role: "system", content: "be brief",
     createdAt: 5001, status: "done"},
    {id: "o-4", conversationId: "sound", role: "assistant", content: {k: [1, "two"]},
     createdAt: 5002, status: "done", model: SMART_MODEL},
    {id: "o-5", conversationId: "sound", role: "assistant", createdAt: 5003,
     status: "done", model: SMART_MODEL},
    {id: "o-6", conversationId: "sound", role: "assistant", content: "odd status",
     createdAt: 5004, status: "exploded", model: SMART_MODEL},
    {id: "o-7", conversationId: "sound", role: "assistant", content: "with extras",
     createdAt: 5005, status: "done", model: SMART_MODEL, extra: {nested: [1]}},
]""".replace("SMART_MODEL", f'"{SMART}"')

# Every record of both tables, keys and values serialised so that NaN, numbers and
# strings stay distinct ("NaN" the string is not NaN the number).
SNAPSHOT = """() => new Promise((resolve, reject) => {
    const req = indexedDB.open("localchat");
    req.onerror = () => reject(req.error);
    req.onsuccess = () => {
        const db = req.result;
        const tx = db.transaction(["conversations", "messages"]);
        const out = {};
        const encode = (value) => JSON.stringify(value, (_k, v) =>
            typeof v === "number" ? {number: String(v)} : v);
        for (const table of ["conversations", "messages"]) {
            const all = tx.objectStore(table).getAll();
            all.onsuccess = () => {
                out[table] = Object.fromEntries(all.result.map((r) => [encode(r.id), encode(r)]));
            };
        }
        tx.oncomplete = () => { db.close(); resolve(out); };
        tx.onerror = () => reject(tx.error);
    };
})"""

# The records are JS source (NaN and numbers as keys don't survive JSON), put into the
# function's own source: the page's policy refuses eval, as it should.
SEED = """() => new Promise((resolve, reject) => {
    const req = indexedDB.open("localchat");
    req.onerror = () => reject(req.error);
    req.onsuccess = () => {
        const db = req.result;
        const tx = db.transaction(["conversations", "messages"], "readwrite");
        for (const c of (CONVERSATIONS)()) tx.objectStore("conversations").put(c);
        for (const m of (MESSAGES)()) tx.objectStore("messages").put(m);
        tx.oncomplete = () => { db.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
    };
})"""


def _seed(page: Page, conversations: str, messages: str) -> None:
    page.evaluate(SEED.replace("CONVERSATIONS", conversations).replace("MESSAGES", messages))


def _seed_damaged(chat: ChatPage) -> dict:
    """Write the damaged records, reload, and return the raw snapshot taken before."""
    _seed(chat.page, DAMAGED_CONVERSATIONS, DAMAGED_MESSAGES)
    before = chat.page.evaluate(SNAPSHOT)
    assert len(before["conversations"]) == 8 and len(before["messages"]) == 9
    chat.reload()
    return before


def _key(value: object) -> str:
    """A record key as SNAPSHOT encodes it."""
    return json.dumps({"number": str(value)} if isinstance(value, (int, float)) else value,
                      separators=(",", ":"))


def test_damaged_conversations_are_listed_sensibly_and_never_rewritten(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    before = _seed_damaged(chat)
    # Sound ones newest first; those whose time can't be used after them, in key order
    # (numbers before strings); none left out.
    expect(chat.sidebar_links).to_have_text([
        "Sound chat", "Numbered chat", "Untitled chat", "12345", "Far-future chat",
        "No-time chat", "Negative chat", "Stringly chat"])

    chat.sidebar_links.filter(has_text="No-time chat").click()
    expect(page.locator(".thread-note")).to_contain_text(
        "unusable createdAt, unusable updatedAt")
    expect(page.locator(".thread-note")).to_contain_text("nothing was changed")
    chat.sidebar_links.filter(has_text="12345").click()
    expect(page.locator(".thread-note")).to_contain_text("title not text")
    chat.sidebar_links.filter(has_text="Untitled chat").click()
    expect(page.locator(".thread-note")).to_contain_text("missing title")

    # Opening, and reloading on each address, changes nothing stored.
    for title, cid in (("Far-future chat", "c-far"), ("Stringly chat", "c-str"),
                       ("Negative chat", "c-neg")):
        chat.sidebar_links.filter(has_text=title).click()
        expect(page).to_have_url(re.compile(f"#/chat/{cid}$"))
        expect(page.locator(".thread-note")).to_contain_text("unusable updatedAt")
    chat.reload()
    expect(page.locator(".thread-note")).to_contain_text("unusable updatedAt")
    assert page.evaluate(SNAPSHOT) == before


def test_a_conversation_with_a_numeric_id_opens_renames_exports_and_deletes(
        page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    before = _seed_damaged(chat)
    chat.sidebar_links.filter(has_text="Numbered chat").click()
    expect(page).to_have_url(re.compile(r"#/chat/__n42$"))
    expect(chat.user_bubbles()).to_have_text(["hello numbered"])
    expect(chat.assistant_messages().locator(".bubble")).to_have_text(["numbered reply"])
    expect(page.locator(".thread-note")).to_contain_text("a number as its id")
    chat.reload()  # the alias is an address that works on its own
    expect(chat.user_bubbles()).to_have_text(["hello numbered"])

    # Rename: only the title changes, under the stored (numeric) key.
    chat.sidebar_item("Numbered chat").get_by_role(
        "button", name="Rename “Numbered chat”").click()
    title_box = page.get_by_role("textbox", name="Conversation title")
    title_box.fill("Renamed number")
    title_box.press("Enter")
    expect(chat.sidebar_item("Renamed number")).to_have_count(1)
    chat.wait_stored_field("conversations", 42, "title", "Renamed number")
    after = page.evaluate(SNAPSHOT)
    renamed = json.loads(after["conversations"][_key(42)])
    assert renamed == {**json.loads(before["conversations"][_key(42)]),
                       "title": "Renamed number"}
    assert {k: v for k, v in after["conversations"].items() if k != _key(42)} == \
        {k: v for k, v in before["conversations"].items() if k != _key(42)}
    assert after["messages"] == before["messages"]

    # A new message lands in it, under its numeric key.
    chat.send("/echo answered")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("answered")
    stored = [m for m in chat.stored("messages") if m["conversationId"] == 42]
    assert sorted(m["content"] for m in stored) == sorted(
        ["hello numbered", "numbered reply", "/echo answered", "answered"])

    # Export: the file holds its messages.
    with page.expect_download() as info:
        chat.sidebar_item("Renamed number").get_by_role(
            "button", name="Export “Renamed number”").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    (exported,) = json.loads(target.read_text())["conversations"]
    assert exported["title"] == "Renamed number"
    assert [m["content"] for m in exported["messages"]][:2] == [
        "hello numbered", "numbered reply"]

    # Delete: the record and its messages go; nothing else changes.
    chat.sidebar_item("Renamed number").get_by_role(
        "button", name="Delete “Renamed number”").click()
    expect(chat.sidebar_item("Renamed number")).to_have_count(0)
    chat.wait_stored("conversations", 7)
    final = page.evaluate(SNAPSHOT)
    assert _key(42) not in final["conversations"]
    assert not [m for m in chat.stored("messages") if m["conversationId"] == 42]
    assert {k: v for k, v in final["messages"].items()} == {
        k: v for k, v in before["messages"].items()
        if json.loads(v)["conversationId"] != {"number": "42"}}


def test_damaged_messages_are_shown_with_a_note_and_never_rewritten(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    before = _seed_damaged(chat)
    chat.sidebar_links.filter(has_text="Sound chat").click()
    thread = page.get_by_role("article")
    # The undated message first (stored order), then by time; an unknown sender's too.
    expect(thread).to_have_count(7)
    expect(thread.locator(".bubble")).to_have_text([
        "undated question", "dated question", "be brief", '{"k": [1, "two"]}', "",
        "odd status", "with extras"])
    notes = page.locator(".record-note")
    expect(thread.nth(0).locator(".record-note")).to_have_text(
        "This message has no date. It is shown as stored.")
    expect(page.get_by_role("article", name="Unknown sender")).to_contain_text(
        "has an unknown sender (“system”)")
    expect(thread.nth(3).locator(".record-note")).to_contain_text(
        "holds something other than text")
    expect(thread.nth(4).locator(".record-note")).to_contain_text("has no text")
    expect(thread.nth(5).locator(".record-note")).to_contain_text(
        "has an unknown status (“exploded”)")
    expect(notes).to_have_count(5)  # the sound messages (with extra fields too) have none

    # The chat still works; the damaged records stay as stored.
    chat.send("/echo still works")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("still works")
    chat.reload()
    expect(thread).to_have_count(9)
    after = page.evaluate(SNAPSHOT)
    for key, record in before["messages"].items():
        assert after["messages"][key] == record
    for key, record in before["conversations"].items():
        if key != _key("sound"):
            assert after["conversations"][key] == record
    sound = json.loads(after["conversations"][_key("sound")])
    assert sound == {**json.loads(before["conversations"][_key("sound")]),
                     "updatedAt": sound["updatedAt"]}  # a new message touched only that


def test_a_reply_nested_beyond_markdowns_limit_shows_its_text(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    deep = "> " * 25 + "deep words <b>stay</b>"
    chat.send("/echo " + deep)
    reply = chat.wait_for_reply_done()
    expect(reply).to_contain_text(NESTING_NOTE)
    expect(reply.locator(".plain-text")).to_have_text(deep)
    expect(reply.locator("b")).to_have_count(0)
    # Within the limit it is still Markdown.
    chat.send("/echo " + "> " * 5 + "quoted")
    shallow = chat.wait_for_reply_done()
    expect(shallow.locator("blockquote")).to_have_count(5)
    expect(shallow).not_to_contain_text(NESTING_NOTE)
    chat.reload()
    expect(chat.assistant_messages().first.locator(".plain-text")).to_have_text(deep)


def test_continuing_a_damaged_reply_changes_only_what_the_user_asked_for(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _seed(page, """() => [{id: "p", title: "Partial chat", model: "smart",
                             createdAt: 100, updatedAt: 100}]""",
          """() => [
        {id: "p-1", conversationId: "p", role: "user", content: "tell me", status: "done"},
        {id: "p-2", conversationId: "p", role: "assistant", content: "Once upon",
         status: "interrupted", model: SMART_MODEL, note: {from: "another tool"}}]""".replace(
            "SMART_MODEL", f'"{SMART}"'))
    chat.reload()
    chat.sidebar_links.filter(has_text="Partial chat").click()
    reply = chat.last_reply()
    expect(reply.locator(".meta")).to_contain_text("interrupted")
    expect(reply.locator(".record-note")).to_have_text(
        "This message has no date. It is shown as stored.")
    reply.get_by_role("button", name="Continue").click()
    expect(reply.locator(".bubble")).to_have_text(re.compile(r"^Once upon\s*\S"))
    chat.wait_for_reply_done()
    chat.wait_stored_field("messages", "p-2", "status", "done")
    (stored,) = [m for m in chat.stored("messages") if m["id"] == "p-2"]
    # Its text and status changed; its missing date stays missing, its extra field kept.
    assert stored["content"].startswith("Once upon") and len(stored["content"]) > 9
    assert "createdAt" not in stored
    assert stored["note"] == {"from": "another tool"}
    assert stored["model"] == SMART
