"""The chat features people expect (issue 13): the theme choice, jump to latest, keyboard
shortcuts, Markdown export, message actions and starter suggestions, driven as a user
would."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage

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
