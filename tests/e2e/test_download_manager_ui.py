"""The model controls as a new user meets them (issue 12): a reload that never flashes a
false state, the Download Manager as a panel that never hides the chat and closes the
usual ways, progress and failures on the Downloads button, the queue's order and retry
countdown, and a model list that keeps keyboard focus while a download ticks."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage
from .pages.models import SIM, Models

# Every text the model selector and the banner show, from the first paint on.
RECORD_MODEL_TEXTS = """
window.__modelTexts = [];
new MutationObserver(() => {
    const button = document.getElementById("model-button");
    const banner = document.getElementById("model-banner");
    const text = (button ? button.textContent : "") + " | " + (banner ? banner.textContent : "");
    const seen = window.__modelTexts;
    if (seen[seen.length - 1] !== text) seen.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_a_reload_with_the_model_stored_never_shows_it_missing(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    chat.send("/echo smart is here")
    chat.wait_for_reply_done()
    page.add_init_script(RECORD_MODEL_TEXTS)
    chat.reload()
    Models(page)
    expect(models.selector).to_have_text("Model: Smart (simulated)")
    seen: list[str] = page.evaluate("window.__modelTexts")
    false = [t for t in seen if re.search(r"not downloaded|queued|Download Smart|isn't", t)]
    assert not false, seen
