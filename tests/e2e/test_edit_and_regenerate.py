"""Rewriting a thread: editing a message of yours and sending it again, or regenerating
any reply, replaces the thread from there on with the new answer (earlier versions are
not kept), stored so; a stopped reply can be continued."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage

SLOW_SIM = "engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=15"


def test_an_edited_message_replaces_the_thread_from_there_on(page: Page,
                                                               site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo one")
    chat.wait_for_reply_done()
    chat.send("/echo two")
    chat.wait_for_reply_done()

    first = chat.user_messages().first
    first.get_by_role("button", name="Edit").click()
    field = page.get_by_role("textbox", name="Edit message")
    expect(field).to_be_focused()
    expect(field).to_have_value("/echo one")
    field.fill("/echo one, edited")
    field.press("Enter")

    expect(chat.user_messages()).to_have_count(1)
    expect(chat.user_messages().first.locator(".bubble")).to_have_text("/echo one, edited")
    expect(chat.assistant_messages()).to_have_count(1)
    reply = chat.last_reply()
    expect(reply.locator(".bubble")).to_have_text("one, edited")
    expect(chat.stop_button).to_be_hidden()
    expect(chat.message_box).to_be_focused()
    chat.wait_stored("messages", 2)
    stored = sorted((m["role"], m["content"]) for m in chat.stored("messages"))
    assert stored == [("assistant", "one, edited"), ("user", "/echo one, edited")]

    chat.reload()  # what was stored is what is shown
    expect(chat.user_messages()).to_have_count(1)
    expect(chat.assistant_messages().first.locator(".bubble")).to_have_text("one, edited")


def test_esc_cancels_an_edit_and_a_stopped_reply_can_be_continued(page: Page,
                                                                   site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW_SIM)
    chat.send("Tell me a long story about browsers")
    edit = chat.user_messages().first.get_by_role("button", name="Edit")
    expect(chat.stop_button).to_be_visible()
    expect(edit).to_be_hidden()  # nothing to edit into while the reply is written
    chat.stop_button.click()
    chat.wait_for_reply_done()

    edit.click()
    field = page.get_by_role("textbox", name="Edit message")
    field.fill("something else")
    field.press("Escape")
    expect(field).to_have_count(0)
    expect(edit).to_be_focused()
    expect(chat.user_messages().first.locator(".bubble")).to_have_text(
        "Tell me a long story about browsers")
    expect(chat.assistant_messages()).to_have_count(1)
    # Cancel edit by its button works the same.
    edit.click()
    page.get_by_role("button", name="Cancel edit").click()
    expect(page.get_by_role("textbox", name="Edit message")).to_have_count(0)
    expect(edit).to_be_focused()
    # The stopped reply can be continued: the model writes on after its text.
    reply = chat.last_reply()
    partial = reply.locator(".bubble").inner_text()
    reply.get_by_role("button", name="Continue").click()
    expect(chat.stop_button).to_be_visible()
    expect(chat.stop_button).to_be_hidden(timeout=60_000)
    expect(reply.locator(".meta")).not_to_contain_text("stopped")
    assert reply.locator(".bubble").inner_text().startswith(partial.rstrip()[:20])
    assert len(reply.locator(".bubble").inner_text()) > len(partial)
    expect(chat.assistant_messages()).to_have_count(1)


def test_regenerating_an_earlier_reply_replaces_the_thread_from_there_on(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo one")
    chat.wait_for_reply_done()
    chat.send("/echo two")
    chat.wait_for_reply_done()
    first_reply = chat.assistant_messages().first
    first_id = first_reply.get_attribute("data-message-id")
    first_reply.get_by_role("button", name="Regenerate").click()
    expect(chat.assistant_messages()).to_have_count(1)
    expect(chat.user_messages()).to_have_count(1)
    reply = chat.last_reply()
    expect(reply).not_to_have_attribute("data-message-id", first_id or "")
    expect(reply.locator(".bubble")).to_have_text("one")
    expect(chat.stop_button).to_be_hidden()
    chat.wait_stored("messages", 2)
    assert sorted(m["content"] for m in chat.stored("messages")) == ["/echo one", "one"]
