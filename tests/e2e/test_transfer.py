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
    chat.confirm_dialog.get_by_role("button", name="Delete").click()
    expect(chat.sidebar_links).to_have_text(["Trip plans"])

    page.get_by_role("button", name="Import…").click()  # the file chooser opens
    page.locator("#import-file").set_input_files(file)
    dialog = chat.confirm_dialog
    expect(dialog).to_have_accessible_name("Import as copies?")
    expect(dialog).to_contain_text("1 of these conversations is already here")
    dialog.get_by_role("button", name="Cancel").click()
    expect(chat.toasts).to_contain_text("Import canceled; nothing was changed.")
    expect(chat.sidebar_links).to_have_text(["Trip plans"])
    assert len(chat.stored("conversations")) == 1

    page.locator("#import-file").set_input_files(file)
    dialog.get_by_role("button", name="Import copies").click()
    expect(chat.toasts).to_contain_text("Imported 2 conversations (3 messages).")
    expect(chat.sidebar_links).to_have_text(["Recipes", "Trip plans", "Trip plans"])
    stored = chat.stored("conversations")
    assert len(stored) == 3 and sum(c["id"] == "a" * 32 for c in stored) == 1
    assert len(chat.stored("messages")) == 2 + 3

    chat.sidebar_links.first.click()
    expect(chat.user_messages()).to_have_text(["Soup ideas"])


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
