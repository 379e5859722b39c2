"""The real download path, as a user meets it: the real WebLLM engine (no engine=sim) and
LocalChat's own downloader against the HTTPS stand-in for huggingface.co and
raw.githubusercontent.com (tools/modelhost.py), with real HTTP failures.

SwiftShader gives WebGPU without shader-f16, so the q4f32 variants are chosen. No real
model library exists offline: the stand-in's wasm is a valid but empty module, so every
start ends in "couldn't start" — which is itself what these tests check, along with the
files staying stored and WebLLM agreeing that they are.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tools.modelhost import ModelHostServer

from .pages.chat import ChatPage
from .pages.models import Models

QUICK = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
REAL = "retry_backoff_s=0.05&sw=off"
CACHES = ("webllm/config", "webllm/wasm", "webllm/model")

STORED = """async (names) => {
    const out = {};
    for (const name of names) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
            const body = await (await cache.match(request)).arrayBuffer();
            const digest = await crypto.subtle.digest("SHA-256", body);
            out[request.url] = [name, Array.from(new Uint8Array(digest),
                (b) => b.toString(16).padStart(2, "0")).join("")];
        }
    }
    return out;
}"""


def stored(page: Page) -> dict[str, list[str]]:
    """Every entry of WebLLM's three caches: url → [cache, sha256 of its body]."""
    return page.evaluate(STORED, list(CACHES))


def expected_files(host: ModelHostServer) -> dict[str, list[str]]:
    """What a complete download of Quick stores, by WebLLM's keys, with the real bytes."""
    model = host.models[QUICK]
    return {url: [f.cache, f.sha256] for url, f in model.files.items() if f.cache}


def has_model_in_cache(page: Page) -> bool:
    return page.evaluate("""async (id) => {
        const webllm = await import("/vendor/web-llm/index.js");
        return webllm.hasModelInCache(id);
    }""", QUICK)


def open_manager(page: Page, site_url: str, query: str = REAL) -> Models:
    ChatPage(page, site_url).open(query=query)
    models = Models(page)
    models.open_manager()
    return models


def download_quick(models: Models) -> Any:
    models.row("Quick").get_by_role("button", name="Download").click()
    return models.row("Quick")


def test_download_counts_bytes_stores_webllm_keys_and_a_start_sends_no_request(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    model_host.faults.rate(250_000)  # ~7 s for Quick's 1.7 MB: progress can be watched
    models = open_manager(page, site_url)
    row = download_quick(models)
    models.wait_state("Quick", "Downloading")
    bar = row.get_by_role("progressbar")
    # Bytes move from the first second: the config, tokenizer and library count too.
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=5_000)
    expect(row.locator(".row-detail")).to_contain_text(re.compile(r"\d+% · \d+ KB of 2 MB"))
    first = int(bar.get_attribute("aria-valuenow") or 0)
    expect(bar).not_to_have_attribute("aria-valuenow", str(first))
    model_host.faults.rate(None)
    models.wait_state("Quick", "Ready")  # downloaded for later: never went to the GPU
    assert stored(page) == expected_files(model_host)
    assert has_model_in_cache(page)

    # Chosen for the chat: it starts from the cache; WebLLM sends no request.
    model_host.log.clear()
    models.manager.get_by_role("button", name="Close").click()
    models.choose("Quick")
    models.wait_state("Quick", "Failed")
    alert = row.get_by_role("alert")
    expect(alert).to_contain_text("Quick couldn't start.")
    expect(alert).not_to_contain_text("download")
    expect(models.selector).to_have_text("Model: Quick (couldn't start)")
    assert model_host.log.records("*") == []
    assert stored(page) == expected_files(model_host)  # the files stay
    assert has_model_in_cache(page)

    # Retry fetches the library and the config again (a bad one must not be reused
    # forever), and only those, then tries to start once more.
    row.get_by_role("button", name="Retry").click()
    model_host.log.wait_for("*.wasm")  # by then the item has left Failed: it downloads
    models.wait_state("Quick", "Failed")
    expect(alert).to_contain_text("Quick couldn't start.")
    paths = sorted(r.path.rsplit("/", 1)[1] for r in model_host.log.records("*", method="GET"))
    assert paths == ["Llama-3.2-1B-Instruct-q4f32_1_cs1k-webgpu.wasm", "mlc-chat-config.json"]
    assert stored(page) == expected_files(model_host)

    # Remove files empties all three caches and frees the space.
    row.get_by_role("button", name="Remove files").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("This frees 2 MB.")
    dialog.get_by_role("button", name="Remove files").click()
    expect(models.state("Quick")).to_have_text("Not downloaded")
    assert stored(page) == {}
    assert not has_model_in_cache(page)


