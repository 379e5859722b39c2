"""What a new user meets (issue 12): the composer says what is true, toasts stay out of
the way, an opened chat shows its last reply, the phone layout holds, errors say why."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage
from .pages.models import Models

# Downloads slow enough to answer while one runs (Genius ≈ 8.8 MB at 1 MB/s ≈ 9 s), replies
# slow enough to be read while they stream (4 tokens/s).
SLOW_GENIUS = ("engine=sim&sim_scale=0.002&sim_mbps=1&sim_compile_s=0.2&sim_tps=4"
               "&retry_backoff_s=0.05")


def test_the_composer_says_who_answers_while_the_chats_model_downloads(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW_GENIUS)
    models = Models(page)
    chat.send("/echo hi")
    chat.wait_for_reply_done()
    models.choose("Genius")
    expect(chat.status).to_have_text("Smart answers until Genius is ready.")
    chat.send("/echo " + " ".join(f"word{i}" for i in range(40)))
    expect(chat.last_reply().locator(".bubble")).to_contain_text("word1")
    expect(chat.status).to_have_text("Smart is answering; Genius takes over when it's ready.")
    expect(chat.status).not_to_contain_text("Waiting")
    chat.stop_button.click()
    expect(chat.wait_for_reply_done().locator(".meta")).to_contain_text("Smart (simulated)")
