"""Boot: the static shell comes first, typing works at once, and a send made while
Python starts is kept and sent once the app is ready."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from .pages.chat import ChatPage


def test_app_becomes_ready_with_shell_controls(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    expect(chat.message_box).to_be_editable()
    expect(chat.send_button).to_be_enabled()
    expect(page.get_by_role("button", name="Downloads")).to_be_visible()
    expect(page.get_by_role("navigation", name="Conversations")).to_contain_text(
        "No conversations yet")
    expect(page.get_by_text("Simulated engine")).to_be_visible()


def test_typing_and_sending_before_python_is_ready(page: Page, site_url: str) -> None:
    held: list[Route] = []
    page.route("**/vendor/app/localchat.zip", lambda route: held.append(route))
    chat = ChatPage(page, site_url).open(wait=False)
    # The shell is there and usable while the app's Python is held back.
    chat.message_box.fill("/echo typed while starting")
    chat.message_box.press("Enter")
    expect(page.get_by_role("button", name="Starting…")).to_be_visible()
    expect(chat.status).to_contain_text("Starting")
    expect(page.locator("body")).to_have_attribute("data-ready", "false")
    assert held, "the app archive should have been requested"
    for route in held:
        route.continue_()
    page.unroute("**/vendor/app/localchat.zip")
    chat.wait_until_ready()
    expect(chat.user_messages()).to_have_text(["/echo typed while starting"])
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("typed while starting")
    expect(chat.send_button).to_be_visible()


def test_unknown_engine_value_is_explained(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query="engine=banana")
    expect(chat.alerts.filter(has_text=re.compile("Unknown engine"))).to_contain_text("banana")
    chat.send("hello")
    expect(chat.last_reply()).to_contain_text(re.compile("can't run|WebGPU|engine", re.I))


def test_real_engine_is_the_default(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query="")
    expect(page.get_by_text("Simulated engine")).to_be_hidden()



def test_the_app_runs_on_the_early_pyodide_from_precompiled_bytecode(page: Page,
                                                                      site_url: str) -> None:
    ChatPage(page, site_url).open()
    # boot.js starts Pyodide before PyScript loads; PyScript must run the app on that
    # same interpreter (js/interpreter.js), not start a second one.
    found = page.evaluate("""async () => {
        const pyodide = await window.localchat.pyodide;
        return pyodide.runPython(`
import importlib.util, sys
mods = [m for name, m in sys.modules.items() if name.startswith("localchat.")]
bad = []
for m in mods:
    with open(m.__cached__, "rb") as f:
        head = f.read(8)
    # Valid for this Python, hash-based and unchecked (flags 0b01): used as is.
    if head[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(head[4:8], "little") != 1:
        bad.append(m.__name__)
str(len(mods)) + " " + ",".join(bad)
`);
    }""")
    count, bad = found.split(" ")
    # Python does not write bytecode in the page (sys.dont_write_bytecode), so each .pyc
    # read here came from the app archive, built by tools/compile_pyc.mjs.
    assert int(count) >= 20, found
    assert bad == "", f"modules without usable bytecode: {bad}"
