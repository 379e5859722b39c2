"""Several tabs of one browser profile (same origin, same storage), as a user with more
than one LocalChat tab open meets them: what one tab changes shows in the others without
a reload, a chat deleted in one tab can't swallow a message sent in another, two renames
end as the later one everywhere, and a reply survives a reload of its tab."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from .pages.chat import FAST_SIM, ChatPage
from .pages.models import Models

SLOW_REPLY = "engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=12"
LONG_ECHO = "/echo " + " ".join(f"word{i}" for i in range(60))


def _second_tab(new_tab: Callable[[str], Page], site_url: str, route: str = "#/chat",
                query: str = FAST_SIM) -> ChatPage:
    tab = ChatPage(new_tab(f"{site_url}?{query}{route}"), site_url)
    tab.wait_until_ready()
    return tab


def _conversation_id(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f]{32}$"))
    return page.url.rsplit("/", 1)[1]


def _synced_past(tab: ChatPage) -> Callable[[], None]:
    """A wait for `tab` to apply one more refresh from another tab's notice."""
    before = int(tab.page.locator("body").get_attribute("data-tab-sync") or 0)

    def wait() -> None:
        tab.page.wait_for_function(
            "n => Number(document.body.dataset.tabSync || 0) > n", arg=before)

    return wait


def _orphans(chat: ChatPage) -> list[dict]:
    ids = {c["id"] for c in chat.stored("conversations")}
    return [m for m in chat.stored("messages") if m["conversationId"] not in ids]


