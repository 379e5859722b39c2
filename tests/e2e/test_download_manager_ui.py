"""The model controls as a new user meets them (issue 12): a reload that never flashes a
false state, the Download Manager as a panel that never hides the chat and closes the
usual ways, progress and failures on the Downloads button, the queue's order and retry
countdown, and a model list that keeps keyboard focus while a download ticks."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from .pages.chat import ChatPage
from .pages.models import SIM, SLOW, Models
from .test_accessibility import _audit, settings

PHONE = settings.VIEWPORTS["mobile"]

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


def _box(locator: Locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def _in_view(page: Page, box: dict[str, float]) -> bool:
    size = page.viewport_size
    assert size is not None
    return box["y"] >= 0 and box["y"] + box["height"] <= size["height"] + 1


def _assert_chat_in_view(page: Page, chat: ChatPage, manager: Locator) -> None:
    """The thread's newest message and the composer are on screen, beside or below the
    open Download Manager, never under it."""
    panel = _box(manager)
    newest = _box(chat.assistant_messages().last)
    composer = _box(page.locator("#composer"))
    assert not _overlap(panel, newest), (panel, newest)
    assert not _overlap(panel, composer), (panel, composer)
    assert _in_view(page, newest) and _in_view(page, composer), (newest, composer)


def test_the_download_manager_sits_beside_the_thread_and_closes_the_usual_ways(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    manager = models.manager
    expect(manager).to_be_visible()  # it opened by itself: the focus did not move into it
    expect(manager).not_to_be_focused()
    models.wait_state("Smart", "Ready")
    chat.send("/echo the newest message stays in view")
    chat.wait_for_reply_done()
    expect(manager).to_be_visible()
    _assert_chat_in_view(page, chat, manager)
    assert _audit(page) == []

    # Esc closes it from anywhere (here the message box), and the focus stays there.
    chat.message_box.focus()
    page.keyboard.press("Escape")
    expect(manager).to_be_hidden()
    expect(chat.message_box).to_be_focused()

    downloads = page.get_by_role("button", name=re.compile("^Downloads"))
    downloads.click()
    expect(manager).to_be_focused()
    page.keyboard.press("Escape")
    expect(manager).to_be_hidden()
    expect(downloads).to_be_focused()

    # A click outside it closes it.
    downloads.click()
    expect(manager).to_be_visible()
    chat.assistant_messages().last.locator(".bubble").click()
    expect(manager).to_be_hidden()

    # Its close button, and the focus goes back to the Downloads button.
    downloads.click()
    manager.get_by_role("button", name="Close Download Manager").click()
    expect(manager).to_be_hidden()
    expect(downloads).to_be_focused()

    # One popover owner: the performance panel and the Download Manager take turns.
    downloads.click()
    page.get_by_role("button", name="Performance").click()
    expect(page.get_by_role("region", name="Last reply")).to_be_visible()
    expect(manager).to_be_hidden()
    downloads.click()
    expect(page.get_by_role("region", name="Last reply")).to_be_hidden()
    expect(manager).to_be_visible()


def test_on_a_phone_the_download_manager_leaves_the_chat_in_view(
        page: Page, site_url: str) -> None:
    page.set_viewport_size(PHONE)
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    chat.send("/echo first")
    chat.wait_for_reply_done()
    for i in range(6):  # enough to fill the thread
        chat.send(f"/echo {'a long line of text that wraps on a phone ' * 3}{i}")
        chat.wait_for_reply_done()
    manager = models.open_manager()
    _assert_chat_in_view(page, chat, manager)
    # A sheet above the thread, not over it: the thread starts below it.
    panel, thread = _box(manager), _box(page.locator("#thread"))
    assert thread["y"] >= panel["y"] + panel["height"] - 1, (panel, thread)
    close = manager.get_by_role("button", name="Close Download Manager")
    close_box = _box(close)
    assert close_box["width"] >= 44 and close_box["height"] >= 44, close_box
    assert _audit(page) == []
    close.click()
    expect(manager).to_be_hidden()


def test_progress_and_failure_show_on_the_downloads_button_with_a_toast_and_banner_retry(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW + "&sim_fail_always=smart@40")
    models = Models(page)
    page.get_by_role("button", name=re.compile(r"^Download Smart")).click()
    expect(models.manager).to_be_visible()
    page.keyboard.press("Escape")
    expect(models.manager).to_be_hidden()
    downloads = page.locator("#downloads-button")
    expect(downloads).to_have_accessible_name(re.compile(r"^Downloads, Smart [1-9]\d? %$"))
    expect(downloads.locator(".downloads-ring")).to_be_visible()
    # Every automatic retry fails too: the button is marked, a toast offers Retry.
    expect(downloads).to_have_accessible_name("Downloads, Smart failed", timeout=30_000)
    expect(downloads.locator(".downloads-failed")).to_be_visible()
    toast = chat.toasts.locator(".toast").filter(has_text="Smart’s download failed.")
    expect(toast).to_be_visible()
    models.open_manager()
    reason = models.row("Smart").locator(".row-detail").inner_text()
    page.keyboard.press("Escape")
    banner = page.get_by_role("note").filter(has_text="This chat uses Smart")
    expect(banner).to_contain_text(f"whose download failed. {reason}")
    expect(banner.get_by_role("button", name="Retry")).to_be_visible()
    toast.get_by_role("button", name="Retry").click()
    expect(toast).to_have_count(0)
    expect(downloads).to_have_accessible_name(re.compile(r"^Downloads, Smart \d+ %$"))


def test_keyboard_focus_stays_on_an_option_while_a_download_ticks(
        page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Quick").get_by_role("button", name="Download").click()
    page.keyboard.press("Escape")
    models.selector.focus()
    page.keyboard.press("ArrowDown")
    expect(models.listbox).to_be_visible()
    quick, genius = models.option("Quick"), models.option("Genius")
    expect(quick).to_contain_text(re.compile(r"Downloading \d+%"))
    page.keyboard.press("End")
    expect(genius).to_be_focused()
    # Several progress ticks later the option still has the focus, and the keys still work.
    first = int(re.findall(r"Downloading (\d+)%", quick.inner_text())[0])
    expect(quick).to_contain_text(re.compile(
        "Downloading (" + "|".join(str(p) for p in range(first + 3, 101)) + ")%|Ready"))
    expect(genius).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(models.option("Smart")).to_be_focused()


def test_the_queue_is_listed_in_line_and_a_waiting_retry_counts_down(
        page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SLOW + "&sim_fail=quick@30&retry_backoff_s=4")
    models = Models(page)
    manager = models.open_manager()
    for label in ("Quick", "Genius", "Smart"):
        models.row(label).get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Downloading")
    expect(manager.get_by_role("listitem").locator("strong")).to_have_text(
        ["Quick (simulated)", "Genius (simulated)", "Smart (simulated)"])
    expect(models.row("Genius").locator(".row-detail")).to_have_text(
        re.compile(r"^2nd in line"))
    expect(models.row("Smart").locator(".row-detail")).to_have_text(
        re.compile(r"^3rd in line"))
    detail = models.row("Quick").locator(".row-detail")
    expect(detail).to_contain_text(re.compile(r"Retrying in [1-4] s \(1/3\)"), timeout=30_000)
    first = int(re.findall(r"Retrying in (\d) s", detail.inner_text())[0])
    if first > 1:  # the countdown runs by itself, second by second
        expect(detail).to_contain_text(re.compile(
            rf"Retrying in [1-{first - 1}] s \(1/3\)|Retrying \(1/3\)…"))
    models.wait_state("Quick", "Ready", timeout=40_000)
    expect(models.row("Smart").locator(".row-detail")).to_have_text(
        re.compile(r"^2nd in line"))


def test_each_choice_shows_its_cost_and_a_software_gpu_is_named_before_any_download(
        page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SIM + "&sim_gpu=fallback")
    models = Models(page)
    banner = page.get_by_role("note").filter(has_text="To start chatting")
    expect(banner).to_contain_text(re.compile(r"SwiftShader.*replies will be very slow"))
    models.selector.click()
    expect(models.option("Genius")).to_contain_text(
        re.compile(r"[\d.]+ MB download · best answers, needs a strong GPU"))
    expect(models.option("Quick")).to_contain_text("download · fastest")
    assert _audit(page) == []
    page.keyboard.press("Escape")
    manager = models.open_manager()
    expect(manager).to_contain_text("SwiftShader")
    expect(models.state("Smart")).to_have_text("Not downloaded")  # said before any download


RECORD_KEPT = """
window.__kept = [];
new MutationObserver(() => {
    const detail = document.querySelector('#download-list [data-key="smart"] .row-detail');
    const m = detail && detail.textContent.match(/Canceled\\. (.+?) of .+ kept/);
    if (m && window.__kept[window.__kept.length - 1] !== m[1]) window.__kept.push(m[1]);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_a_canceled_row_shows_only_the_stored_figure(page: Page, site_url: str) -> None:
    page.add_init_script(RECORD_KEPT)
    ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    bar = models.row("Smart").get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([2-9]\d|100)$"),
                                  timeout=30_000)
    models.row("Smart").get_by_role("button", name="Cancel").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Cancel download").click()
    models.wait_state("Smart", "Canceled")
    row = models.row("Smart")
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    expect(row).to_contain_text(re.compile(r"Canceled\. [\d.]+ (KB|MB) of [\d.]+ MB kept"))
    expect(models.row("Smart").locator(".row-detail")).not_to_contain_text("Counting")
    shown = page.evaluate("window.__kept")
    assert len(shown) == 1, shown  # one figure, the stored one: never one that shrinks
    row.get_by_role("button", name="Remove files").click()
    expect(page.get_by_role("alertdialog")).to_contain_text(f"This frees {shown[0]}.")
    page.get_by_role("alertdialog").get_by_role("button", name="Keep files").click()
