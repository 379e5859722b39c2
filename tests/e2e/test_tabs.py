"""Several tabs of one browser profile, as a user with LocalChat open twice meets them:
one tab owns the downloads and the engine (the first one opened), the others show the
same Download Manager live, act through the owner, and chat with the owner's engine.
When the owner tab closes, another takes over and resumes from the stored files."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage
from .pages.models import SIM, SLOW, Models, count_workers, record_shards

# Replies slow enough to act while one streams (the simulated engine's /echo is not
# paced, a normal prompt gets a long deterministic reply at sim_tps tokens a second).
SLOW_REPLIES = SIM.replace("sim_tps=0", "sim_tps=15")


def two_tabs(page: Page, new_tab: Callable[[str], Page], site_url: str,
             query: str) -> tuple[ChatPage, ChatPage]:
    """The first tab opened owns the models; the second one follows it."""
    count_workers(page)
    first = ChatPage(page, site_url).open(query=query)
    Models(page)
    second_page = new_tab(site_url + f"?{query}#/chat")
    count_workers(second_page)  # from its next load: the one below
    second_page.reload()
    second = ChatPage(second_page, site_url)
    second.wait_until_ready()
    Models(second_page)
    expect(page.locator("body")).to_have_attribute("data-tab", "owner")
    expect(second_page.locator("body")).to_have_attribute("data-tab", "follower")
    return first, second


def test_both_tabs_ask_for_one_model_and_it_downloads_once(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    shards = record_shards(page)
    first, second = two_tabs(page, new_tab, site_url, SLOW)
    one, two = Models(first.page), Models(second.page)
    two.open_manager()
    two.row("Quick").get_by_role("button", name="Download").click()
    one.choose("Quick")  # the first tab's chat asks for Quick too: the same download
    # The follower shows the owner's download moving, then both show it Ready.
    expect(two.row("Quick").get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9]\d?$"))
    for models in (two, one):
        models.wait_state("Quick", "Ready")
    counts = Counter(shards)
    assert counts and max(counts.values()) == 1, counts  # no shard fetched twice
    # Removing the files in the follower removes them for both.
    two.row("Quick").get_by_role("button", name="Remove files").click()
    second.page.get_by_role("alertdialog").get_by_role("button", name="Remove files").click()
    for models in (one, two):
        models.wait_state("Quick", "Not downloaded")


def test_the_follower_chats_with_the_owners_engine_one_model_in_gpu_memory(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    first, second = two_tabs(page, new_tab, site_url, SIM)
    two = Models(second.page)
    second.page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    two.wait_state("Smart", "Ready")
    expect(two.selector).to_have_text("Model: Smart (simulated)")
    expect(second.toasts).to_contain_text("Now using Smart.")
    second.send("/echo from the second tab")
    expect(second.wait_for_reply_done().locator(".bubble")).to_have_text("from the second tab")
    first.send("/echo from the first tab")
    expect(first.wait_for_reply_done().locator(".bubble")).to_have_text("from the first tab")
    # One engine worker in all: the owner's. The follower never made one.
    assert page.evaluate("window.__workers.made") == 1
    assert second.page.evaluate("window.__workers.made") == 0


def test_replies_take_turns_and_stop_stops_only_that_tabs_reply(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    first, second = two_tabs(page, new_tab, site_url, SLOW_REPLIES)
    second.page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    Models(second.page).wait_state("Smart", "Ready")
    first.send("Tell me a long story about two tabs.")
    expect(first.last_reply().locator(".bubble")).not_to_be_empty()
    second.send("/echo waiting for my turn")
    expect(second.stop_button).to_be_visible()
    second.stop_button.click()  # stops the second tab's reply, which had not begun
    expect(second.last_reply()).to_contain_text("stopped")
    expect(first.stop_button).to_be_visible()  # the first tab's reply goes on
    first_text = first.last_reply().locator(".bubble").inner_text()
    expect(first.last_reply().locator(".bubble")).not_to_have_text(first_text)
    first.stop_button.click()
    first.wait_for_reply_done()
    # With the engine free again, the second tab's next reply comes.
    second.send("/echo my turn now")
    expect(second.wait_for_reply_done().locator(".bubble")).to_have_text("my turn now")


def test_cancel_in_the_follower_cancels_the_owners_download(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    first, second = two_tabs(page, new_tab, site_url, SLOW)
    one, two = Models(first.page), Models(second.page)
    one.open_manager()
    one.row("Smart").get_by_role("button", name="Download").click()
    two.open_manager()
    two.wait_state("Smart", "Downloading")
    two.row("Smart").get_by_role("button", name="Cancel").click()
    second.page.get_by_role("alertdialog").get_by_role("button", name="Cancel download").click()
    for models in (one, two):
        models.wait_state("Smart", "Canceled")
        expect(models.row("Smart").get_by_role("button", name="Resume")).to_be_visible()


def test_when_the_owner_closes_another_tab_resumes_from_the_stored_files(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    shards = record_shards(page)
    first, second = two_tabs(page, new_tab, site_url, SLOW)
    one, two = Models(first.page), Models(second.page)
    one.open_manager()
    one.row("Smart").get_by_role("button", name="Download").click()
    two.open_manager()
    bar = two.row("Smart").get_by_role("progressbar")
    second.page.wait_for_function(
        "() => document.querySelector('[data-key=smart] [role=progressbar]')"
        "?.getAttribute('aria-valuenow') >= 30", polling=100, timeout=30_000)
    fetched = len(set(shards))
    page.close()  # the owner tab goes
    expect(second.page.locator("body")).to_have_attribute("data-tab", "owner")
    # It goes on from the stored files: never back to the start.
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([3-9]\d|100)$"))
    two.wait_state("Smart", "Ready")
    counts = Counter(shards)
    again = sum(n - 1 for n in counts.values())
    assert again <= 4, counts  # only shards cut mid-way by the close are fetched again
    assert fetched > 0
    second.send("/echo still here")
    expect(second.wait_for_reply_done().locator(".bubble")).to_have_text("still here")


def test_a_tab_closed_mid_reply_frees_the_engine_for_the_others(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    crawl = SIM.replace("sim_tps=0", "sim_tps=2")  # its reply would take minutes
    first, second = two_tabs(page, new_tab, site_url, crawl)
    second.page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    Models(second.page).wait_state("Smart", "Ready")
    second.send("Tell me a long story about a closed tab.")
    expect(second.last_reply().locator(".bubble")).not_to_be_empty()
    second.page.close()
    first.send("/echo the engine is mine again")
    expect(first.wait_for_reply_done().locator(".bubble")).to_have_text(
        "the engine is mine again")


def test_a_reply_streaming_when_the_owner_closes_starts_again_in_the_new_owner(
        page: Page, new_tab: Callable[[str], Page], site_url: str) -> None:
    _first, second = two_tabs(page, new_tab, site_url, SLOW_REPLIES)
    second.page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    Models(second.page).wait_state("Smart", "Ready")
    second.send("Tell me a story about a tab that took over.")
    expect(second.last_reply().locator(".bubble")).not_to_be_empty()
    page.close()
    expect(second.page.locator("body")).to_have_attribute("data-tab", "owner")
    reply = second.wait_for_reply_done(timeout=60_000)
    expect(reply).not_to_have_class(re.compile("error"))
    expect(reply.locator(".bubble")).not_to_be_empty()
    expect(second.alerts).to_have_count(0)
    # Its own engine now: the second tab made one.
    assert second.page.evaluate("window.__workers.made") == 1