def test_a_new_conversation_appears_in_the_other_tabs_sidebar(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    first = ChatPage(page, site_url).open()
    second = _second_tab(new_tab, site_url)
    expect(second.page.get_by_text("No conversations yet")).to_be_visible()
    first.send("/echo hello from the first tab")
    first.wait_for_reply_done()
    expect(second.sidebar_links).to_have_text(["/echo hello from the first tab"])
    # It opens there with its messages, read from the store.
    second.sidebar_links.first.click()
    expect(second.user_bubbles()).to_have_text(["/echo hello from the first tab"])
    expect(second.assistant_messages().locator(".bubble")).to_have_text(
        ["hello from the first tab"])


def test_a_message_sent_in_one_tab_appears_in_the_other(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    first = ChatPage(page, site_url).open()
    first.send("/echo one")
    first.wait_for_reply_done()
    cid = _conversation_id(page)
    first.send("/echo lower")
    first.wait_for_reply_done()
    second = _second_tab(new_tab, site_url, f"#/chat/{cid}")
    expect(second.user_bubbles()).to_have_text(["/echo one", "/echo lower"])

    first.send("/echo two")
    first.wait_for_reply_done()
    expect(second.user_bubbles()).to_have_text(["/echo one", "/echo lower", "/echo two"])
    expect(second.assistant_messages().locator(".bubble")).to_have_text(
        ["one", "lower", "two"])
    # And the other way round, in the same chat.
    second.send("/echo three")
    second.wait_for_reply_done()
    expect(first.assistant_messages().locator(".bubble")).to_have_text(
        ["one", "lower", "two", "three"])
    # A message in another chat reorders the sidebar of both tabs.
    second.page.get_by_role("link", name="New chat").click()
    second.send("/echo newer chat")
    second.wait_for_reply_done()
    expect(first.sidebar_links).to_have_text(["/echo newer chat", "/echo one"])
    expect(first.user_messages()).to_have_count(4)


def test_two_renames_in_two_tabs_end_as_the_later_one_everywhere(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    first = ChatPage(page, site_url).open()
    first.send("/echo rename me")
    first.wait_for_reply_done()
    cid = _conversation_id(page)
    second = _second_tab(new_tab, site_url)
    expect(second.sidebar_links).to_have_text(["/echo rename me"])

    # The second tab starts editing the title; meanwhile the first renames it.
    second.sidebar_item("/echo rename me").get_by_role(
        "button", name="Rename “/echo rename me”").click()
    second_box = second.page.get_by_role("textbox", name="Conversation title")
    second_box.fill("Title from the second tab")
    synced = _synced_past(second)
    first.sidebar_item("/echo rename me").get_by_role(
        "button", name="Rename “/echo rename me”").click()
    first_box = page.get_by_role("textbox", name="Conversation title")
    first_box.fill("Title from the first tab")
    first_box.press("Enter")
    expect(first.sidebar_links).to_have_text(["Title from the first tab"])
    synced()  # the second tab has heard of it, and still holds what is being typed
    expect(second_box).to_have_value("Title from the second tab")
    expect(second_box).to_be_focused()
    # The second tab's rename is the later one: both tabs and the store end with it.
    second_box.press("Enter")
    expect(second.sidebar_links).to_have_text(["Title from the second tab"])
    expect(first.sidebar_links).to_have_text(["Title from the second tab"])
    first.wait_stored_field("conversations", cid, "title", "Title from the second tab")

    # Quick renames, each as soon as the tab shows the one before, in alternating tabs.
    current = "Title from the second tab"
    for tab, title in ((first, "Quick one"), (second, "Quick two"), (first, "Quick three")):
        expect(tab.sidebar_links).to_have_text([current])
        tab.sidebar_item(current).get_by_role("button", name=f"Rename “{current}”").click()
        box = tab.page.get_by_role("textbox", name="Conversation title")
        box.fill(title)
        box.press("Enter")
        expect(tab.sidebar_links).to_have_text([title])
        current = title
    for tab in (first, second):
        expect(tab.sidebar_links).to_have_text(["Quick three"])
    assert [c["title"] for c in first.stored("conversations")] == ["Quick three"]


def _delete_in(tab: ChatPage, title: str) -> None:
    tab.sidebar_item(title).get_by_role("button", name=f"Delete “{title}”").click()
    expect(tab.sidebar_links).to_have_count(0)


def test_a_chat_deleted_in_one_tab_while_the_other_types_keeps_the_text_as_a_new_chat(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    first = ChatPage(page, site_url).open()
    first.send("/echo doomed chat")
    first.wait_for_reply_done()
    cid = _conversation_id(page)
    second = _second_tab(new_tab, site_url, f"#/chat/{cid}")
    expect(second.user_bubbles()).to_have_text(["/echo doomed chat"])
    first.message_box.fill("/echo keep this text")

    _delete_in(second, "/echo doomed chat")
    # The first tab says plainly what happened, and nothing else is lost.
    expect(page.get_by_role("heading", name="This chat was deleted in another tab.")
           ).to_be_visible()
    expect(first.sidebar_links).to_have_count(0)
    expect(first.message_box).to_have_value("/echo keep this text")

    first.message_box.press("Enter")
    offer = page.get_by_role("alert").filter(has_text="Your message wasn’t sent")
    expect(offer).to_contain_text("/echo keep this text")
    assert _orphans(first) == [] and first.stored("conversations") == []
    offer.get_by_role("button", name="Keep as new chat").click()
    first.wait_for_reply_done()
    expect(first.user_bubbles()).to_have_text(["/echo keep this text"])
    expect(first.last_reply().locator(".bubble")).to_have_text("keep this text")
    new_id = _conversation_id(page)
    assert new_id != cid
    expect(second.sidebar_links).to_have_text(["/echo keep this text"])
    first.wait_stored("messages", 2)
    assert [c["id"] for c in first.stored("conversations")] == [new_id]
    assert _orphans(first) == []
    assert {m["conversationId"] for m in first.stored("messages")} == {new_id}


def test_a_send_racing_a_delete_stores_nothing_in_the_deleted_chat(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    # The delete lands in the store before this tab has heard of it (its notice is on
    # the way): the check inside the message's own transaction refuses it.
    first = ChatPage(page, site_url).open()
    first.send("/echo racing chat")
    first.wait_for_reply_done()
    cid = _conversation_id(page)
    page.evaluate("""(cid) => new Promise((resolve, reject) => {
        const req = indexedDB.open("localchat");
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
            const db = req.result;
            const tx = db.transaction(["conversations", "messages"], "readwrite");
            tx.objectStore("conversations").delete(cid);
            const messages = tx.objectStore("messages");
            const all = messages.getAll();
            all.onsuccess = () => {
                for (const m of all.result) if (m.conversationId === cid) messages.delete(m.id);
            };
            tx.oncomplete = () => { db.close(); resolve(); };
            tx.onerror = () => reject(tx.error);
        };
    })""", cid)
    expect(first.sidebar_links).to_have_text(["/echo racing chat"])  # not heard of yet

    first.message_box.fill("/echo sent into a deleted chat")
    first.message_box.press("Enter")
    offer = page.get_by_role("alert").filter(has_text="This chat was deleted in another tab.")
    expect(offer).to_contain_text("/echo sent into a deleted chat")
    expect(first.sidebar_links).to_have_count(0)
    assert first.stored("messages") == [] and first.stored("conversations") == []
    offer.get_by_role("button", name="Keep as new chat").click()
    first.wait_for_reply_done()
    expect(first.last_reply().locator(".bubble")).to_have_text("sent into a deleted chat")
    first.wait_stored("messages", 2)
    assert _orphans(first) == []


def _stored_reply(chat: ChatPage) -> dict:
    replies = [m for m in chat.stored("messages") if m["role"] == "assistant"]
    assert len(replies) == 1, replies
    return replies[0]


def test_a_reply_survives_a_reload_and_can_be_continued_or_regenerated(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW_REPLY)
    chat.send(LONG_ECHO)
    reply = chat.last_reply()
    expect(reply.locator(".bubble")).to_have_text(re.compile(r"word0 word1 word2"))
    seen = reply.locator(".bubble").inner_text()
    chat.reload()

    reply = chat.last_reply()
    expect(reply.locator(".meta")).to_contain_text("interrupted")
    kept = reply.locator(".bubble").inner_text()
    assert kept.startswith(seen) and len(kept) < len(LONG_ECHO) - len("/echo ")
    stored = _stored_reply(chat)
    assert stored["status"] == "interrupted" and stored["content"] == kept
    expect(chat.stop_button).to_be_hidden()

    reply.get_by_role("button", name="Continue").click()
    # The reply grows from where it stopped (a click is handled asynchronously: wait
    # for the growth before waiting for the end, or the end is the state before it).
    expect(reply.locator(".bubble")).to_have_text(
        re.compile("^" + re.escape(kept) + r"\s*\S"))
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".meta")).not_to_contain_text("interrupted")
    continued = reply.locator(".bubble").inner_text()
    assert continued.startswith(kept) and len(continued) > len(kept)
    chat.wait_stored_field("messages", stored["id"], "status", "done")
    assert _stored_reply(chat)["content"].startswith(kept)
    expect(chat.assistant_messages()).to_have_count(1)

    # Interrupted again, then Regenerate: the whole reply is written anew.
    chat.send("/echo " + " ".join(f"again{i}" for i in range(40)))
    expect(chat.last_reply().locator(".bubble")).to_have_text(re.compile(r"again0 again1"))
    chat.reload()
    reply = chat.last_reply()
    expect(reply.locator(".meta")).to_contain_text("interrupted")
    interrupted_id = reply.get_attribute("data-message-id")
    reply.get_by_role("button", name="Regenerate").click()
    reply = chat.wait_for_reply_done()
    expect(reply).not_to_have_attribute("data-message-id", interrupted_id or "")
    expect(reply.locator(".bubble")).to_have_text(" ".join(f"again{i}" for i in range(40)))
    expect(chat.assistant_messages()).to_have_count(2)
    regenerated = reply.get_attribute("data-message-id") or ""
    chat.wait_stored_field("messages", regenerated, "status", "done")
    assert [m["status"] for m in chat.stored("messages") if m["role"] == "assistant"] == [
        "done", "done"]


def test_a_reply_streaming_in_another_tab_is_not_shown_as_interrupted(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    first = ChatPage(page, site_url).open(query=SLOW_REPLY)
    first.send("/echo warm up")
    first.wait_for_reply_done()
    cid = _conversation_id(page)
    very_long = "/echo " + " ".join(f"word{i}" for i in range(300))  # ~25 s at 12 tokens/s
    first.send(very_long)
    expect(first.last_reply().locator(".bubble")).to_have_text(re.compile(r"word0 word1"))
    first.wait_stored("messages", 4)  # the growing reply has been saved once
    second = _second_tab(new_tab, site_url, f"#/chat/{cid}")
    growing = second.assistant_messages().last
    expect(growing).to_have_class(re.compile(r"(^|\s)streaming(\s|$)"))
    expect(growing.locator(".meta")).not_to_contain_text("interrupted")
    expect(growing.get_by_role("button", name="Continue")).to_have_count(0)
    # It grows there as it is saved, and ends there as it ends here.
    expect(growing.locator(".bubble")).to_have_text(re.compile(r"word0 .* word2\d"))
    first.stop_button.click()
    stopped = first.wait_for_reply_done()
    expect(growing).not_to_have_class(re.compile(r"(^|\s)streaming(\s|$)"))
    expect(growing.locator(".meta")).to_contain_text("stopped")
    expect(growing.locator(".bubble")).to_have_text(stopped.locator(".bubble").inner_text())


def test_a_model_change_in_one_tab_shows_in_the_other(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    first = ChatPage(page, site_url).open()
    first.send("/echo which model")
    first.wait_for_reply_done()
    cid = _conversation_id(page)
    second = _second_tab(new_tab, site_url, f"#/chat/{cid}")
    theirs = Models(second.page)
    expect(theirs.selector).to_have_accessible_name(re.compile("Smart"))
    Models(page).choose("Quick")
    expect(theirs.selector).to_have_accessible_name(re.compile("Quick"))
    first.wait_stored_field("conversations", cid, "model", "quick")


def test_closing_the_tab_that_streams_a_reply_leaves_it_interrupted_in_the_other(
        page: Page, site_url: str, new_tab: Callable[[str], Page]) -> None:
    watching = ChatPage(page, site_url).open(query=SLOW_REPLY)
    watching.send("/echo warm up")
    watching.wait_for_reply_done()
    cid = _conversation_id(page)
    streaming = _second_tab(new_tab, site_url, f"#/chat/{cid}", query=SLOW_REPLY)
    streaming.send("/echo " + " ".join(f"word{i}" for i in range(300)))
    expect(streaming.last_reply().locator(".bubble")).to_have_text(re.compile(r"word0 word1"))
    seen = streaming.last_reply().locator(".bubble").inner_text()
    streaming.page.close()

    reply = watching.assistant_messages().last
    expect(reply.locator(".meta")).to_contain_text("interrupted")
    assert reply.locator(".bubble").inner_text().startswith(seen)
    expect(reply.get_by_role("button", name="Continue")).to_be_visible()
    expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
    assert _orphans(watching) == []
