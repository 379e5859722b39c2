"""Streaming replies as a user meets them: stop, regenerate, inline errors with retry,
Markdown that is safe, which model answered, the performance panel, the context window,
and input that cannot be sent."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .pages.chat import FAST_SIM, ChatPage, conversation_record, message_record

SLOW_SIM = "engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=15"


def _markdown_ready(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-markdown", "ready")


def test_stop_keeps_the_partial_reply_and_typing_goes_on(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW_SIM)
    chat.send("Tell me a long story about browsers")
    reply = chat.last_reply()
    expect(reply.locator(".bubble")).to_have_text(re.compile(r"\w+ \w+"))
    # The next message can be typed while the reply streams.
    chat.message_box.fill("next question")
    chat.stop_button.click()
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".meta")).to_contain_text("stopped")
    expect(chat.message_box).to_have_value("next question")
    partial = reply.locator(".bubble").inner_text()
    stored = [m for m in chat.stored("messages") if m["role"] == "assistant"]
    assert stored[0]["status"] == "stopped" and stored[0]["content"] == partial


def test_regenerate_replaces_the_last_reply(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo first answer")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("first answer")
    first_id = chat.last_reply().get_attribute("data-message-id")
    chat.last_reply().get_by_role("button", name="Regenerate").click()
    reply = chat.wait_for_reply_done()
    expect(reply).not_to_have_attribute("data-message-id", first_id or "")
    expect(chat.assistant_messages()).to_have_count(1)
    expect(reply.locator(".bubble")).to_have_text("first answer")
    stored = chat.stored("messages")
    assert sorted(m["role"] for m in stored) == ["assistant", "user"]
    assert all(m["id"] != first_id for m in stored)


@pytest.mark.allow_console_errors(r"params_shard_", r"NetworkError", r"ERR_FAILED")
def test_a_failed_reply_shows_inline_and_retry_recovers(page: Page, site_url: str) -> None:
    # The model host drops every shard request (after the automatic retries, the reply
    # fails inline); then the network comes back and Retry on the message recovers.
    page.context.route("**/params_shard_*", lambda route: route.abort())
    chat = ChatPage(page, site_url).open(query=FAST_SIM + "&retry_backoff_s=0.05")
    chat.send("/echo after a failure")
    reply = chat.wait_for_reply_done()
    expect(reply.get_by_role("alert")).to_contain_text("Can't reach the model host")
    page.context.unroute("**/params_shard_*")
    reply.get_by_role("button", name="Retry").click()
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).to_have_text("after a failure")
    expect(chat.assistant_messages()).to_have_count(1)
    chat.wait_stored("messages", 2)
    assert [m["status"] for m in chat.stored("messages") if m["role"] == "assistant"] == ["done"]


HOSTILE = (
    "/echo <script>window.__pwned = 'script'</script>\n\n"
    "<img src=x onerror=\"window.__pwned = 'img'\">\n\n"
    "[click me](javascript:window.__pwned='link')\n\n"
    "<svg onload=\"window.__pwned = 'svg'\"><circle r=5 /></svg>\n\n"
    "![pic](http://example.invalid/x.png)\n\n"
    "<a href=\"javascript:alert(1)\">raw link</a>"
)


def test_hostile_markdown_is_shown_as_text_and_nothing_runs(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _markdown_ready(page)
    chat.send(HOSTILE)
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).to_contain_text("<script>window.__pwned = 'script'</script>")
    expect(reply.locator(".bubble")).to_contain_text("<img src=x onerror=")
    thread = page.locator("#thread")
    for selector in ("script", "img", "svg", "[onerror]", "[onload]", 'a[href^="javascript:"]'):
        expect(thread.locator(selector)).to_have_count(0)
    # The user's own message is plain text too.
    expect(chat.user_messages().locator(".bubble")).to_contain_text("<svg onload=")
    assert page.evaluate("window.__pwned") is None


def test_markdown_renders_with_copyable_code_and_safe_links(page: Page, site_url: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    chat = ChatPage(page, site_url).open()
    _markdown_ready(page)
    chat.send("/echo ## Plan\n\n1. one\n2. two\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
              "Use `pip`, see [docs](https://example.org/docs).\n\n"
              "```python\nprint('hi')\n```")
    reply = chat.wait_for_reply_done()
    expect(reply.get_by_role("heading", name="Plan")).to_be_visible()
    expect(reply.get_by_role("listitem")).to_have_text(["one", "two"])
    expect(reply.get_by_role("table")).to_be_visible()
    # Aligned by a class: an inline style would be refused by the site's policy (and
    # reported as a console error, which fails the test).
    expect(reply.get_by_role("cell", name="2")).to_have_css("text-align", "right")
    expect(reply.locator("code").first).to_have_text("pip")
    link = reply.get_by_role("link", name="docs")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    reply.get_by_role("button", name="Copy").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')\n"
    expect(reply.locator(".meta")).to_contain_text("Smart (simulated)")


def test_performance_panel_shows_the_last_reply_speeds(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW_SIM.replace("sim_tps=15", "sim_tps=200"))
    button = page.get_by_role("button", name="Performance")
    button.click()
    panel = page.get_by_role("region", name="Last reply")
    expect(panel).to_contain_text("No reply yet")
    button.click()
    expect(panel).to_be_hidden()
    chat.send("Explain WebGPU briefly")
    chat.wait_for_reply_done()
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(panel).to_contain_text(re.compile(r"Decode\s*[\d,.]+ tokens/s"))
    expect(panel).to_contain_text(re.compile(r"Prefill\s*[\d,.]+ tokens/s"))
    expect(panel).to_contain_text(re.compile(r"Time to first token\s*[\d,]+ ms"))
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(button).to_be_focused()


def test_long_history_is_trimmed_to_the_context_window(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    block = "lorem ipsum dolor sit amet " * 220  # ~6,000 characters
    for n in range(3):
        chat.send(f"/echo {n} {block}")
        expect(chat.wait_for_reply_done().locator(".bubble")).to_contain_text(f"{n} lorem")
    expect(chat.assistant_messages().get_by_role("alert")).to_have_count(0)
    note = page.locator("#context-note")
    expect(note).to_contain_text("earliest messages of this chat were left out")
    chat.wait_stored("messages", 6)  # trimming never deletes anything


def test_a_cjk_history_is_trimmed_by_what_the_engine_really_counts(
        page: Page, site_url: str) -> None:
    # The simulated engine counts one token per CJK character (as WebLLM's tokenizer does,
    # about): 3 × 2,400 characters would be 7,200 tokens, far over the 4,096 window.
    chat = ChatPage(page, site_url).open()
    block = "東京の天気は晴れです。" * 240  # 2,640 characters
    for n in range(3):
        chat.send(f"/echo {n} {block}")
        expect(chat.wait_for_reply_done().locator(".bubble")).to_contain_text(f"{n} 東京")
    expect(chat.assistant_messages().get_by_role("alert")).to_have_count(0)
    expect(page.locator("#context-note")).to_contain_text(
        "earliest messages of this chat were left out")


def test_a_message_longer_than_the_window_is_read_from_its_end_and_says_so(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    long = "/echo " + "lorem ipsum dolor sit amet " * 600 + "THE END"  # ~16,000 characters
    chat.send(long)
    chat.wait_for_reply_done()
    note = page.locator("#context-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Your last message is longer than the model's context "
                                 "window: only its end was read.")
    # The message itself is shown whole, and stored.
    expect(chat.user_messages().last.locator(".bubble")).to_contain_text(
        re.compile(r"^/echo lorem.*THE END$"))
    chat.wait_stored("messages", 2)
    chat.send("/echo short")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("short")
    expect(note).not_to_contain_text("only its end was read")


def test_input_that_cannot_be_sent_gets_a_clear_answer(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.message_box.fill("   \n  ")
    chat.send_button.click()
    expect(chat.user_messages()).to_have_count(0)
    expect(chat.message_box).to_be_focused()

    huge = "x" * (1024 * 1024)
    chat.message_box.fill(huge)
    chat.send_button.click()
    expect(chat.alerts.filter(has_text="This message is too long to send")).to_contain_text(
        "1,048,576 characters")
    assert len(chat.message_box.input_value()) == len(huge)
    expect(chat.user_messages()).to_have_count(0)
    assert chat.stored("messages") == []


def test_damaged_and_unknown_model_records_are_shown_unchanged(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    odd = conversation_record("d" * 32, "From the future", 5_000, model="galaxy-brain")
    broken = {"id": "e" * 32, "model": "smart", "updatedAt": 4_000}
    chat.seed([odd, broken], [message_record("m1", "d" * 32, "user", "hello?", 5_000)])
    chat.reload()
    expect(chat.sidebar_links).to_have_text(["From the future", "Untitled chat"])
    chat.sidebar_links.first.click()
    expect(page.locator(".thread-note")).to_contain_text("“galaxy-brain”")
    chat.send("/echo still works")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("still works")
    chat.sidebar_links.filter(has_text="Untitled chat").click()
    expect(page.locator(".thread-note")).to_contain_text("missing title")
    stored = {c["id"]: c for c in chat.stored("conversations")}
    assert stored["d" * 32]["model"] == "galaxy-brain"
    assert "title" not in stored["e" * 32]
