"""The model selector and the Download Manager, as a user finds them (roles and names)."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

# Fast downloads, short compile, fast replies, short retry waits.
SIM = ("engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=0"
       "&retry_backoff_s=0.05")
# Slow enough to act while a download runs (~3.5 MB for Smart at 0.5 MB/s = 7 s).
SLOW = ("engine=sim&sim_scale=0.002&sim_mbps=0.5&sim_compile_s=2&sim_tps=0"
        "&retry_backoff_s=0.05")

MODEL_IDS = {
    "quick": "Llama-3.2-1B-Instruct-q4f16_1-MLC",
    "smart": "Llama-3.2-3B-Instruct-q4f16_1-MLC",
    "genius": "Llama-3.1-8B-Instruct-q4f16_1-MLC",
}


class Models:
    def __init__(self, page: Page) -> None:
        self.page = page
        # The model list is read after boot (cache, sizes, the saved queue).
        expect(page.locator("body")).to_have_attribute("data-models", "ready")

    @property
    def selector(self) -> Locator:
        return self.page.locator("#composer").get_by_role("button", name=re.compile("^Model"))

    @property
    def listbox(self) -> Locator:
        return self.page.get_by_role("listbox", name="Models")

    def option(self, label: str) -> Locator:
        return self.listbox.get_by_role("option", name=re.compile(f"^{label}"))

    def choose(self, label: str) -> None:
        self.selector.click()
        self.option(label).click()

    @property
    def manager(self) -> Locator:
        return self.page.get_by_role("dialog", name="Download Manager")

    def open_manager(self) -> Locator:
        if not self.manager.is_visible():
            self.page.get_by_role("button", name="Downloads").click()
        expect(self.manager).to_be_visible()
        return self.manager

    def row(self, label: str) -> Locator:
        return self.manager.get_by_role("listitem").filter(
            has=self.page.locator("strong", has_text=re.compile(f"^{label}")))

    def state(self, label: str) -> Locator:
        return self.row(label).locator(".state-word")

    def wait_state(self, label: str, word: str, timeout: float = 30_000) -> None:
        expect(self.state(label)).to_have_text(word, timeout=timeout)

    def shard_requests(self) -> list[str]:
        """Every simulated shard URL requested so far (recorded by `record_shards`)."""
        return list(self.page.evaluate("window.__shards || []"))


def record_shards(page: Page) -> list[str]:
    """Start recording the shard requests of the page and its workers."""
    seen: list[str] = []
    page.context.on("request", lambda r: seen.append(r.url) if "params_shard_" in r.url
                    else None)
    return seen


COUNT_WORKERS = """
    window.__workers = { live: 0, made: 0, most: 0 };
    const NativeWorker = window.Worker;
    window.Worker = class extends NativeWorker {
        constructor(url, ...rest) {
            super(url, ...rest);
            this.__engine = String(url).includes("engine-worker");
            if (this.__engine) {
                const w = window.__workers;
                w.live += 1; w.made += 1; w.most = Math.max(w.most, w.live);
            }
        }
        terminate() {
            if (this.__engine && !this.__done) { this.__done = true; window.__workers.live -= 1; }
            super.terminate();
        }
    };
"""


def count_workers(page: Page) -> None:
    """Count the page's live engine workers (each holds a model in GPU memory) in
    window.__workers.live, all made in .made, the most alive at once in .most (from the
    next load). The download
    worker, which never touches the GPU, is not counted."""
    page.add_init_script(COUNT_WORKERS)
