"""Offline by construction: no request leaves the page's origin, and after one visit the
service worker serves everything, so an offline reload or new tab boots and chats."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import BrowserContext, Page, Request, expect
from tools.devserver import make_server

from .pages.chat import ChatPage

ROOT = Path(__file__).resolve().parents[2]


def test_no_request_leaves_the_origin(context: BrowserContext, page: Page,
                                      site_url: str) -> None:
    seen: list[str] = []

    def record(request: Request) -> None:
        seen.append(request.url)

    context.on("request", record)
    chat = ChatPage(page, site_url).open()
    chat.send("/echo round trip")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("round trip")
    origin = urlparse(site_url).netloc
    foreign = [u for u in seen if urlparse(u).scheme in ("http", "https")
               and urlparse(u).netloc != origin]
    assert seen, "requests should have been observed"
    assert any("/workers/" in u for u in seen), "the engine worker's requests are observed too"
    assert foreign == []


def test_offline_reload_and_new_tab_boot_and_chat(context: BrowserContext, page: Page,
                                                  site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    chat.send("/echo online first")  # downloads the (simulated) model once
    chat.wait_for_reply_done()
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    chat.reload()  # now controlled by the service worker
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    expect(page.locator("body")).to_have_attribute("data-models", "ready")

    # Workers started under the service worker still get the simulated engine's knobs
    # from their own address (a cached script response must not replace it).
    knob = page.evaluate("""async () => {
        const bridge = await import("./js/engine-bridge.js");
        const id = "Llama-3.2-1B-Instruct-q4f32_1-MLC";
        const model = new URL("sim-host/0.002/" + id, location.href).href;
        const model_lib = model + "/resolve/main/model-webgpu.wasm";
        const appConfig = { model_list: [{ model, model_id: id, model_lib }] };
        const handle = bridge.createEngine({ kind: "sim", search: "engine=sim&sim_gpu=none",
                                             appConfig });
        try {
            await handle.reload(id, 30000);
            return "loaded";
        } catch (error) {
            return error.name;
        } finally {
            handle.terminate();
        }
    }""")
    assert knob == "WebGPUNotAvailableError"

    context.set_offline(True)
    chat.reload()
    chat.send("/echo offline reply")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("offline reply")

    tab = ChatPage(context.new_page(), site_url).open()
    expect(tab.sidebar_links).to_have_count(1)
    tab.send("/echo new tab offline")
    expect(tab.wait_for_reply_done().locator(".bubble")).to_have_text("new tab offline")
    tab.page.close()


@pytest.fixture()
def deploy_root() -> Iterator[Path]:
    """A copy of the site whose build manifest a test can change (a 'new deployment')."""
    root = Path(tempfile.mkdtemp(prefix="localchat-deploy-"))
    for entry in (ROOT / "web").iterdir():
        if entry.name != "vendor":
            os.symlink(entry, root / entry.name)
    (root / "vendor").mkdir()
    for entry in (ROOT / "web" / "vendor").iterdir():
        if entry.name != "build.js":
            os.symlink(entry, root / "vendor" / entry.name)
    shutil.copy(ROOT / "web" / "vendor" / "build.js", root / "vendor" / "build.js")
    yield root
    shutil.rmtree(root)


def test_new_deployment_replaces_the_cache(page: Page, deploy_root: Path) -> None:
    server = make_server("127.0.0.1", 0, deploy_root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        chat = ChatPage(page, url).open()
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        first = page.evaluate("caches.keys()")
        shell = [n for n in first if n.startswith("localchat-shell-")]
        assert len(shell) == 1

        build = deploy_root / "vendor" / "build.js"
        text = build.read_text()
        old_id = json.loads(text[text.index("{"): text.rindex("}") + 1])["id"]
        build.write_text(text.replace(old_id, "newdeploy0000001"))
        chat.reload()  # the browser sees a changed worker and installs the new build
        page.wait_for_function("""async () => {
            const names = (await caches.keys()).filter(n => n.startsWith("localchat-shell-"));
            return names.length === 1 && names[0] === "localchat-shell-newdeploy0000001";
        }""", polling=200, timeout=60_000)
    finally:
        server.shutdown()
