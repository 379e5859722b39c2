"""Routes and the sidebar: moving between conversations without reloads, ordering,
rename, delete with confirmation, and a sidebar with 10,000 conversations."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage, conversation_record, message_record


def _seed_three(chat: ChatPage) -> None:
    chat.seed(
        [conversation_record("a" * 32, "Oldest chat", 1_000),
         conversation_record("b" * 32, "Middle chat", 2_000),
         conversation_record("c" * 32, "Newest chat", 3_000)],
        [message_record(f"m{i}", cid * 32, role, f"{role} text in {cid}", 1_000 + i)
         for i, (cid, role) in enumerate(
             [(c, r) for c in "abc" for r in ("user", "assistant")])],
    )
    chat.reload()


def test_first_message_moves_to_the_conversation_route_without_a_reload(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    page.evaluate("window.__sameDocument = true")
    page.evaluate("document.getElementById('composer').dataset.marker = 'kept'")
    chat.send("/echo hello routes")
    chat.wait_for_reply_done()
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f]{32}$"))
    conversation_url = page.url

    page.go_back()
    expect(page).to_have_url(re.compile(r"#/chat$"))
    expect(page.get_by_role("heading", name="Private chat, on your device")).to_be_visible()
    expect(chat.user_messages()).to_have_count(0)
    page.go_forward()
    expect(page).to_have_url(conversation_url)
    expect(chat.user_bubbles()).to_have_text(["/echo hello routes"])
    # Same document, same composer element: nothing was reloaded or re-mounted.
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#composer")).to_have_attribute("data-marker", "kept")


def test_sidebar_order_changes_only_when_a_message_is_added(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _seed_three(chat)
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Middle chat", "Oldest chat"])

    chat.sidebar_links.filter(has_text="Oldest chat").click()
    expect(page).to_have_url(re.compile("#/chat/a{32}$"))
    expect(chat.user_bubbles()).to_have_text(["user text in a"])
    expect(page.get_by_role("link", name="Oldest chat")).to_have_attribute(
        "aria-current", "page")
    # Opening does not reorder.
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Middle chat", "Oldest chat"])

    # Renaming does not reorder either, and is saved.
    chat.sidebar_item("Middle chat").get_by_role("button", name="Rename “Middle chat”").click()
    title_box = page.get_by_role("textbox", name="Conversation title")
    expect(title_box).to_be_focused()
    title_box.fill("  Renamed   middle  ")
    title_box.press("Enter")
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Renamed middle", "Oldest chat"])
    stored = {c["id"]: c for c in chat.stored("conversations")}
    assert stored["b" * 32]["title"] == "Renamed middle"
    assert stored["b" * 32]["updatedAt"] == 2_000

    # Escape cancels a rename.
    chat.sidebar_item("Newest chat").get_by_role("button", name="Rename “Newest chat”").click()
    page.get_by_role("textbox", name="Conversation title").fill("Not this")
    page.get_by_role("textbox", name="Conversation title").press("Escape")
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Renamed middle", "Oldest chat"])

    # A new message moves its conversation to the top.
    chat.send("/echo bump")
    chat.wait_for_reply_done()
    expect(chat.sidebar_links).to_have_text(["Oldest chat", "Newest chat", "Renamed middle"])


def test_delete_is_at_once_with_undo_that_puts_it_back_exactly(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _seed_three(chat)
    chat.sidebar_links.filter(has_text="Middle chat").click()
    expect(chat.user_bubbles()).to_have_text(["user text in b"])
    stored = {"conversations": chat.stored("conversations"), "messages": chat.stored("messages")}

    delete = chat.sidebar_item("Middle chat").get_by_role("button", name="Delete “Middle chat”")
    delete.click()  # nothing is asked: the deletion can be taken back
    expect(chat.confirm_dialog).to_be_hidden()
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Oldest chat"])
    expect(page).to_have_url(re.compile(r"#/chat$"))
    expect(chat.toasts).to_contain_text("Deleted “Middle chat”.")
    chat.wait_stored("conversations", 2)
    assert all(m["conversationId"][0] != "b" for m in chat.stored("messages"))

    chat.toasts.get_by_role("button", name="Undo").click()
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Middle chat", "Oldest chat"])
    expect(page).to_have_url(re.compile("#/chat/" + "b" * 32 + "$"))
    expect(chat.user_bubbles()).to_have_text(["user text in b"])
    expect(chat.toasts).to_contain_text("“Middle chat” is back.")
    by_id = lambda records: sorted(records, key=lambda r: r["id"])  # noqa: E731
    assert by_id(chat.stored("conversations")) == by_id(stored["conversations"])
    assert by_id(chat.stored("messages")) == by_id(stored["messages"])

    delete.click()
    expect(chat.sidebar_links).to_have_text(["Newest chat", "Oldest chat"])
    # The offer ends by itself; the chat is gone for good.
    expect(chat.toasts.get_by_role("button", name="Undo")).to_have_count(0, timeout=15_000)
    assert sorted(c["id"][0] for c in chat.stored("conversations")) == ["a", "c"]
    assert len(chat.stored("messages")) == 4

    # Its old address now says it is gone.
    page.goto(page.url.split("#")[0] + "#/chat/" + "b" * 32)
    expect(page.get_by_role("heading", name="Conversation not found")).to_be_visible()


def test_ten_thousand_conversations_render_only_what_is_visible(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.seed([conversation_record(f"{i:032x}", f"Chat number {i}", 10_000 + i)
               for i in range(10_000)], [])
    chat.reload()
    expect(chat.sidebar_links.first).to_have_text("Chat number 9999")
    assert 10 <= chat.sidebar_links.count() <= 120
    expect(chat.sidebar_item("Chat number 9999")).to_have_attribute("aria-setsize", "10000")
    # Scrolling to the very end shows the oldest one; the DOM stays small.
    page.get_by_role("list", name="Saved conversations").evaluate(
        "el => { el.scrollTop = el.scrollHeight; }")
    oldest = page.get_by_role("link", name="Chat number 0", exact=True)
    expect(oldest).to_be_visible()
    expect(chat.sidebar_item("Chat number 0")).to_have_attribute("aria-posinset", "10000")
    assert chat.sidebar_links.count() <= 120
    oldest.click()
    expect(page).to_have_url(re.compile(f"#/chat/{0:032x}$"))
    expect(oldest).to_have_attribute("aria-current", "page")
