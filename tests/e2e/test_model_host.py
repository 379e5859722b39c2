"""The model hosts as Chromium sees them: the HTTPS stand-in for huggingface.co and
raw.githubusercontent.com (`standin_page`, `model_host`), and the dev server's simulated host
(`page`, `sim_host`). Each test fetches from a blank page on the site's origin and checks the
bytes (SHA-256), the headers a page may read (CORS), what each fault looks like to fetch(),
and the hosts' request logs."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page
from tools.devserver import Server
from tools.modelhost import SIM_HEADER, ModelHostServer, SimModel

QUICK = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
HF = "huggingface.co"

# fetch(url, init) → what a download worker would learn: status, readable headers, the
# body's SHA-256 and first bytes, or how reading failed.
FETCH = """
async ([url, init]) => {
  let response;
  try {
    response = await fetch(url, { cache: "no-store", ...init });
  } catch (e) {
    return { failed: "fetch", name: e.name, message: e.message };
  }
  const headers = {};
  for (const name of ["content-length", "content-range", "content-type", "etag",
                      "retry-after", "accept-ranges"]) {
    headers[name] = response.headers.get(name);
  }
  const out = { status: response.status, headers };
  try {
    const bytes = new Uint8Array(await response.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    out.length = bytes.length;
    out.sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    out.head = Array.from(bytes.slice(0, 4));
    out.validWasm = WebAssembly.validate(bytes);
  } catch (e) {
    out.failed = "body";
    out.name = e.name;
  }
  return out;
}
"""


def _open_blank(page: Page, site_url: str) -> None:
    """A blank page on the dev server's origin (the app itself is not booted)."""
    blank = f"{site_url}__model_host_test.html"
    page.route(blank, lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>model host</title>"))
    page.goto(blank)


def _fetch(page: Page, url: str, **init: Any) -> dict[str, Any]:
    return page.evaluate(FETCH, [url, init])


def test_a_page_fetches_the_stand_in_models_files_with_range_and_cors(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    model = model_host.models[QUICK]
    _open_blank(standin_page, site_url)

    tensor_cache = model.file("tensor-cache.json")
    whole = _fetch(standin_page, tensor_cache.url)
    assert (whole["status"], whole["sha256"]) == (200, tensor_cache.sha256)
    assert whole["headers"]["content-length"] == str(tensor_cache.size)
    assert whole["headers"]["etag"] == tensor_cache.etag
    assert whole["headers"]["accept-ranges"] == "bytes"
    records = standin_page.evaluate("async (url) => (await (await fetch(url)).json()).records",
                                    tensor_cache.url)
    assert [r["nbytes"] for r in records] == list(model.shard_sizes)

    shard = model.file("params_shard_2.bin")
    ranged = _fetch(standin_page, shard.url, headers={"Range": "bytes=1000-"})
    assert ranged["status"] == 206
    assert ranged["headers"]["content-range"] == f"bytes 1000-{shard.size - 1}/{shard.size}"
    assert ranged["length"] == shard.size - 1000

    wasm = model.file("wasm")
    library = _fetch(standin_page, model.model_lib)
    assert (library["status"], library["sha256"], library["validWasm"]) == (
        200, wasm.sha256, True)

    assert [tuple(r) for r in model_host.log] == [
        ("GET", tensor_cache.path, HF, None, 200),
        ("GET", tensor_cache.path, HF, None, 200),
        ("GET", shard.path, HF, "bytes=1000-", 206),
        ("GET", wasm.path, "raw.githubusercontent.com", None, 200)]


@pytest.mark.allow_console_errors(
    r"Failed to load resource: the server responded with a status of (503|404)",
    r"Failed to load resource: net::ERR_")
def test_each_fault_looks_to_fetch_as_on_a_real_network(
        standin_page: Page, site_url: str, model_host: ModelHostServer) -> None:
    model = model_host.models[QUICK]
    faults = model_host.faults
    _open_blank(standin_page, site_url)
    shard = model.file("params_shard_0.bin")

    unavailable = faults.status("*/params_shard_0.bin", 503, retry_after=7)
    busy = _fetch(standin_page, shard.url)
    assert (busy["status"], busy["headers"]["retry-after"]) == (503, "7")
    assert unavailable.used == 1

    dropped = faults.drop("*/params_shard_0.bin", at_byte=100_000)
    cut = _fetch(standin_page, shard.url)
    assert (cut["status"], cut["failed"], cut["name"]) == (200, "body", "TypeError")
    assert dropped.used == 1

    faults.html_instead("*.wasm")
    portal = _fetch(standin_page, model.model_lib)
    assert portal["status"] == 200 and portal["headers"]["content-type"].startswith("text/html")
    assert portal["head"] == list(b"<!DO") and portal["validWasm"] is False

    missing = _fetch(standin_page, model.base + "params_shard_99.bin")
    assert missing["status"] == 404

    unknown_host = _fetch(standin_page, "https://cdn.example.com/x.bin")
    assert unknown_host["failed"] == "fetch"  # still hermetic beyond the two model hosts

    assert [r.status for r in model_host.log] == [503, 200, 200, 404]
    assert _fetch(standin_page, shard.url)["sha256"] == shard.sha256  # the faults are used up


@pytest.mark.allow_console_errors(r"Failed to load resource: net::ERR_")
def test_the_sim_host_serves_valid_wasm_and_fails_once_per_session(
        page: Page, site_url: str, sim_host: Server) -> None:
    _open_blank(page, site_url)
    origin = site_url.rstrip("/")
    for scale in (0.002, 1e-05):
        wasm = SimModel(QUICK, scale).file("model-webgpu.wasm", origin)
        assert wasm is not None
        got = _fetch(page, wasm.url)
        assert (got["status"], got["length"], got["validWasm"]) == (200, wasm.size, True)

    model = SimModel(QUICK, 0.002)
    index, byte = model.fail_point(30)
    shard = model.file(f"params_shard_{index}.bin", origin)
    assert shard is not None
    knobs = {SIM_HEADER: "fail=quick@30; session=e2e"}
    first = _fetch(page, shard.url, headers=knobs)
    assert (first["status"], first["failed"]) == (200, "body")
    second = _fetch(page, shard.url, headers=knobs)
    assert second["sha256"] == shard.sha256
    assert [(r.path, r.status) for r in sim_host.log][-2:] == [(shard.path, 200)] * 2
    assert 0 < byte < shard.size
