"""Heavy messages never freeze the page: a very long reply is readable at once as plain
text, then formatted in slices (or left plain with a note when it is too large to format
within budget), and a slow render is never applied to a chat that was closed meanwhile.

The conversations are written into IndexedDB with the raw API, as saved ones would be.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage

TOO_LONG_NOTE = "Shown as plain text: this reply is too long to format."  # ui/heavy.py
SMART = "Llama-3.2-3B-Instruct-q4f16_1-MLC"

NO_RENDER_PENDING = """() => (document.body.dataset.heavyRenders || "0") === "0"
    && !document.querySelector('#thread [data-render="pending"]')"""


def one_line(size: int = 200_000) -> str:
    words = ["alpha", "**beta**", "`gamma()`", "delta", "*epsilon*", "zeta"]
    out = " ".join(words[i % len(words)] for i in range(size // 6))
    return ("START " + out)[:size - 4] + " END"


def table(rows: int) -> str:
    return "\n".join(["| # | Name | Value |", "|---:|---|---:|"]
                     + [f"| {i + 1} | **name {i + 1}** | `{i * 7}` |" for i in range(rows)])


def long_reply() -> str:
    """About 40 KB of paragraphs, a code block and a 250-row table: formatted in slices."""
    paragraphs = [f"Paragraph {i}: the *model* wrote **this** with `code` and more words "
                  f"to make it long enough to matter. " * 3 for i in range(120)]
    return ("## Long answer\n\n" + "\n\n".join(paragraphs[:60])
            + "\n\n```python\nprint('sliced')\n```\n\n" + table(250) + "\n\n"
            + "\n\n".join(paragraphs[60:]) + "\n\nThe very last words.")


def seed(chat: ChatPage, *chats: tuple[str, str, str]) -> None:
    """Each chat: (id, title, reply) — a question and that reply."""
    conversations: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for n, (cid, title, reply) in enumerate(chats):
        t = 1_700_000_000_000 + n * 10_000
        conversations.append({"id": cid, "title": title, "model": "smart", "createdAt": t,
                              "updatedAt": t + 1})
        messages.append({"id": f"{cid}-q", "conversationId": cid, "role": "user",
                         "content": f"Question for {title}", "createdAt": t, "status": "done"})
        messages.append({"id": f"{cid}-a", "conversationId": cid, "role": "assistant",
                         "content": reply, "createdAt": t + 1, "status": "done",
                         "model": SMART})
    chat.seed(conversations, messages)


def open_seeded(page: Page, site_url: str, *chats: tuple[str, str, str]) -> ChatPage:
    chat = ChatPage(page, site_url).open()
    seed(chat, *chats)
    chat.reload()
    expect(page.locator("body")).to_have_attribute("data-markdown", "ready")
    return chat


def test_a_200_kb_one_line_reply_is_readable_and_stays_plain_with_a_note(
        page: Page, site_url: str) -> None:
    text = one_line()
    chat = open_seeded(page, site_url, ("line", "One long line", text))
    chat.sidebar_links.filter(has_text="One long line").click()
    reply = chat.assistant_messages().last
    expect(reply).to_contain_text("START alpha **beta** `gamma()`")  # its Markdown, as text
    expect(reply).to_contain_text(text[-40:])
    expect(reply.get_by_text(TOO_LONG_NOTE)).to_be_visible()
    page.wait_for_function(NO_RENDER_PENDING)
    assert reply.locator(".plain-text").text_content() == text


def test_a_10000_row_table_is_readable_and_shown_plain_with_a_note(
        page: Page, site_url: str) -> None:
    chat = open_seeded(page, site_url, ("table", "Big table", table(10_000)))
    chat.sidebar_links.filter(has_text="Big table").click()
    reply = chat.assistant_messages().last
    expect(reply).to_contain_text("| 1 | **name 1** | `0` |")
    expect(reply).to_contain_text("| 10000 | **name 10000** | `69993` |")
    expect(reply.get_by_role("table").or_(reply.get_by_text(TOO_LONG_NOTE))).to_be_visible()
    page.wait_for_function(NO_RENDER_PENDING)


def test_a_long_reply_opened_at_start_is_formatted_in_slices_into_one_table(
        page: Page, site_url: str) -> None:
    text = long_reply()
    chat = ChatPage(page, site_url).open()
    seed(chat, ("long", "Long answer", text))
    # Opened by its address: the reply is shown before Markdown is ready, then formatted.
    page.evaluate("() => { location.hash = '#/chat/long'; }")
    chat.reload()
    reply = chat.assistant_messages().last
    expect(reply).to_contain_text("The very last words.")
    expect(reply.get_by_role("table")).to_have_count(1)
    expect(reply.get_by_role("table").get_by_role("row")).to_have_count(251)
    expect(reply.get_by_role("heading", name="Long answer")).to_be_attached()
    expect(reply.get_by_role("button", name="Copy")).to_be_attached()
    expect(reply.locator("strong").first).to_have_text("this")
    expect(reply.get_by_text(TOO_LONG_NOTE)).to_have_count(0)
    page.wait_for_function(NO_RENDER_PENDING)
    expect(reply).to_contain_text("Paragraph 119: the model wrote this with code")


def test_a_slow_render_is_not_applied_to_a_chat_closed_meanwhile(
        page: Page, site_url: str) -> None:
    chat = open_seeded(page, site_url, ("long", "Long answer", long_reply()),
                       ("short", "Short chat", "A *short* reply."))
    chat.sidebar_links.filter(has_text="Long answer").click()
    expect(chat.assistant_messages().last).to_contain_text("The very last words.")
    chat.sidebar_links.filter(has_text="Short chat").click()  # before it is formatted
    expect(chat.assistant_messages()).to_have_count(1)
    expect(chat.assistant_messages().last.locator("em")).to_have_text("short")
    page.wait_for_function(NO_RENDER_PENDING)
    thread = page.locator("#thread")
    expect(thread.get_by_role("table")).to_have_count(0)
    expect(thread).not_to_contain_text("The very last words.")
    # Opened again, it is formatted in full.
    chat.sidebar_links.filter(has_text="Long answer").click()
    expect(chat.assistant_messages().last.get_by_role("table")).to_have_count(1)
    page.wait_for_function(NO_RENDER_PENDING)


def test_a_long_reply_regenerated_while_it_is_formatted_keeps_the_new_reply(
        page: Page, site_url: str) -> None:
    chat = open_seeded(page, site_url, ("long", "Long answer", long_reply()))
    chat.sidebar_links.filter(has_text="Long answer").click()
    expect(chat.assistant_messages().last).to_contain_text("The very last words.")
    chat.page.get_by_role("button", name="Regenerate").click()
    reply = chat.wait_for_reply_done()
    page.wait_for_function(NO_RENDER_PENDING)
    expect(chat.assistant_messages()).to_have_count(1)
    expect(reply).not_to_contain_text("The very last words.")
    expect(reply.get_by_role("table")).to_have_count(0)