def test_a_dropped_connection_resumes_with_a_range_request(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    # At a network's pace, as a real drop happens: Chrome discards body bytes the page
    # has not read yet when a connection fails, and an unpaced loopback outruns the reader.
    model_host.faults.rate(1_000_000)
    drop = model_host.faults.drop("*/params_shard_0.bin", at_byte=150_000)
    models = open_manager(page, site_url)
    download_quick(models)
    models.wait_state("Quick", "Ready")
    assert drop.used == 1
    ranges = [r.range for r in model_host.log.records("*/params_shard_0.bin", method="GET")]
    assert len(ranges) == 2 and ranges[0] is None
    # The second request asks for the rest, from what arrived (TLS may hold back a
    # record's tail, so at most the 150 000 bytes sent; never from 0).
    assert ranges[1] is not None and ranges[1].startswith("bytes=") and ranges[1].endswith("-")
    assert 0 < int(ranges[1][len("bytes="):-1]) <= 150_000
    assert stored(page) == expected_files(model_host)  # byte-identical after the resume


def test_a_host_that_refuses_range_restarts_the_file_and_stores_it_right(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    model_host.faults.no_range()
    model_host.faults.rate(1_000_000)  # see the test above: the page reads what arrives
    model_host.faults.drop("*/params_shard_2.bin", at_byte=100_000)
    models = open_manager(page, site_url)
    download_quick(models)
    models.wait_state("Quick", "Ready")
    log = model_host.log.records("*/params_shard_2.bin", method="GET")
    assert [r.status for r in log] == [200, 200]
    assert log[1].range is not None  # it asked for the rest; the whole file came back
    assert stored(page) == expected_files(model_host)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_busy_or_failing_hosts_are_retried_and_shown(
        standin_page: Page, site_url: str, model_host: ModelHostServer, status: int) -> None:
    page = standin_page
    fault = model_host.faults.status("*/params_shard_1.bin", status, times=2, retry_after=1)
    models = open_manager(page, site_url)
    row = download_quick(models)
    expect(row).to_contain_text(re.compile(r"Retrying (in \d+ s \([12]/3\)|\([12]/3\)…)"))
    models.wait_state("Quick", "Ready")
    assert fault.used == 2
    assert len(model_host.log.records("*/params_shard_1.bin", method="GET")) == 3
    assert stored(page) == expected_files(model_host)


def test_a_host_that_keeps_failing_ends_failed_in_plain_words_and_retry_resumes(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    model_host.faults.status("*/params_shard_3.bin", 503, times=None)
    models = open_manager(page, site_url)
    row = download_quick(models)
    models.wait_state("Quick", "Failed")
    alert = row.get_by_role("alert")
    expect(alert).to_contain_text("The model host is having trouble.")
    expect(alert).to_contain_text("HTTP 503")
    expect(row).not_to_contain_text("Failed to execute")
    assert len(model_host.log.records("*/params_shard_3.bin", method="GET")) == 4  # 1 + 3
    kept = stored(page)
    assert kept and not any("params_shard_3" in url for url in kept)
    model_host.faults.reset()
    row.get_by_role("button", name="Retry").click()
    models.wait_state("Quick", "Ready")
    again = {r.path for r in model_host.log.records("*", method="GET")}
    assert not any(url.endswith(path) for url in kept for path in again)  # resumed
    assert stored(page) == expected_files(model_host)


@pytest.mark.parametrize("status, words", [
    (404, "The model host doesn't have Quick's files (HTTP 404)."),
    (403, "The model host refused to send Quick (HTTP 403)."),
])
def test_missing_or_forbidden_files_are_not_retried(
        standin_page: Page, site_url: str, model_host: ModelHostServer, status: int,
        words: str) -> None:
    page = standin_page
    model_host.faults.status("*/tensor-cache.json", status, times=None)
    models = open_manager(page, site_url)
    row = download_quick(models)
    models.wait_state("Quick", "Failed")
    expect(row.get_by_role("alert")).to_contain_text(words)
    assert len(model_host.log.records("*/tensor-cache.json", method="GET")) == 1


def test_a_captive_portal_page_is_never_stored_and_retry_fetches_the_library(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    portal = model_host.faults.html_instead("*.wasm")
    models = open_manager(page, site_url)
    row = download_quick(models)
    models.wait_state("Quick", "Failed")
    expect(row.get_by_role("alert")).to_contain_text(
        "The model host sent something that isn't a model file.")
    assert portal.used == 1
    assert not any(cache == "webllm/wasm" for cache, _ in stored(page).values())
    row.get_by_role("button", name="Retry").click()
    models.wait_state("Quick", "Ready")
    assert stored(page) == expected_files(model_host)


def test_a_stalled_download_is_retried_on_bytes_not_reports(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    stall = model_host.faults.stall("*/params_shard_4.bin", at_byte=50_000, seconds=30)
    # A one-second stall limit, and a one-second wait before the retry so it can be seen.
    models = open_manager(page, site_url, "sw=off&retry_backoff_s=1&download_stall_s=1")
    row = download_quick(models)
    expect(row).to_contain_text(re.compile(r"Retrying (in \d+ s \(1/3\)|\(1/3\)…)"))
    models.wait_state("Quick", "Ready")
    assert stall.used == 1
    ranges = [r.range for r in model_host.log.records("*/params_shard_4.bin", method="GET")]
    assert ranges == [None, "bytes=50000-"]
    assert stored(page) == expected_files(model_host)


def test_a_slow_link_moves_at_once_and_never_retries(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    page = standin_page
    model_host.faults.rate(200_000)
    models = open_manager(page, site_url)
    row = download_quick(models)
    bar = row.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=5_000)
    models.wait_state("Quick", "Ready", timeout=40_000)
    gets = [r.path for r in model_host.log.records("*", method="GET")]
    assert len(gets) == len(set(gets))  # every file once: no retry
