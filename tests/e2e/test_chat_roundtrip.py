"""A minimal chat end to end: send, the simulated reply streams in, both messages are in
IndexedDB, and the conversation is still there after a reload."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage


def test_send_stream_store_and_reload(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(
        query="engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=40")
    chat.send("Tell me about local models")
    # The first send loads the conversation's model (Smart), then the reply streams.
    expect(chat.user_bubbles()).to_have_text(["Tell me about local models"])
    expect(chat.stop_button).to_be_visible()
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).not_to_be_empty()
    expect(reply.locator(".meta")).to_contain_text("Smart (simulated)")
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f]{32}$"))
    conversation_id = page.url.rsplit("/", 1)[1]

    conversations = chat.stored("conversations")
    assert [c["id"] for c in conversations] == [conversation_id]
    assert conversations[0]["title"] == "Tell me about local models"
    assert conversations[0]["model"] == "smart"
    messages = sorted(chat.stored("messages"), key=lambda m: m["createdAt"])
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "Tell me about local models"
    assert messages[1]["content"] == reply.locator(".bubble").inner_text()
    assert messages[1]["model"] == "Llama-3.2-3B-Instruct-q4f16_1-MLC"

    chat.reload()
    expect(chat.sidebar_links).to_have_text(["Tell me about local models"])
    expect(chat.user_bubbles()).to_have_text(["Tell me about local models"])
    expect(chat.assistant_messages()).to_have_count(1)


def test_echo_is_verbatim_and_html_stays_text(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    payload = '<img src=x onerror="window.__pwned=1"> & <b>bold</b>\nsecond line'
    chat.send(f"/echo {payload}")
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).to_have_text(payload)
    assert page.evaluate("window.__pwned") is None
    assert reply.locator("img").count() == 0


def test_stop_keeps_the_partial_reply(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(
        query="engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=5")
    chat.send("/echo " + " ".join(f"word{i}" for i in range(200)))
    expect(chat.last_reply().locator(".bubble")).to_contain_text("word1")
    chat.stop_button.click()
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".meta")).to_contain_text("stopped")
    text = reply.locator(".bubble").inner_text()
    assert text.startswith("word0 word1") and "word199" not in text
    stored = [m for m in chat.stored("messages") if m["role"] == "assistant"]
    assert stored[0]["status"] == "stopped" and stored[0]["content"] == text


def test_empty_message_is_not_sent(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.message_box.fill("   \n  ")
    chat.message_box.press("Enter")
    expect(chat.user_messages()).to_have_count(0)
    expect(chat.message_box).to_be_focused()
    assert chat.stored("conversations") == []


def test_unknown_conversation_route_offers_a_new_chat(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(route="#/chat/doesnotexist")
    expect(page.get_by_role("heading", name="Conversation not found")).to_be_visible()
    page.get_by_role("link", name="Start a new chat").click()
    expect(page.get_by_role("heading", name="Conversation not found")).to_be_hidden()
