"""Keyboard use, screen-reader announcements, auto-scroll, the mobile drawer, and axe-core
audits of the empty chat, a long Markdown reply, the mobile layout, and the Download
Manager, a model banner, a toast, a confirmation dialog and the shortcuts list, each in
the light and the dark theme (the system's preference, emulated)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .pages.chat import ChatPage, conversation_record, message_record
from .pages.models import Models

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
_spec = importlib.util.spec_from_file_location("playwright_config", ROOT / "playwright.config.py")
assert _spec and _spec.loader
settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(settings)

LONG_MARKDOWN = "/echo " + "\n\n".join(
    [f"## Section {i}\n\nSome *text* with `code` and a [link](https://example.org/{i}).\n\n"
     f"- first point\n- second point\n\n| k | v |\n|---|---|\n| {i} | {i * i} |\n\n"
     f"```js\nconsole.log({i});\n```" for i in range(8)])


def _audit(page: Page) -> list[str]:
    """Serious or critical axe-core violations of the page as it is now."""
    # Evaluated by the test driver, not added as a <script>: the page's policy refuses
    # inline scripts (as it should), and the driver's evaluation is not the page's.
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, { resultTypes: ["violations"] });
        return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
    }""")
    return list(result)


@pytest.fixture(params=["light", "dark"])
def scheme(request: pytest.FixtureRequest, page: Page) -> str:
    """The system's colour scheme for the test (the app's theme is System by default)."""
    page.emulate_media(color_scheme=request.param)
    return str(request.param)


BACKGROUND = {"light": "rgb(247, 247, 251)", "dark": "rgb(20, 21, 28)"}
"""The page's background in each theme (--bg in css/app.css)."""


def _in_theme(page: Page, scheme: str) -> None:
    expect(page.locator("html")).to_have_css("background-color", BACKGROUND[scheme])


def test_axe_finds_nothing_serious_in_the_empty_chat(page: Page, site_url: str,
                                                     scheme: str) -> None:
    ChatPage(page, site_url).open()
    _in_theme(page, scheme)
    assert _audit(page) == []


def test_axe_finds_nothing_serious_with_a_long_markdown_reply(page: Page, site_url: str,
                                                              scheme: str) -> None:
    chat = ChatPage(page, site_url).open()
    _in_theme(page, scheme)
    expect(page.locator("body")).to_have_attribute("data-markdown", "ready")
    chat.send(LONG_MARKDOWN)
    expect(chat.wait_for_reply_done().get_by_role("heading", name="Section 7")).to_be_visible()
    page.get_by_role("button", name="Performance").click()
    assert _audit(page) == []


def test_mobile_drawer_and_axe(page: Page, site_url: str, scheme: str) -> None:
    page.set_viewport_size(settings.VIEWPORTS["mobile"])
    chat = ChatPage(page, site_url).open()
    _in_theme(page, scheme)
    chat.send("/echo on a phone")
    chat.wait_for_reply_done()
    sidebar = page.get_by_role("navigation", name="Conversations")
    expect(sidebar).to_be_hidden()
    # The composer stays at the bottom of the screen.
    box = page.locator("#composer").bounding_box()
    assert box is not None and box["y"] + box["height"] >= settings.VIEWPORTS["mobile"][
        "height"] - 24
    toggle = page.get_by_role("button", name="Conversations")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar).to_be_visible()
    assert _audit(page) == []
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    # A tap on the dimmed chat beside the drawer closes it and reaches nothing below:
    # here it lands where the Send button is, and nothing is sent.
    chat.message_box.fill("not sent by a tap beside the drawer")
    toggle.click()
    expect(sidebar).to_be_visible()
    send, drawer = chat.send_button.bounding_box(), sidebar.bounding_box()
    assert send is not None and drawer is not None
    assert send["x"] > drawer["x"] + drawer["width"]
    page.mouse.click(send["x"] + send["width"] / 2, send["y"] + send["height"] / 2)
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    expect(chat.message_box).to_have_value("not sent by a tap beside the drawer")
    expect(chat.user_messages()).to_have_count(1)
    chat.message_box.fill("")
    toggle.click()
    chat.sidebar_links.first.click()
    expect(sidebar).to_be_hidden()
    expect(chat.user_bubbles()).to_have_text(["/echo on a phone"])


def test_axe_finds_nothing_serious_in_downloads_banner_toast_and_dialog(
        page: Page, site_url: str, scheme: str) -> None:
    chat = ChatPage(page, site_url).open()
    _in_theme(page, scheme)
    chat.send("/echo warm up smart")
    chat.wait_for_reply_done()
    chat.seed([conversation_record("g" * 32, "Big questions", 9_000, model="genius")],
              [message_record("g1", "g" * 32, "user", "hello", 9_000)])
    chat.reload()
    chat.sidebar_links.filter(has_text="Big questions").click()
    expect(page.get_by_role("note").filter(has_text="This chat uses Genius")).to_be_visible()
    Models(page).open_manager()
    page.get_by_role("button", name="Export all").click()
    expect(chat.toasts).to_contain_text("Exported 2 conversations.")
    assert _audit(page) == []
    page.keyboard.press("Escape")
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Remove files").click()
    expect(chat.confirm_dialog).to_be_visible()
    assert _audit(page) == []
    chat.confirm_dialog.get_by_role("button", name="Keep files").click()
    expect(chat.confirm_dialog).to_be_hidden()
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    assert _audit(page) == []


def test_keyboard_only_chat_with_visible_focus(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to message")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(chat.message_box).to_be_focused()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(chat.message_box).to_have_value("line one\nline two")
    page.keyboard.press("Enter")
    expect(chat.wait_for_reply_done()).to_be_visible()
    expect(chat.user_bubbles()).to_have_text(["line one\nline two"])
    # Every control reached by Tab shows a focus ring.
    chat.sidebar_links.first.focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")


def test_finished_reply_is_announced(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo announce me")
    chat.wait_for_reply_done()
    expect(page.locator("#announcer")).to_have_text("Reply finished: announce me")
    expect(page.locator("#announcer")).to_have_attribute("role", "status")


def test_auto_scroll_follows_unless_the_user_scrolled_up(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(
        query="engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=60")
    chat.send("/echo " + "\n\n".join(f"paragraph {i}" for i in range(60)))
    thread = page.locator("#thread")
    expect(chat.last_reply().locator(".bubble")).to_contain_text("paragraph 30")
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 48"
    assert thread.evaluate(at_bottom)
    thread.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    expect(chat.last_reply().locator(".bubble")).to_contain_text("paragraph 50")
    assert thread.evaluate("el => el.scrollTop") < 50
    chat.wait_for_reply_done()
