"""Export and import of conversations as JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage, conversation_record, message_record


def _seed(chat: ChatPage) -> None:
    chat.seed(
        [conversation_record("a" * 32, "Trip plans", 1_000),
         conversation_record("b" * 32, "Recipes", 2_000, model="quick")],
        [message_record("m1", "a" * 32, "user", "Where to go?", 1_000),
         message_record("m2", "a" * 32, "assistant", "**Lisbon**", 1_001),
         message_record("m3", "b" * 32, "user", "Soup ideas", 2_000)],
    )
    chat.reload()


def _export(page: Page, button_name: str, tmp_path: Path) -> dict:
    with page.expect_download() as info:
        page.get_by_role("button", name=button_name).click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return json.loads(target.read_text())


def test_export_one_and_all(page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    _seed(chat)
    everything = _export(page, "Export all", tmp_path)
    assert everything["format"] == "localchat-export" and everything["version"] == 1
    assert [c["title"] for c in everything["conversations"]] == ["Recipes", "Trip plans"]
    trip = everything["conversations"][1]
    assert [m["content"] for m in trip["messages"]] == ["Where to go?", "**Lisbon**"]
    assert everything["conversations"][0]["model"] == "quick"

    one = _export(page, "Export “Trip plans”", tmp_path)
    assert [c["id"] for c in one["conversations"]] == ["a" * 32]
    expect(chat.toasts).to_contain_text("Exported 1 conversation.")


def test_import_adds_and_asks_before_duplicating(
        page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    _seed(chat)
    exported = _export(page, "Export all", tmp_path)
    file = tmp_path / "backup.json"
    file.write_text(json.dumps(exported))

    # Delete one, then import the backup: the deleted one comes back, the other is a
    # duplicate, so the app asks first; canceling changes nothing.
    chat.sidebar_item("Recipes").get_by_role("button", name="Delete “Recipes”").click()
    expect(chat.sidebar_links).to_have_text(["Trip plans"])

    page.get_by_role("button", name="Import…").click()  # the file chooser opens
    page.locator("#import-file").set_input_files(file)
    dialog = chat.confirm_dialog
    expect(dialog).to_have_accessible_name("Import as copies?")
    expect(dialog).to_contain_text("1 of these conversations is already here")
    # Copying loses nothing: its button is not styled as dangerous, and both say what they do.
    expect(dialog.get_by_role("button", name="Import copies")).to_have_class("primary-button")
    dialog.get_by_role("button", name="Don't import").click()
    expect(chat.toasts).to_contain_text("Import canceled; nothing was changed.")
    expect(chat.sidebar_links).to_have_text(["Trip plans"])
    assert len(chat.stored("conversations")) == 1

    page.locator("#import-file").set_input_files(file)
    dialog.get_by_role("button", name="Import copies").click()
    expect(chat.toasts).to_contain_text("Imported 2 conversations (3 messages).")
    expect(chat.sidebar_links).to_have_count(3)
    # The copy has the same times as the original, so either may be listed first.
    assert sorted(chat.sidebar_links.all_inner_texts()) == [
        "Recipes", "Trip plans", "Trip plans (imported)"]
    stored = chat.stored("conversations")
    assert len(stored) == 3 and sum(c["id"] == "a" * 32 for c in stored) == 1
    assert len(chat.stored("messages")) == 2 + 3

    chat.sidebar_links.first.click()
    expect(chat.user_bubbles()).to_have_text(["Soup ideas"])


def test_bad_import_files_are_refused_with_a_reason(
        page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    _seed(chat)
    before = (chat.stored("conversations"), chat.stored("messages"))
    cases = {
        "not-json.json": ("{oops", "not valid JSON"),
        "other.json": (json.dumps({"hello": 1}), "not a LocalChat export file"),
        "future.json": (json.dumps({"format": "localchat-export", "version": 9,
                                    "conversations": []}), "newer LocalChat"),
        "bad-role.json": (json.dumps({"format": "localchat-export", "version": 1,
                                      "conversations": [{
                                          "id": "z" * 32, "title": "Odd", "model": "smart",
                                          "createdAt": 1, "updatedAt": 1,
                                          "messages": [{"role": "wizard", "content": "hi"}]}]}),
                          "unknown role “wizard”"),
    }
    for name, (text, reason) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        page.locator("#import-file").set_input_files(path)
        alert = chat.alerts.filter(has_text=f"“{name}” can't be imported.")
        expect(alert).to_contain_text(reason)
        expect(alert).to_contain_text("Nothing was changed.")
        alert.get_by_role("button", name="Dismiss").click()
        expect(alert).to_have_count(0)
    assert (chat.stored("conversations"), chat.stored("messages")) == before


def _document(conversations: list[dict]) -> str:
    return json.dumps({"format": "localchat-export", "version": 1, "exportedAt": 1,
                       "conversations": conversations})


def test_imported_conversations_with_odd_ids_work_like_any_other(
        page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    _seed(chat)
    before = chat.stored("conversations")
    odd = {"dotted": "my.chat.1", "long": "x" * 100, "quoted": 'a"b]',
           "clash": "m1"}  # "m1" is a stored message's id
    file = tmp_path / "odd.json"
    file.write_text(_document([
        {"id": cid, "title": f"Odd {name}", "model": "smart", "createdAt": 5_000 + i,
         "updatedAt": 5_000 + i,
         "messages": [{"id": "m1", "role": "user", "content": f"hello {name}",
                       "createdAt": 5_000 + i}]}
        for i, (name, cid) in enumerate(odd.items())]))
    page.locator("#import-file").set_input_files(file)
    expect(chat.toasts).to_contain_text("Imported 4 conversations (4 messages).")
    stored = chat.stored("conversations")
    assert all(c in stored for c in before), "nothing stored is rewritten"
    assert all(len(c["id"]) == 32 for c in stored)

    for name in odd:
        title = f"Odd {name}"
        chat.sidebar_links.filter(has_text=title).click()
        expect(chat.user_bubbles()).to_have_text([f"hello {name}"])
        item = chat.sidebar_item(title)
        item.get_by_role("button", name=f"Rename “{title}”").click()
        field = page.get_by_role("textbox", name="Conversation title")
        field.fill(f"{title} renamed")
        field.press("Enter")
        renamed = chat.sidebar_item(f"{title} renamed")
        expect(renamed).to_have_count(1)
        exported = _export(page, f"Export “{title} renamed”", tmp_path)
        assert [m["content"] for m in exported["conversations"][0]["messages"]] == [
            f"hello {name}"]
        renamed.get_by_role("button", name=f"Delete “{title} renamed”").click()
        expect(chat.sidebar_item(f"{title} renamed")).to_have_count(0)
    assert chat.stored("conversations") == before
    assert len(chat.stored("messages")) == 3


HOSTILE = {
    "deep.json": ("[" * 100_000 + "]" * 100_000, "This file nests 100,000 levels deep; "
                  "LocalChat reads up to 64 levels."),
    "deep-object.json": ('{"a":' * 100_000 + "1" + "}" * 100_000, "100,000 levels deep"),
    "bom-garbage.json": ("\ufeff{oops", "not valid JSON"),
    "empty.json": ("", "This file is empty."),
    "role-list.json": (_document([{"id": "c" * 32, "title": "T", "model": "smart",
                                   "messages": [{"role": ["user"], "content": "x"}]}]),
                       "unknown role “a list”"),
}


def test_hostile_files_never_stop_the_app(page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    _seed(chat)
    before = (chat.stored("conversations"), chat.stored("messages"))
    for name, (text, reason) in HOSTILE.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        page.locator("#import-file").set_input_files(path)
        alert = chat.alerts.filter(has_text=f"“{name}” can't be imported.")
        expect(alert).to_contain_text(reason)
        alert.get_by_role("button", name="Dismiss").click()
        expect(alert).to_have_count(0)
    assert (chat.stored("conversations"), chat.stored("messages")) == before
    # The interpreter still answers: a message gets its reply.
    chat.sidebar_links.filter(has_text="Recipes").click()
    chat.send("/echo still here")
    expect(chat.wait_for_reply_done()).to_contain_text("still here")
