"""What a new user meets (issue 12): the composer says what is true, toasts stay out of
the way, an opened chat shows its last reply, the phone layout holds, errors say why."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from .pages.chat import ChatPage, conversation_record, message_record
from .pages.models import SIM, Models

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


def _overlaps(a: Locator, b: Locator, clip: dict[str, float] | None = None) -> bool:
    """Whether the boxes overlap; with `clip`, only the part of b inside it counts (a
    message scrolled out of the thread is hidden by it, not covered)."""
    one, two = a.bounding_box(), b.bounding_box()
    assert one is not None and two is not None
    if clip is not None:
        top = max(two["y"], clip["y"])
        bottom = min(two["y"] + two["height"], clip["y"] + clip["height"])
        if bottom <= top:
            return False
        two = {**two, "y": top, "height": bottom - top}
    return (one["x"] < two["x"] + two["width"] and two["x"] < one["x"] + one["width"]
            and one["y"] < two["y"] + two["height"] and two["y"] < one["y"] + one["height"])


def _assert_toast_covers_nothing(page: Page, chat: ChatPage) -> None:
    toast = chat.toasts.locator(".toast").first
    expect(toast).to_be_visible()
    thread = page.locator("#thread").bounding_box()
    assert thread is not None
    for covered in page.get_by_role("article").all():
        assert not _overlaps(toast, covered, clip=thread), covered
    assert not _overlaps(toast, page.locator("#composer"))


def test_now_using_is_told_only_for_a_chosen_model_and_toasts_cover_no_message(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    models.wait_state("Smart", "Ready")
    expect(chat.toasts).to_contain_text("Now using Smart.")  # asked for: told
    models.row("Quick").get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Ready")
    quick, smart = "q" * 32, "s" * 32
    chat.seed([conversation_record(quick, "Quick chat", 2_000, model="quick"),
               conversation_record(smart, "Smart chat", 1_000)],
              [message_record("q1", quick, "user", "A long first question. " * 12, 2_000),
               message_record("s1", smart, "user", "hello", 1_000)])
    chat.reload()
    models = Models(page)
    toasts = chat.toasts.locator(".toast")
    # A load (Smart for the new chat) and a chat switch (Quick) are no news. (A reply
    # comes only once its model is loaded, well within a toast's 6 s.)
    chat.send("/echo in smart")
    chat.wait_for_reply_done()
    expect(toasts).to_have_count(0)
    chat.sidebar_links.filter(has_text="Quick chat").click()
    expect(chat.user_messages()).to_have_count(1)
    chat.send("/echo in quick")
    expect(chat.wait_for_reply_done().locator(".meta")).to_contain_text("Quick (simulated)")
    expect(toasts).to_have_count(0)
    # Choosing a model is: told, above the thread, covering no message and not the composer.
    models.choose("Smart")
    expect(chat.toasts).to_contain_text("Now using Smart.")
    _assert_toast_covers_nothing(page, chat)
    page.set_viewport_size({"width": 390, "height": 844})
    models.choose("Quick")
    expect(chat.toasts).to_contain_text("Now using Quick.")
    _assert_toast_covers_nothing(page, chat)
