"""Editing a message of yours and sending it again: the thread from that message on is
replaced by the new answer (earlier versions are not kept), stored so, by keyboard too."""

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


def test_esc_cancels_an_edit_and_edit_waits_while_a_reply_streams(page: Page,
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
