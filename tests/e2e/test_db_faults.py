"""Database faults say what to do, and none of them hangs: an upgrade blocked by another
tab holding an older version open, a newer version opened in another tab, and a browser
that has no IndexedDB or refuses it (private modes, site data blocked).

The "other tab" is a plain page of the same origin (served by a route, so it loads
nothing of LocalChat) that opens LocalChat's database with the raw IndexedDB API, as an
older or newer LocalChat would, and never answers `versionchange`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from .pages.chat import ChatPage, conversation_record, message_record

DB_NAME = "localchat"  # web/js/db-bridge.js DB_NAME
# Dexie stores schema version n as IndexedDB version 10 * n; the app's schema is v2.
APP_IDB_VERSION = 20
OLDER_IDB_VERSION = 10  # schema v1: conversations and messages, no downloads table
NEWER_IDB_VERSION = 30

BLOCKED = "LocalChat was updated: close its other tabs to continue."
UPDATED_ELSEWHERE = "LocalChat was updated in another tab."
REFUSED = "This browser isn't letting LocalChat store anything."

OLD_CONVERSATION = conversation_record("a" * 32, "Saved before the update", 1_000)
OLD_MESSAGES = [message_record("m1", "a" * 32, "user", "a question from before", 1_000),
                message_record("m2", "a" * 32, "assistant", "an answer from before", 1_001)]

# Opens LocalChat's database at `version` and keeps the connection in window.held,
# ignoring versionchange. At the older version it creates schema v1 as the previous
# LocalChat did and stores one conversation. Resolves to what happened.
HOLD_DATABASE = """([name, version, conversation, messages]) => new Promise((resolve, reject) => {
    const req = indexedDB.open(name, version);
    let blocked = false;
    req.onblocked = () => { blocked = true; };
    req.onupgradeneeded = (event) => {
        const db = req.result;
        if (event.oldVersion === 0) {
            const c = db.createObjectStore("conversations", { keyPath: "id" });
            c.createIndex("updatedAt", "updatedAt");
            const m = db.createObjectStore("messages", { keyPath: "id" });
            m.createIndex("conversationId", "conversationId");
            m.createIndex("[conversationId+createdAt]", ["conversationId", "createdAt"]);
            if (conversation) c.put(conversation);
            for (const message of messages) m.put(message);
        }
    };
    req.onsuccess = () => {
        window.held = req.result;
        resolve({ blocked, version: req.result.version,
                  stores: Array.from(req.result.objectStoreNames) });
    };
    req.onerror = () => reject(req.error);
})"""

OTHER_TAB_HTML = ("<!doctype html><html lang='en'><head><title>Another tab</title>"
                  "<link rel='icon' href='data:,'></head><body>another tab</body></html>")


@pytest.fixture
def other_tab(page: Page, site_url: str) -> Iterator[Page]:
    """Another tab of the test's browser profile, at a plain page of the site's origin."""
    tab = page.context.new_page()
    tab.route("**/other-tab.html", lambda route: route.fulfill(
        status=200, content_type="text/html", body=OTHER_TAB_HTML))
    tab.goto(site_url + "other-tab.html")
    yield tab
    tab.close()


def _database_version(page: Page) -> int:
    return page.evaluate("""(name) => new Promise((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onsuccess = () => { const v = req.result.version; req.result.close(); resolve(v); };
        req.onerror = () => reject(req.error);
    })""", DB_NAME)


def test_a_blocked_upgrade_says_to_close_other_tabs_and_continues_by_itself(
        page: Page, site_url: str, other_tab: Page) -> None:
    # An older LocalChat is open in another tab: its database (schema v1, one saved
    # conversation) is held open, and that tab doesn't step aside for an upgrade.
    held = other_tab.evaluate(HOLD_DATABASE,
                              [DB_NAME, OLDER_IDB_VERSION, OLD_CONVERSATION, OLD_MESSAGES])
    assert held["version"] == OLDER_IDB_VERSION

    chat = ChatPage(page, site_url).open(wait=False)
    notice = chat.alerts.filter(has_text=BLOCKED)
    # Shown as soon as the upgrade is blocked, without waiting for Python to start.
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("continues by itself")
    expect(notice).to_contain_text("nothing is lost")
    expect(page.locator("body")).to_have_attribute("data-ready", "false")
    expect(page.get_by_text("taking unusually long")).to_have_count(0)

    # The user closes the old tab's connection: the app goes on by itself.
    other_tab.evaluate("window.held.close()")
    chat.wait_until_ready()
    expect(notice).to_have_count(0)
    saved = chat.sidebar_links.filter(has_text="Saved before the update")
    expect(saved).to_be_visible()
    saved.click()
    expect(chat.assistant_messages().locator(".bubble")).to_have_text(["an answer from before"])
    chat.send("/echo after the upgrade")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("after the upgrade")

    # Upgraded in place, nothing lost: the old conversation, its messages and the new
    # message are all stored.
    assert _database_version(page) == APP_IDB_VERSION
    chat.wait_stored("messages", 4)
    assert sorted(m["content"] for m in chat.stored("messages")) == [
        "/echo after the upgrade", "a question from before", "after the upgrade",
        "an answer from before"]
    assert [c["title"] for c in chat.stored("conversations")] == ["Saved before the update"]


def test_a_newer_version_in_another_tab_is_let_through_and_this_tab_asks_to_reload(
        page: Page, site_url: str, other_tab: Page) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo first chat")
    chat.wait_for_reply_done()
    page.get_by_role("link", name="+ New chat").click()
    expect(chat.user_messages()).to_have_count(0)
    chat.send("/echo saved before")
    chat.wait_for_reply_done()
    chat.wait_stored("messages", 4)

    # A newer LocalChat opens the database at a higher version in another tab: this tab
    # lets go at once, so that open is not blocked.
    opened = other_tab.evaluate(HOLD_DATABASE, [DB_NAME, NEWER_IDB_VERSION, None, []])
    assert opened == {"blocked": False, "version": NEWER_IDB_VERSION,
                      "stores": ["conversations", "downloads", "messages"]}

    notice = chat.alerts.filter(has_text=UPDATED_ELSEWHERE)
    expect(notice).to_contain_text("Until you reload, nothing new in this tab is saved")
    reload_button = notice.get_by_role("button", name="Reload")
    expect(reload_button).to_be_visible()

    # The tab stays usable until it is reloaded, with no failures: writes are skipped
    # under that one notice (the error guard fails the test on any console error).
    chat.send("/echo not saved")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("not saved")
    expect(chat.alerts).to_have_count(1)
    # A read it can no longer make is explained in plain words too, not as an error name.
    chat.sidebar_links.filter(has_text="/echo first chat").click()
    expect(chat.alerts.filter(has_text="stopped using your saved conversations")
           ).to_contain_text("Reload this tab to continue.")
    expect(page.locator("#notice-area")).not_to_contain_text("VersionChangeError")
    stored = ChatPage(other_tab, site_url).stored("messages")
    assert sorted(m["content"] for m in stored) == [
        "/echo first chat", "/echo saved before", "first chat", "saved before"]

    reload_button.click()
    chat.wait_until_ready()
    expect(chat.alerts).to_have_count(0)
    expect(chat.sidebar_links).to_have_text(["/echo saved before", "/echo first chat"])
    chat.sidebar_links.filter(has_text="/echo first chat").click()
    expect(chat.assistant_messages().locator(".bubble")).to_have_text(["first chat"])
    # The storage check leaves no database of its own behind.
    names = page.evaluate("indexedDB.databases().then((d) => d.map((x) => x.name))")
    assert DB_NAME in names and not [n for n in names if "check" in n]


# Each as a browser would refuse: no IndexedDB at all (some private modes and embedded
# browsers), open() throwing (storage disabled), open() failing a moment later (Chrome
# with site data blocked).
REFUSALS = {
    "missing": "delete window.indexedDB;",
    "undefined": "Object.defineProperty(window, 'indexedDB', { value: undefined });",
    "open throws": """
        IDBFactory.prototype.open = function () {
            throw new DOMException("Access to storage is not allowed.", "SecurityError");
        };
    """,
    "open fails": """
        IDBFactory.prototype.open = function () {
            const request = { result: undefined, error: null, readyState: "pending",
                              onsuccess: null, onerror: null, onupgradeneeded: null };
            setTimeout(() => {
                request.readyState = "done";
                request.error = new DOMException(
                    "The user denied permission to access the database.", "UnknownError");
                if (request.onerror) {
                    request.onerror({ type: "error", target: request,
                                      preventDefault() {}, stopPropagation() {} });
                }
            }, 20);
            return request;
        };
    """,
}


@pytest.mark.parametrize("refusal", list(REFUSALS), ids=list(REFUSALS))
def test_a_browser_that_refuses_storage_is_named_and_the_app_still_works(
        page: Page, site_url: str, refusal: str) -> None:
    page.add_init_script(REFUSALS[refusal])
    chat = ChatPage(page, site_url).open()
    notice = chat.alerts.filter(has_text=REFUSED)
    expect(notice).to_contain_text("private browsing")
    expect(notice).to_contain_text("will not be saved")
    expect(notice).to_contain_text("allow this site to store data")
    expect(page.locator("body")).not_to_contain_text("rebuild")
    expect(page.locator("body")).not_to_contain_text("could not start")
    # Chatting works, labelled as not saved by the notice above.
    chat.send("/echo still chatting")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("still chatting")
    expect(chat.sidebar_links).to_have_count(1)
    expect(notice).to_be_visible()
