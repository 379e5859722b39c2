"""The chat features people expect (issue 13): the theme choice, jump to latest, keyboard
shortcuts, Markdown export, message actions and starter suggestions, driven as a user
would."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage, conversation_record, message_record

BACKGROUND = {"light": "rgb(247, 247, 251)", "dark": "rgb(20, 21, 28)"}
"""The page's background in each theme (--bg in css/app.css)."""


def test_theme_choice_is_kept_and_applied_before_python_starts(
        page: Page, site_url: str) -> None:
    page.emulate_media(color_scheme="light")
    chat = ChatPage(page, site_url).open()
    html = page.locator("html")
    theme = page.get_by_role("combobox", name="Theme")
    expect(theme).to_have_value("system")
    expect(html).to_have_css("background-color", BACKGROUND["light"])
    page.emulate_media(color_scheme="dark")  # System follows the system, live
    expect(html).to_have_css("background-color", BACKGROUND["dark"])
    page.emulate_media(color_scheme="light")
    theme.select_option("Dark")
    expect(html).to_have_css("background-color", BACKGROUND["dark"])
    # On the next load the stored choice is there at first paint, long before Python runs.
    page.reload(wait_until="domcontentloaded")
    early = page.evaluate("""() => ({ready: document.body.dataset.ready,
        theme: document.documentElement.dataset.theme,
        bg: getComputedStyle(document.documentElement).backgroundColor})""")
    assert early == {"ready": "false", "theme": "dark", "bg": BACKGROUND["dark"]}
    chat.wait_until_ready()
    expect(theme).to_have_value("dark")
    # An explicit Light wins over a dark system; System follows it again.
    page.emulate_media(color_scheme="dark")
    theme.focus()
    theme.select_option("Light")
    expect(html).to_have_css("background-color", BACKGROUND["light"])
    theme.select_option("System")
    expect(html).to_have_css("background-color", BACKGROUND["dark"])
    chat.reload()
    expect(theme).to_have_value("system")
    expect(html).not_to_have_attribute("data-theme", "light")


STREAMING = "engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=60"
"""A reply streams for a few seconds (the jump button is for a thread that grows)."""

AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 48"


def test_jump_to_latest_appears_when_scrolled_up_and_returns_to_the_end(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=STREAMING)
    jump = page.get_by_role("button", name="Jump to latest")
    thread = page.locator("#thread")
    chat.send("/echo " + "\n\n".join(f"paragraph {i}" for i in range(80)))
    expect(chat.last_reply().locator(".bubble")).to_contain_text("paragraph 20")
    expect(jump).to_be_hidden()  # following the reply
    thread.hover()
    page.mouse.wheel(0, -20_000)
    expect(jump).to_be_visible()
    expect(chat.last_reply().locator(".bubble")).to_contain_text("paragraph 40")
    assert not thread.evaluate(AT_BOTTOM)  # not dragged down while reading above
    jump.click()
    expect(jump).to_be_hidden()
    expect(chat.message_box).to_be_focused()
    chat.wait_for_reply_done()
    assert thread.evaluate(AT_BOTTOM)  # followed the rest of the reply
    # In a finished long thread too, and it goes away when the reader scrolls back down.
    thread.hover()
    page.mouse.wheel(0, -20_000)
    expect(jump).to_be_visible()
    page.mouse.wheel(0, 40_000)
    expect(jump).to_be_hidden()


def test_keyboard_shortcuts_and_their_list(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=STREAMING)
    sidebar = page.get_by_role("navigation", name="Conversations")
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    # `?` outside a text field shows the list; Esc closes it and focus goes back.
    chat.message_box.type("what?")
    expect(chat.message_box).to_have_value("what?")
    expect(shortcuts).to_be_hidden()
    chat.message_box.fill("")
    theme = page.get_by_role("combobox", name="Theme")
    page.get_by_role("button", name="Export all").focus()
    page.keyboard.press("?")
    expect(shortcuts).to_be_visible()
    expect(shortcuts).to_contain_text("New chat")
    expect(shortcuts).to_contain_text("Show or hide the conversations")
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()
    expect(page.get_by_role("button", name="Export all")).to_be_focused()
    opener = page.get_by_role("button", name="Keyboard shortcuts")
    opener.click()
    expect(shortcuts).to_be_visible()
    shortcuts.get_by_role("button", name="Close").click()
    expect(opener).to_be_focused()
    # Shift+Esc: to the message box from anywhere.
    theme.focus()
    page.keyboard.press("Shift+Escape")
    expect(chat.message_box).to_be_focused()
    # Esc stops a reply being written.
    chat.send("/echo " + " ".join(f"word{i}" for i in range(400)))
    expect(chat.last_reply()).to_contain_text("word5")
    page.keyboard.press("Escape")
    expect(chat.stop_button).to_be_hidden()
    expect(chat.last_reply()).to_contain_text("stopped")
    # Ctrl+Shift+O: a new chat, ready for typing.
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f]{32}$"))
    sidebar.get_by_role("link").first.focus()
    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(re.compile(r"#/chat$"))
    expect(chat.user_messages()).to_have_count(0)
    expect(chat.message_box).to_be_focused()
    # Ctrl+Shift+S hides and shows the conversations.
    page.keyboard.press("Control+Shift+S")
    expect(sidebar).to_be_hidden()
    page.keyboard.press("Control+Shift+S")
    expect(sidebar).to_be_visible()


def _download(page: Page, button_name: str, tmp_path: Path) -> tuple[str, str]:
    with page.expect_download() as info:
        page.get_by_role("button", name=button_name).click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return info.value.suggested_filename, target.read_text(encoding="utf-8")


def test_export_as_markdown_one_or_all(page: Page, site_url: str, tmp_path: Path) -> None:
    chat = ChatPage(page, site_url).open()
    chat.seed(
        [conversation_record("a" * 32, "Trip plans", 1_000),
         conversation_record("b" * 32, "Recipes", 2_000, model="quick")],
        [message_record("m1", "a" * 32, "user", "Where to go?", 1_000),
         message_record("m2", "a" * 32, "assistant", "**Lisbon**\n\n```sh\nls\n```", 61_000),
         message_record("m3", "b" * 32, "user", "Soup ideas", 2_000)])
    chat.reload()
    name, text = _download(page, "Save all as Markdown", tmp_path)
    assert re.fullmatch(r"localchat-all-\d{4}-\d\d-\d\d\.md", name)
    assert text.startswith("# LocalChat export")
    assert text.index("## Recipes") < text.index("## Trip plans")
    assert "### You · 1970-01-01 00:00 UTC\n\nWhere to go?" in text
    assert ("### Assistant (Smart, `Llama-3.2-3B-Instruct-q4f16_1-MLC`) · 1970-01-01 00:01 UTC"
            "\n\n**Lisbon**\n\n```sh\nls\n```") in text
    expect(chat.toasts).to_contain_text("Exported 2 conversations as Markdown.")
    name, text = _download(page, "Save “Recipes” as Markdown", tmp_path)
    assert name.startswith("localchat-recipes-") and name.endswith(".md")
    assert "## Recipes\n\nModel: Quick" in text and "Trip plans" not in text
    expect(chat.toasts).to_contain_text("Exported 1 conversation as Markdown.")
