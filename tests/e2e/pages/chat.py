"""The chat page as a user meets it: find controls by role and name, act, read back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

_spec = importlib.util.spec_from_file_location(
    "playwright_config", Path(__file__).resolve().parents[3] / "playwright.config.py")
assert _spec and _spec.loader
config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config)

FAST_SIM = config.FAST_SIM


class ChatPage:
    def __init__(self, page: Page, site_url: str) -> None:
        self.page = page
        self.site_url = site_url

    # --- navigation --------------------------------------------------------------

    def open(self, query: str = FAST_SIM, route: str = "#/chat", wait: bool = True) -> ChatPage:
        url = self.site_url + (f"?{query}" if query else "") + route
        self.page.goto(url)
        if wait:
            self.wait_until_ready()
        return self

    def wait_until_ready(self) -> None:
        expect(self.page.locator("body")).to_have_attribute(
            "data-ready", "true", timeout=config.BOOT_TIMEOUT_MS)

    def reload(self) -> None:
        self.page.reload()
        self.wait_until_ready()

    # --- controls ----------------------------------------------------------------

    @property
    def message_box(self) -> Locator:
        return self.page.get_by_role("textbox", name="Message")

    @property
    def send_button(self) -> Locator:
        return self.page.get_by_role("button", name="Send")

    @property
    def stop_button(self) -> Locator:
        return self.page.get_by_role("button", name="Stop")

    @property
    def status(self) -> Locator:
        return self.page.locator("#composer-status")

    @property
    def alerts(self) -> Locator:
        return self.page.get_by_role("alert")

    @property
    def sidebar_links(self) -> Locator:
        return self.page.get_by_role("list", name="Saved conversations").get_by_role("link")

    def user_messages(self) -> Locator:
        return self.page.get_by_role("article", name="You")

    def user_bubbles(self) -> Locator:
        """The text of each message of yours (without its Edit button)."""
        return self.user_messages().locator(".bubble")

    def assistant_messages(self) -> Locator:
        return self.page.get_by_role("article", name="Assistant")

    # --- actions -----------------------------------------------------------------

    def send(self, text: str) -> None:
        """Type and send a message, and wait until it shows in the thread."""
        before = self.user_messages().count()
        self._replies_expected = self.assistant_messages().count() + 1
        self.message_box.fill(text)
        self.message_box.press("Enter")
        expect(self.user_messages()).to_have_count(before + 1)

    def last_reply(self) -> Locator:
        return self.assistant_messages().last

    def wait_for_reply_done(self, timeout: float | None = None) -> Locator:
        """The last reply, once finished (after `send`, the reply to that message)."""
        expected = getattr(self, "_replies_expected", 0)
        if expected:
            expect(self.assistant_messages().nth(expected - 1)).to_be_attached()
        reply = self.last_reply()
        expect(reply).not_to_have_class(r"(^|\s)streaming(\s|$)", timeout=timeout)
        expect(self.stop_button).to_be_hidden(timeout=timeout)
        return reply

    # --- what is stored -----------------------------------------------------------

    def stored(self, table: str) -> list[dict]:
        """Every record of an IndexedDB table, read with the raw API (not the app's code)."""
        return self.page.evaluate(
            """(table) => new Promise((resolve, reject) => {
                const req = indexedDB.open("localchat");
                req.onerror = () => reject(req.error);
                req.onsuccess = () => {
                    const db = req.result;
                    if (!db.objectStoreNames.contains(table)) { db.close(); resolve([]); return; }
                    const all = db.transaction(table).objectStore(table).getAll();
                    all.onsuccess = () => { db.close(); resolve(all.result); };
                    all.onerror = () => reject(all.error);
                };
            })""",
            table,
        )

    def wait_stored_field(self, table: str, key: str, field: str, value: object) -> None:
        """Wait until a stored record's field has a value (saves follow the UI)."""
        self.page.wait_for_function(
            """([table, key, field, value]) => new Promise((resolve) => {
                const req = indexedDB.open("localchat");
                req.onerror = () => resolve(false);
                req.onsuccess = () => {
                    const db = req.result;
                    const get = db.transaction(table).objectStore(table).get(key);
                    get.onsuccess = () => {
                        db.close();
                        resolve(Boolean(get.result) && get.result[field] === value);
                    };
                    get.onerror = () => { db.close(); resolve(false); };
                };
            })""", arg=[table, key, field, value], polling=100)

    def wait_stored(self, table: str, count: int) -> None:
        """Wait until an IndexedDB table holds `count` records (saves follow the UI)."""
        self.page.wait_for_function(
            """([table, count]) => new Promise((resolve) => {
                const req = indexedDB.open("localchat");
                req.onerror = () => resolve(false);
                req.onsuccess = () => {
                    const db = req.result;
                    const n = db.transaction(table).objectStore(table).count();
                    n.onsuccess = () => { db.close(); resolve(n.result === count); };
                    n.onerror = () => { db.close(); resolve(false); };
                };
            })""", arg=[table, count], polling=100)

    def seed(self, conversations: list[dict], messages: list[dict]) -> None:
        """Write records straight into IndexedDB (raw API), as an earlier session would
        have left them. The app must have created the database (open() first)."""
        self.page.evaluate(
            """([conversations, messages]) => new Promise((resolve, reject) => {
                const req = indexedDB.open("localchat");
                req.onerror = () => reject(req.error);
                req.onsuccess = () => {
                    const db = req.result;
                    const tx = db.transaction(["conversations", "messages"], "readwrite");
                    for (const c of conversations) tx.objectStore("conversations").put(c);
                    for (const m of messages) tx.objectStore("messages").put(m);
                    tx.oncomplete = () => { db.close(); resolve(); };
                    tx.onerror = () => reject(tx.error);
                };
            })""",
            [conversations, messages],
        )

    # --- regions -------------------------------------------------------------------

    def sidebar_item(self, title: str) -> Locator:
        return self.page.get_by_role("list", name="Saved conversations").get_by_role(
            "listitem").filter(has=self.page.get_by_role("link", name=title, exact=True))

    @property
    def confirm_dialog(self) -> Locator:
        return self.page.get_by_role("alertdialog")

    @property
    def toasts(self) -> Locator:
        return self.page.locator("#toasts")


def conversation_record(cid: str, title: str, updated: int, model: str = "smart") -> dict:
    return {"id": cid, "title": title, "model": model, "createdAt": updated,
            "updatedAt": updated}


def message_record(mid: str, cid: str, role: str, content: str, created: int) -> dict:
    record = {"id": mid, "conversationId": cid, "role": role, "content": content,
              "createdAt": created, "status": "done"}
    if role == "assistant":
        record["model"] = "Llama-3.2-3B-Instruct-q4f16_1-MLC"
    return record
