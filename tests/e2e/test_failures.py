"""Bad input gets a clear answer and loses nothing: missing files, blocked storage, a
worker that can't start, failures crossing the JS bridges."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .pages.chat import FAST_SIM, ChatPage


@pytest.mark.allow_console_errors(r"dexie\.mjs", r"status of 404", r"could not be loaded")
def test_missing_vendored_file_is_named(page: Page, site_url: str) -> None:
    page.route("**/vendor/dexie/dexie.mjs",
               lambda route: route.fulfill(status=404, body="not found"))
    chat = ChatPage(page, site_url).open(wait=False)
    alert = chat.alerts.filter(has_text="A file LocalChat needs could not be loaded")
    expect(alert).to_contain_text("vendor/dexie/dexie.mjs is missing (HTTP 404)")
    expect(chat.status).to_have_text("LocalChat could not start.")


@pytest.mark.allow_console_errors(r"could not be loaded", r"SyntaxError", r"app\.css")
def test_corrupt_vendored_file_is_named(page: Page, site_url: str) -> None:
    page.route("**/vendor/dexie/dexie.mjs",
               lambda route: route.fulfill(status=200, content_type="text/javascript",
                                           body="export default {{{ corrupt"))
    chat = ChatPage(page, site_url).open(wait=False)
    alert = chat.alerts.filter(has_text="A file LocalChat needs could not be loaded")
    expect(alert).to_contain_text("vendor/dexie/dexie.mjs is damaged")


def test_storage_unavailable_keeps_chat_working(page: Page, site_url: str) -> None:
    # As in a private window that refuses IndexedDB: opening LocalChat's database throws.
    # (Other databases, such as PyScript's own, still open.)
    page.add_init_script("""
        const open = IDBFactory.prototype.open;
        IDBFactory.prototype.open = function (name, ...rest) {
            if (name === "localchat") {
                throw new DOMException("A mutation operation was attempted on a database "
                                       + "that did not allow mutations.", "InvalidStateError");
            }
            return open.call(this, name, ...rest);
        };
    """)
    chat = ChatPage(page, site_url).open()
    notice = chat.alerts.filter(has_text="This browser isn't letting LocalChat store anything")
    expect(notice).to_contain_text("private browsing")
    chat.send("/echo still chatting")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("still chatting")


def test_storage_failure_mid_session_is_reported_and_nothing_deleted(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo first")
    chat.wait_for_reply_done()
    # Storage starts refusing writes (as when the disk fills up).
    page.evaluate("""() => {
        const original = IDBObjectStore.prototype.add;
        IDBObjectStore.prototype.add = function () {
            throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
        };
        window.__restoreAdd = () => { IDBObjectStore.prototype.add = original; };
    }""")
    chat.send("/echo second")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("second")
    expect(chat.alerts.filter(has_text="Storage is full")).to_be_visible()
    page.evaluate("window.__restoreAdd()")
    contents = sorted(m["content"] for m in chat.stored("messages"))
    assert contents == ["/echo first", "first"]


@pytest.mark.allow_console_errors(r"sim-engine-worker\.js", r"status of 404", r"EngineWorkerError",
                                  r"engine worker")
def test_worker_that_fails_to_start(page: Page, site_url: str) -> None:
    page.route("**/workers/sim-engine-worker.js*",
               lambda route: route.fulfill(status=404, body="missing"))
    # sw=off: a service worker would answer from its cache, out of page.route's reach.
    chat = ChatPage(page, site_url).open(query=FAST_SIM + "&sw=off")
    chat.send("hello")
    reply = chat.wait_for_reply_done()
    expect(reply.get_by_role("alert")).to_contain_text("The model engine could not start")


@pytest.mark.parametrize("query", [FAST_SIM, ""], ids=["sim", "webllm"])
def test_bridge_rejections_reach_python_as_exceptions(page: Page, site_url: str,
                                                      query: str) -> None:
    ChatPage(page, site_url).open(query=query)
    results = page.evaluate("localchat.selfTest()")
    # A Dexie ConstraintError and a string rejection from the engine worker both arrive
    # in Python as exceptions with their names (a hang would time this call out).
    assert results == {"store": "ConstraintError", "engine": "ModelNotFoundError"}


def test_real_engine_without_model_host_fails_fast_and_clearly(page: Page,
                                                               site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query="")
    chat.send("hello")
    reply = chat.wait_for_reply_done()
    expect(reply.get_by_role("alert")).to_contain_text(re.compile("Can't reach the model host"))
    # SwiftShader offers no shader-f16: the probe chose the f32 variant.
    stored = [m for m in chat.stored("messages") if m["role"] == "assistant"]
    assert stored[0]["model"] == "Llama-3.2-3B-Instruct-q4f32_1-MLC"
