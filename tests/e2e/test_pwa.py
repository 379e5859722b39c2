"""Installability: the manifest, its icons, and a service worker controlling the page."""

from __future__ import annotations

from playwright.sync_api import Page

from .pages.chat import ChatPage


def test_manifest_and_icons(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open()
    href = page.locator("link[rel=manifest]").get_attribute("href")
    manifest = page.evaluate("(h) => fetch(h).then(r => r.json())", href)
    assert manifest["name"] == "LocalChat"
    assert manifest["display"] == "standalone"
    assert manifest["start_url"].startswith("./")
    sizes = {icon["sizes"]: icon["src"] for icon in manifest["icons"]}
    assert set(sizes) == {"192x192", "512x512"}
    for size, src in sizes.items():
        dims = page.evaluate("""(src) => new Promise((ok, fail) => {
            const img = new Image(); img.onload = () => ok(`${img.width}x${img.height}`);
            img.onerror = fail; img.src = src; })""", src)
        assert dims == size


def test_service_worker_precaches_the_build(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open()
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_function("""async () => (await caches.keys())
        .filter(n => n.startsWith("localchat-shell-")).length === 1""", polling=200)
    cached = page.evaluate("""async () => {
        const name = (await caches.keys()).find(n => n.startsWith('localchat-shell-'));
        const keys = await (await caches.open(name)).keys();
        return keys.map(r => new URL(r.url).pathname);
    }""")
    for path in ("/", "/index.html", "/vendor/pyodide/pyodide.asm.wasm",
                 "/vendor/app/localchat.zip", "/vendor/web-llm/index.js",
                 "/workers/sim-engine-worker.js", "/js/engine-bridge.js"):
        assert path in cached, path


def test_a_returning_visit_is_answered_from_the_cache_by_static_routes(page: Page,
                                                                      site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", polling=200)
    # A navigation with a query (the simulated engine's knobs) goes to the fetch handler,
    # which finds the page in the cache whatever the query.
    chat.reload()
    nav = page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
        return [n.workerStart > 0, n.workerFinalSourceType]; }""")
    assert nav == [True, ""], nav  # the worker ran; no static route matched
    # A plain visit: the page and the runtime come from the cache without running the
    # service worker at all (its static routes), which saved ~90 ms of a warm boot.
    chat.open(query="")
    served = dict(page.evaluate("""() => [
        ...performance.getEntriesByType('navigation'),
        ...performance.getEntriesByType('resource'),
    ].map(e => [new URL(e.name).pathname, e.workerFinalSourceType])"""))
    for path in ("/", "/vendor/pyodide/pyodide.asm.wasm", "/vendor/app/localchat.zip",
                 "/js/boot.js", "/js/interpreter.js", "/css/app.css"):
        assert served.get(path) == "cache", (path, served.get(path))
    # A routed path that is not in the cache (the build manifest is never precached)
    # falls back to the network.
    assert page.evaluate("fetch('vendor/build.js').then(r => r.status)") == 200
