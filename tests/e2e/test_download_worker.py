"""The download worker and its bridge, driven directly from a blank page of the dev server.

No Python app here: each test imports web/js/download-bridge.js into an empty page on the
dev server's origin (`?sw=off`: no service worker) and checks what the Python downloader
relies on: each file stored as one entry under WebLLM's own key, progress in bytes, the
checks that keep a bad body out of the cache, every failure as an outcome of the right
kind (never a rejection), resume with Range, cancel, remove, and agreement with WebLLM's
own record list and hasModelInCache. The simulated model host of the dev server answers
the happy paths; the HTTPS stand-in for the real hosts (tools/modelhost.py, fixtures
`model_host` and `standin_page`) answers the faults.
"""

from __future__ import annotations

import email.utils
import hashlib
import time
from typing import Any

import pytest
from playwright.sync_api import Page
from tools.modelhost import SimModel, StandinModel

QUICK_F32 = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
SCALE = 0.002
HF_BASE = f"https://huggingface.co/mlc-ai/{QUICK_F32}/resolve/main/"

BLANK_PAGE = '<!doctype html><link rel=icon href="data:,"><title>download test</title>'

HELPERS = """
async () => {
  const bridge = await import("/js/download-bridge.js");
  const simBase = (scale, id) => `${location.origin}/sim-host/${scale}/${id}/resolve/main/`;
  window.D = {
    bridge,
    simBase,
    simAppConfig: (scale, id) => ({ model_list: [{
      model_id: id,
      model: `${location.origin}/sim-host/${scale}/${id}`,
      model_lib: simBase(scale, id) + "model-webgpu.wasm",
    }] }),
    handle(options = {}) {
      const state = { crashes: [] };
      state.handle = bridge.createDownloader({ progressMs: 1, ...options,
                                                onCrash: (m) => state.crashes.push(m) });
      return state;
    },
    // fetchFile with every onBytes call recorded: {outcome, progress: [[received, expected]],
    // times: [ms since the call]}; `live` (if given) sees the same arrays while it runs.
    fetch(handle, request, live = {}) {
      const progress = live.progress = [];
      const times = live.times = [];
      const t0 = performance.now();
      const full = { id: request.url, size: null, resume: false, ...request };
      return handle.fetchFile(full, (received, expected) => {
        progress.push([received, expected]);
        times.push(performance.now() - t0);
      }).then((outcome) => ({ outcome, progress, times, ms: performance.now() - t0 }));
    },
    async sha256(cacheName, url) {
      const response = await (await caches.open(cacheName)).match(new Request(url));
      if (!response) return null;
      const digest = await crypto.subtle.digest("SHA-256", await response.arrayBuffer());
      return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    },
    async keys(cacheName) {
      return (await (await caches.open(cacheName)).keys()).map((r) => r.url);
    },
  };
  return true;
}
"""


def _open(page: Page, site_url: str) -> None:
    blank = f"{site_url}__download_worker_test.html"
    page.route(f"{blank}?sw=off", lambda route: route.fulfill(
        status=200, content_type="text/html", body=BLANK_PAGE))
    page.goto(f"{blank}?sw=off")
    page.unroute(f"{blank}?sw=off")
    page.evaluate(HELPERS)


def _run(page: Page, body: str, arg: Any = None) -> Any:
    """Evaluate an async JS function body with `arg` in scope."""
    return page.evaluate(f"async (arg) => {{ {body} }}", arg)


def _sim_url(site_url: str, name: str, model: str = QUICK_F32, scale: float = SCALE) -> str:
    return f"{site_url}sim-host/{scale}/{model}/resolve/main/{name}"


def _tensor_cache(page: Page, site_url: str) -> dict[str, Any]:
    return _run(page, "return (await fetch(arg)).json();", _sim_url(site_url, "tensor-cache.json"))


def _sha256_of(page: Page, url: str) -> str:
    body = _run(page, "return Array.from(new Uint8Array(await (await fetch(arg)).arrayBuffer()));",
                url)
    return hashlib.sha256(bytes(body)).hexdigest()


def _assert_progress(progress: list[list[Any]], size: int) -> None:
    """Byte counts that only grow, never pass the size, and end exactly at it."""
    assert progress, "no onBytes call"
    received = [r for r, _ in progress]
    assert received == sorted(received)
    assert all(0 <= r <= size for r in received)
    assert progress[-1] == [size, size]


# ---------------------------------------------------------------------------------
# Against the dev server's simulated model host


def test_shard_is_stored_under_its_url_with_byte_progress(page: Page, site_url: str) -> None:
    _open(page, site_url)
    shard = _tensor_cache(page, site_url)["records"][0]
    url = _sim_url(site_url, shard["dataPath"])
    result = _run(page, """
        const d = D.handle();
        const got = await D.fetch(d.handle, { url: arg.url, cache: "webllm/model", check: "bytes",
                                              size: arg.size });
        const entries = [{ cache: "webllm/model", url: arg.url },
                         { cache: "webllm/model", url: arg.url + "x" }];
        return { ...got, stored: await d.handle.stored(entries),
                 sha: await D.sha256("webllm/model", arg.url),
                 type: (await (await caches.open("webllm/model")).match(new Request(arg.url)))
                   .headers.get("Content-Type") };
    """, {"url": url, "size": shard["nbytes"]})
    assert result["outcome"] == {"ok": True, "size": shard["nbytes"], "data": None}
    assert result["stored"] == {url: shard["nbytes"]}
    assert result["sha"] == _sha256_of(page, url)
    assert result["type"] == "application/octet-stream"
    _assert_progress(result["progress"], shard["nbytes"])
    assert len(result["progress"]) >= 2  # the headers, then the bytes


def test_progress_counts_bytes_as_they_arrive(page: Page, site_url: str) -> None:
    _open(page, site_url)
    big = _run(page, "return (await fetch(arg)).json();",
               _sim_url(site_url, "tensor-cache.json", scale=1))["records"][0]
    url = _sim_url(site_url, big["dataPath"], scale=1)
    result = _run(page, """
        const d = D.handle({ progressMs: 1 });
        return D.fetch(d.handle, { url: arg.url, cache: "webllm/model", check: "bytes",
                                   size: arg.size });
    """, {"url": url, "size": big["nbytes"]})
    assert result["outcome"]["ok"], result["outcome"]
    _assert_progress(result["progress"], big["nbytes"])
    # 32 MiB arrives in many chunks: progress in between, not only at the start and end.
    assert len([r for r, _ in result["progress"] if 0 < r < big["nbytes"]]) >= 3


def test_wrong_size_is_invalid_and_nothing_is_stored(page: Page, site_url: str) -> None:
    _open(page, site_url)
    shard = _tensor_cache(page, site_url)["records"][1]
    url = _sim_url(site_url, shard["dataPath"])
    result = _run(page, """
        const d = D.handle();
        const got = await D.fetch(d.handle, { url: arg.url, cache: "webllm/model", check: "bytes",
                                              size: arg.size + 1 });
        return { ...got, keys: await D.keys("webllm/model") };
    """, {"url": url, "size": shard["nbytes"]})
    outcome = result["outcome"]
    assert outcome["ok"] is False and outcome["kind"] == "invalid"
    assert outcome["kept"] == 0 and str(shard["nbytes"]) in outcome["detail"]
    assert result["keys"] == []


def test_missing_file_is_http_404_and_unknown_host_is_unreachable(
        page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const d = D.handle();
        const missing = await D.fetch(d.handle, { url: arg, cache: "webllm/model", check: "json" });
        const nowhere = await D.fetch(d.handle, { url: "https://nowhere.invalid/x.json",
                                                  cache: "webllm/model", check: "json" });
        return { missing: missing.outcome, nowhere: nowhere.outcome,
                 keys: await D.keys("webllm/model") };
    """, _sim_url(site_url, "no-such-file.json"))
    assert result["missing"]["kind"] == "http" and result["missing"]["status"] == 404
    assert result["missing"]["retryAfter"] is None and result["missing"]["kept"] == 0
    assert result["nowhere"]["kind"] == "unreachable" and result["nowhere"]["status"] is None
    assert result["keys"] == []


def test_json_checks_summarise_config_and_tensor_cache(page: Page, site_url: str) -> None:
    _open(page, site_url)
    config_url = _sim_url(site_url, "mlc-chat-config.json")
    index_url = _sim_url(site_url, "tensor-cache.json")
    index = _tensor_cache(page, site_url)
    result = _run(page, """
        const d = D.handle();
        const config = await D.fetch(d.handle, { url: arg.config, cache: "webllm/config",
                                                 check: "chat-config" });
        const index = await D.fetch(d.handle, { url: arg.index, cache: "webllm/model",
                                                check: "tensor-cache" });
        // tensor-cache.json is no chat config: refused, and not stored under that key
        const wrong = await D.fetch(d.handle, { id: "w", url: arg.index, cache: "webllm/config",
                                                check: "chat-config" });
        return {
          config: config.outcome, index: index.outcome, wrong: wrong.outcome,
          readConfig: await d.handle.readStored("webllm/config", arg.config, "chat-config"),
          readIndex: await d.handle.readStored("webllm/model", arg.index, "tensor-cache"),
          readAbsent: await d.handle.readStored("webllm/model", arg.config, "chat-config"),
          peekIndex: await d.handle.peek(arg.index, "tensor-cache"),
          peekRemote: await d.handle.peek("https://huggingface.co/x/tensor-cache.json",
                                          "tensor-cache"),
          configKeys: await D.keys("webllm/config"),
        };
    """, {"config": config_url, "index": index_url})
    config = result["config"]
    assert config["ok"] and config["data"]["tokenizer_files"][0] == "tokenizer.json"
    assert config["data"]["context_window_size"] == 4096
    summary = {"records": [{"dataPath": r["dataPath"], "nbytes": r["nbytes"]}
                           for r in index["records"]]}
    assert result["index"] == {"ok": True, "size": result["index"]["size"], "data": summary}
    assert result["wrong"]["kind"] == "invalid" and "tokenizer_files" in result["wrong"]["detail"]
    assert result["readConfig"] == config["data"]
    assert result["readIndex"] == summary and result["peekIndex"] == summary
    assert result["readAbsent"] is None and result["peekRemote"] is None
    assert result["configKeys"] == [config_url]


def test_remove_by_url_and_by_prefix(page: Page, site_url: str) -> None:
    _open(page, site_url)
    records = _tensor_cache(page, site_url)["records"][:3]
    prefix = _sim_url(site_url, "")
    result = _run(page, """
        const d = D.handle();
        for (const r of arg.records) {
          const got = await D.fetch(d.handle, { url: arg.prefix + r.dataPath, cache: "webllm/model",
                                                check: "bytes", size: r.nbytes });
          if (!got.outcome.ok) return got.outcome;
        }
        const before = (await D.keys("webllm/model")).length;
        const one = await d.handle.remove([{ cache: "webllm/model",
                                             url: arg.prefix + arg.records[0].dataPath }]);
        const rest = await d.handle.remove([{ cache: "webllm/model", prefix: arg.prefix },
                                            { cache: "webllm/config", prefix: arg.prefix }]);
        return { before, one, rest, after: await D.keys("webllm/model") };
    """, {"records": records, "prefix": prefix})
    assert result == {"before": 3, "one": 1, "rest": 2, "after": []}


def test_model_record_and_has_model_in_cache_agree_with_webllm(page: Page, site_url: str) -> None:
    _open(page, site_url)
    index = _tensor_cache(page, site_url)
    result = _run(page, """
        const d = D.handle();
        const config = D.simAppConfig(arg.scale, arg.id);
        const prebuilt = await d.handle.modelRecord(arg.id);
        const sim = await d.handle.modelRecord(arg.id, config);
        const unknown = await d.handle.modelRecord("No-Such-Model", config);
        const before = await d.handle.hasModelInCache(arg.id, config);
        const files = [{ name: "tensor-cache.json", check: "tensor-cache", size: null },
                       ...arg.records.map((r) => ({ name: r.dataPath, check: "bytes",
                                                    size: r.nbytes }))];
        const outcomes = await Promise.all(files.map((f) => D.fetch(d.handle, {
          url: sim.base + f.name, cache: "webllm/model", check: f.check, size: f.size })));
        const after = await d.handle.hasModelInCache(arg.id, config);
        const webllm = await import("/vendor/web-llm/index.js");
        const direct = await webllm.hasModelInCache(arg.id, config);
        await d.handle.remove([{ cache: "webllm/model", url: sim.base + arg.records[0].dataPath }]);
        const removed = await d.handle.hasModelInCache(arg.id, config);
        return { prebuilt, sim, unknown, before, after, direct, removed,
                 failed: outcomes.map((o) => o.outcome).filter((o) => !o.ok) };
    """, {"id": QUICK_F32, "scale": SCALE, "records": index["records"]})
    assert result["prebuilt"]["model_id"] == QUICK_F32
    assert result["prebuilt"]["base"] == HF_BASE
    assert result["prebuilt"]["model"] == f"https://huggingface.co/mlc-ai/{QUICK_F32}"
    assert result["prebuilt"]["model_lib"].endswith(".wasm")
    assert result["sim"]["base"] == _sim_url(site_url, "")
    assert "error" in result["unknown"]
    assert result["failed"] == []
    assert (result["before"], result["after"], result["direct"], result["removed"]) == (
        False, True, True, False)


def test_concurrent_requests_and_cancel(page: Page, site_url: str) -> None:
    _open(page, site_url)
    records = _run(page, "return (await fetch(arg)).json();",
                   _sim_url(site_url, "tensor-cache.json", scale=1))["records"][:4]
    base = _sim_url(site_url, "", scale=1)
    result = _run(page, """
        const d = D.handle();
        const all = arg.records.map((r) => D.fetch(d.handle, {
          id: r.dataPath, url: arg.base + r.dataPath, cache: "webllm/model", check: "bytes",
          size: r.nbytes }));
        const outcomes = (await Promise.all(all)).map((o) => o.outcome);
        return { outcomes, stored: await d.handle.stored(arg.records.map((r) => ({
          cache: "webllm/model", url: arg.base + r.dataPath }))) };
    """, {"records": records, "base": base})
    assert all(o["ok"] for o in result["outcomes"]), result["outcomes"]
    assert result["stored"] == {base + r["dataPath"]: r["nbytes"] for r in records}


def test_terminate_resolves_pending_calls_and_the_handle_stays_dead(
        page: Page, site_url: str) -> None:
    _open(page, site_url)
    shard = _run(page, "return (await fetch(arg)).json();",
                 _sim_url(site_url, "tensor-cache.json", scale=1))["records"][0]
    result = _run(page, """
        const d = D.handle();
        let first = null;
        const pending = d.handle.fetchFile({ id: "a", url: arg.url, cache: "webllm/model",
                                             check: "bytes", size: arg.size, resume: false },
                                           (r) => { if (first === null) {
                                             first = r;
                                             d.handle.terminate();
                                           } });
        const outcome = await pending;
        const later = await d.handle.fetchFile({ id: "b", url: arg.url, cache: "webllm/model",
                                                 check: "bytes", size: arg.size, resume: false },
                                               () => {});
        const stored = await d.handle.stored([{ cache: "webllm/model", url: arg.url }]);
        return { outcome, later, stored,
                 record: await d.handle.modelRecord("x"), crashes: d.crashes };
    """, {"url": _sim_url(site_url, shard["dataPath"], scale=1), "size": shard["nbytes"]})
    assert result["outcome"]["ok"] is False and result["outcome"]["kind"] == "aborted"
    assert result["later"]["kind"] == "aborted"
    assert result["stored"] == {} and "error" in result["record"]
    assert result["crashes"] == []


@pytest.mark.allow_console_errors("simulated worker crash")
def test_worker_crash_resolves_pending_calls_and_a_fresh_worker_takes_over(
        page: Page, site_url: str) -> None:
    _open(page, site_url)
    worker_url = f"{site_url}workers/download-worker.js"
    page.route(worker_url, lambda route: route.fulfill(
        status=200, content_type="text/javascript",
        body='self.onmessage = (e) => { if (e.data.type === "fetch") '
             'throw new Error("simulated worker crash"); };'))
    shard = _tensor_cache(page, site_url)["records"][0]
    url = _sim_url(site_url, shard["dataPath"])
    crashed = _run(page, """
        window.d = D.handle();
        const record = d.handle.modelRecord("x");  // pending when the worker dies
        const got = await D.fetch(d.handle, { url: arg.url, cache: "webllm/model",
                                              check: "bytes", size: arg.size });
        return { outcome: got.outcome, record: await record, crashes: d.crashes };
    """, {"url": url, "size": shard["nbytes"]})
    assert crashed["outcome"]["kind"] == "aborted"
    assert crashed["outcome"]["detail"].startswith("the download worker stopped: ")
    assert "simulated worker crash" in crashed["outcome"]["detail"]
    assert "error" in crashed["record"]
    assert len(crashed["crashes"]) == 1
    page.unroute(worker_url)
    again = _run(page, """
        const got = await D.fetch(d.handle, { url: arg.url, cache: "webllm/model",
                                              check: "bytes", size: arg.size });
        return { outcome: got.outcome, crashes: d.crashes.length };
    """, {"url": url, "size": shard["nbytes"]})
    assert again == {"outcome": {"ok": True, "size": shard["nbytes"], "data": None}, "crashes": 1}


def test_sim_header_knobs_reach_the_host_and_a_dropped_shard_resumes(
        page: Page, site_url: str, sim_host: Any) -> None:
    _open(page, site_url)
    sim = SimModel(QUICK_F32, SCALE)
    index, at_byte = sim.fail_point(50)
    shard = sim.files(site_url.rstrip("/"))[_sim_url(site_url, f"params_shard_{index}.bin")]
    result = _run(page, """
        const knobs = `mbps=0.1; fail=quick@50; session=${arg.session}`;
        const d = D.handle({ headers: { "X-LocalChat-Sim": knobs } });
        const request = { url: arg.url, cache: "webllm/model", check: "bytes", size: arg.size };
        const first = await D.fetch(d.handle, request);
        const second = await D.fetch(d.handle, { ...request, resume: true });
        return { first, second, sha: await D.sha256("webllm/model", arg.url) };
    """, {"url": shard.url, "size": shard.size, "session": f"s{time.monotonic_ns()}"})
    first = result["first"]["outcome"]
    assert first["ok"] is False and first["kind"] == "dropped"
    kept = first["kept"]
    assert 0 < kept <= at_byte  # what arrived before the cut (the last chunk may be lost)
    assert result["first"]["progress"][-1] == [kept, shard.size]
    assert result["second"]["outcome"] == {"ok": True, "size": shard.size, "data": None}
    assert result["second"]["progress"][0] == [kept, shard.size]  # the kept bytes, at once
    assert result["sha"] == shard.sha256
    log = sim_host.log.records(_path(shard.url), method="GET")
    assert [(r.range, r.status) for r in log] == [(None, 200), (f"bytes={kept}-", 206)]


def test_checks_refuse_the_wrong_kind_of_file(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const d = D.handle();
        const get = async (name, check) => (await D.fetch(d.handle, {
          url: arg + name, cache: "webllm/wasm", check })).outcome;
        return { wasmAsJson: await get("model-webgpu.wasm", "json"),
                 jsonAsWasm: await get("tokenizer.json", "wasm"),
                 configAsIndex: await get("mlc-chat-config.json", "tensor-cache"),
                 wasm: await get("model-webgpu.wasm", "wasm"),
                 keys: await D.keys("webllm/wasm") };
    """, _sim_url(site_url, ""))
    for name, words in [("wasmAsJson", ("not UTF-8", "not JSON")),
                        ("jsonAsWasm", ("starts with 7b",)), ("configAsIndex", ("no records",))]:
        outcome = result[name]
        assert outcome["kind"] == "invalid", outcome
        assert any(w in outcome["detail"] for w in words), outcome
    assert result["wasm"]["ok"] is True
    assert result["keys"] == [_sim_url(site_url, "model-webgpu.wasm")]


def test_sim_quota_refuses_a_file_that_would_pass_the_limit(page: Page, site_url: str) -> None:
    _open(page, site_url)
    records = _tensor_cache(page, site_url)["records"][:3]
    limit = records[0]["nbytes"] + records[1]["nbytes"]
    result = _run(page, """
        const d = D.handle();
        const outcomes = [];
        for (const r of arg.records) {
          outcomes.push((await D.fetch(d.handle, { url: arg.base + r.dataPath,
            cache: "webllm/model", check: "bytes", size: r.nbytes,
            simQuota: { prefix: arg.base, limit: arg.limit } })).outcome);
        }
        return { outcomes, keys: await D.keys("webllm/model") };
    """, {"records": records, "base": _sim_url(site_url, ""), "limit": limit})
    first, second, third = result["outcomes"]
    assert first["ok"] and second["ok"]
    assert third["ok"] is False and third["kind"] == "quota" and third["kept"] == 0
    assert "QuotaExceededError" in third["detail"]
    assert result["keys"] == [_sim_url(site_url, r["dataPath"]) for r in records[:2]]


# ---------------------------------------------------------------------------------
# Against the HTTPS stand-in for huggingface.co and raw.githubusercontent.com


def _check_for(url: str) -> str:
    name = url.rsplit("/", 1)[1]
    return {"mlc-chat-config.json": "chat-config", "tensor-cache.json": "tensor-cache",
            "tokenizer.json": "json"}.get(name, "wasm" if name.endswith(".wasm") else "bytes")


def _stored_files(model: StandinModel) -> list[dict[str, Any]]:
    """Every file WebLLM reads from the caches, as fetchFile requests."""
    return [{"url": url, "cache": f.cache, "check": _check_for(url),
             "size": f.size if _check_for(url) == "bytes" else None}
            for url, f in model.files.items() if f.cache]


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_standin_model_is_stored_where_webllm_looks(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    model = model_host.models[QUICK_F32]
    files = _stored_files(model)
    result = _run(page, """
        const d = D.handle();
        const record = await d.handle.modelRecord(arg.id);
        const before = await d.handle.hasModelInCache(arg.id);
        const queue = [...arg.files];
        const outcomes = {};
        await Promise.all([0, 1, 2, 3].map(async () => {
          for (let f = queue.shift(); f; f = queue.shift()) {
            outcomes[f.url] = (await D.fetch(d.handle, f)).outcome;
          }
        }));
        const shas = {};
        for (const f of arg.files) shas[f.url] = await D.sha256(f.cache, f.url);
        return { record, before, outcomes, shas, stored: await d.handle.stored(arg.files),
                 after: await d.handle.hasModelInCache(arg.id) };
    """, {"id": QUICK_F32, "files": files})
    assert result["record"] == {"model_id": QUICK_F32, "model": model.model_url,
                                "model_lib": model.model_lib, "base": HF_BASE}
    assert model.base == HF_BASE
    failed = {u: o for u, o in result["outcomes"].items() if not o["ok"]}
    assert failed == {}
    assert result["shas"] == {f["url"]: model.files[f["url"]].sha256 for f in files}
    assert result["stored"] == {f["url"]: model.files[f["url"]].size for f in files}
    assert result["outcomes"][HF_BASE + "mlc-chat-config.json"]["data"]["tokenizer_files"] == [
        "tokenizer.json", "tokenizer_config.json"]
    assert (result["before"], result["after"]) == (False, True)
    # One GET per file, nothing else fetched.
    gets = model_host.log.records("*", method="GET")
    assert sorted(r.path for r in gets) == sorted(_path(f["url"]) for f in files)


@pytest.mark.parametrize("name", ["wasm", "tensor-cache.json", "params_shard_0.bin"])
def test_captive_portal_page_is_invalid_and_not_stored(
        standin_page: Page, site_url: str, model_host: Any, name: str) -> None:
    page = standin_page
    _open(page, site_url)
    model = model_host.models[QUICK_F32]
    file = next(f for f in _stored_files(model) if f["url"].endswith(name))
    fault = model_host.faults.html_instead("*" + name)
    result = _run(page, """
        const d = D.handle();
        const got = await D.fetch(d.handle, arg);
        return { ...got, keys: await D.keys(arg.cache) };
    """, file)
    assert fault.used == 1
    outcome = result["outcome"]
    assert outcome["ok"] is False and outcome["kind"] == "invalid" and outcome["kept"] == 0
    assert "text/html" in outcome["detail"]
    assert result["keys"] == []


def test_http_errors_carry_status_and_retry_after(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    faults = model_host.faults
    faults.status("*/tensor-cache.json", 429, retry_after=7)
    faults.status("*/mlc-chat-config.json", 503,
                  retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    faults.status("*/tokenizer.json", 500)
    result = _run(page, """
        const d = D.handle();
        const get = async (name, check) => (await D.fetch(d.handle, {
          url: arg.base + name, cache: "webllm/model", check })).outcome;
        return { busy: await get("tensor-cache.json", "tensor-cache"),
                 later: await get("mlc-chat-config.json", "chat-config"),
                 broken: await get("tokenizer.json", "json"),
                 missing: await get("params_shard_999.bin", "bytes"),
                 keys: await D.keys("webllm/model") };
    """, {"base": HF_BASE})
    assert result["busy"] == {"ok": False, "kind": "http", "status": 429, "retryAfter": 7,
                              "kept": 0, "detail": result["busy"]["detail"]}
    assert result["later"]["status"] == 503 and 25 <= result["later"]["retryAfter"] <= 31
    assert result["broken"]["status"] == 500 and result["broken"]["retryAfter"] is None
    assert result["missing"]["kind"] == "http" and result["missing"]["status"] == 404
    assert result["keys"] == []


# One handle per page (its worker keeps the bytes of interrupted downloads): an optional
# first fetch (arg.fresh, default true), then arg.resumes (default 1) fetches with resume.
RESUME = """
    window.d = window.d || D.handle(arg.options || {});
    const request = { url: arg.url, cache: "webllm/model", check: "bytes", size: arg.size };
    const first = arg.fresh === false ? null : await D.fetch(d.handle, request);
    if (first) first.keys = await D.keys("webllm/model");  // a failed file leaves nothing
    const resumed = [];
    for (let i = 0; i < (arg.resumes ?? 1); i++) {
      resumed.push(await D.fetch(d.handle, { ...request, resume: true }));
    }
    return { first, resumed, sha: await D.sha256("webllm/model", arg.url) };
"""
PACED = 400_000  # bytes/s (chunks of 20 kB): a drop cuts a body the page has been reading


def _shard(model_host: Any, index: int) -> Any:
    return model_host.models[QUICK_F32].files[model_host.models[QUICK_F32].shard_urls[index]]


def test_dropped_download_resumes_with_a_range_request(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shard = _shard(model_host, 1)
    cut = shard.size // 2
    model_host.faults.rate(PACED)
    model_host.faults.drop(shard.path, at_byte=cut)
    result = _run(page, RESUME, {"url": shard.url, "size": shard.size})
    first = result["first"]["outcome"]
    assert first["ok"] is False and first["kind"] == "dropped"
    kept = first["kept"]
    assert 0 < kept <= cut
    assert result["first"]["keys"] == []
    resumed = result["resumed"][0]
    assert resumed["outcome"] == {"ok": True, "size": shard.size, "data": None}
    assert resumed["progress"][0] == [kept, shard.size]
    _assert_progress(resumed["progress"], shard.size)
    assert result["sha"] == shard.sha256
    log = model_host.log.records(shard.path, method="GET")
    assert [(r.range, r.status) for r in log] == [(None, 200), (f"bytes={kept}-", 206)]


def test_host_ignoring_range_starts_the_file_over(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shard = _shard(model_host, 2)
    model_host.faults.rate(PACED)
    model_host.faults.drop(shard.path, at_byte=shard.size // 3)
    model_host.faults.no_range()
    result = _run(page, RESUME, {"url": shard.url, "size": shard.size})
    kept = result["first"]["outcome"]["kept"]
    assert kept > 0
    resumed = result["resumed"][0]
    assert resumed["outcome"]["ok"] is True
    assert resumed["progress"][0] == [0, shard.size]  # the kept bytes are gone
    _assert_progress(resumed["progress"], shard.size)
    assert result["sha"] == shard.sha256
    log = model_host.log.records(shard.path, method="GET")
    assert [(r.range, r.status) for r in log] == [(None, 200), (f"bytes={kept}-", 200)]


def test_kept_bytes_survive_an_http_error_and_a_416_refetches_whole(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shard = _shard(model_host, 3)
    faults = model_host.faults
    faults.rate(PACED)
    faults.drop(shard.path, at_byte=shard.size // 4)
    first = _run(page, RESUME, {"url": shard.url, "size": shard.size, "resumes": 0})["first"]
    kept = first["outcome"]["kept"]
    assert kept > 0, (first, model_host.log.records(shard.path))
    # The host is busy (503): the kept bytes stay for the next try, which completes them.
    faults.status(shard.path, 503, times=1)
    result = _run(page, RESUME, {"url": shard.url, "size": shard.size, "fresh": False,
                                 "resumes": 2})
    busy, again = result["resumed"]
    assert busy["outcome"]["kind"] == "http" and busy["outcome"]["kept"] == kept
    assert again["outcome"]["ok"] is True and again["progress"][0][0] == kept
    assert result["sha"] == shard.sha256
    # A Range the host can't satisfy (416): the kept bytes go, the file comes whole.
    _run(page, "await caches.delete('webllm/model');")
    faults.drop(shard.path, at_byte=shard.size // 4)
    kept = _run(page, RESUME, {"url": shard.url, "size": shard.size,
                               "resumes": 0})["first"]["outcome"]["kept"]
    assert kept > 0
    faults.status(shard.path, 416, times=1)
    result = _run(page, RESUME, {"url": shard.url, "size": shard.size, "fresh": False})
    assert result["resumed"][0]["outcome"]["ok"] is True and result["sha"] == shard.sha256
    assert result["resumed"][0]["progress"][0][0] == 0
    log = model_host.log.records(shard.path, method="GET")
    assert [(r.range, r.status) for r in log][-2:] == [(f"bytes={kept}-", 416), (None, 200)]


def test_stall_aborts_after_stall_ms_and_keeps_the_bytes(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shard = _shard(model_host, 4)
    fault = model_host.faults.stall(shard.path, at_byte=20_000, seconds=20)
    result = _run(page, RESUME, {"url": shard.url, "size": shard.size,
                                 "options": {"stallMs": 500}})
    first = result["first"]
    assert fault.used == 1
    assert first["outcome"]["kind"] == "stall" and first["outcome"]["kept"] == 20_000
    assert first["keys"] == []
    assert 500 <= first["ms"] < 5000  # the worker gave up; the host would wait 20 s
    assert result["resumed"][0]["outcome"]["ok"] is True and result["sha"] == shard.sha256


def test_cancel_resolves_aborted_at_once(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shards = [_shard(model_host, 0), _shard(model_host, 1), _shard(model_host, 2)]
    for shard in shards:
        model_host.faults.stall(shard.path, at_byte=10_000, seconds=30)
    _run(page, """
        window.d = D.handle();
        window.live = arg.map(() => ({}));
        window.pending = arg.map((s, i) => D.fetch(d.handle, {
          id: `shard-${i}`, url: s.url, cache: "webllm/model", check: "bytes", size: s.size },
          live[i]));
    """, [{"url": s.url, "size": s.size} for s in shards])
    page.wait_for_function("live.every((l) => l.progress.some(([r]) => r === 10000))")
    result = _run(page, """
        let t = performance.now();
        d.handle.cancel("shard-0");
        const one = await pending[0];
        const oneMs = performance.now() - t;
        t = performance.now();
        d.handle.cancelAll();
        const rest = await Promise.all(pending.slice(1));
        return { one: one.outcome, oneMs, rest: rest.map((r) => r.outcome),
                 restMs: performance.now() - t, keys: await D.keys("webllm/model") };
    """)
    for outcome in [result["one"], *result["rest"]]:
        assert outcome["ok"] is False and outcome["kind"] == "aborted"
        assert outcome["kept"] == 10_000
    assert result["oneMs"] < 1000 and result["restMs"] < 1000
    assert result["keys"] == []


def test_progress_on_a_slow_link_moves_and_respects_progress_ms(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shard = _shard(model_host, 5)
    model_host.faults.rate(400_000)
    result = _run(page, """
        const d = D.handle({ progressMs: 100 });
        return D.fetch(d.handle, { url: arg.url, cache: "webllm/model", check: "bytes",
                                   size: arg.size });
    """, {"url": shard.url, "size": shard.size})
    assert result["outcome"]["ok"] is True
    _assert_progress(result["progress"], shard.size)
    moving = [r for r, _ in result["progress"] if 0 < r < shard.size]
    assert len(moving) >= 2  # bytes counted while they arrive, not per file
    # At most one call per 100 ms (plus the first, at the headers, and the last).
    assert len(result["progress"]) <= result["ms"] / 100 + 3


def test_redirected_file_is_stored_under_its_own_url(
        standin_page: Page, site_url: str, model_host: Any) -> None:
    page = standin_page
    _open(page, site_url)
    shard = _shard(model_host, 0)
    fault = model_host.faults.redirect(shard.path)
    result = _run(page, """
        const d = D.handle();
        const got = await D.fetch(d.handle, { url: arg.url, cache: "webllm/model", check: "bytes",
                                              size: arg.size });
        return { outcome: got.outcome, keys: await D.keys("webllm/model"),
                 sha: await D.sha256("webllm/model", arg.url) };
    """, {"url": shard.url, "size": shard.size})
    assert fault.used == 1 and result["outcome"]["ok"] is True
    assert result["keys"] == [shard.url] and result["sha"] == shard.sha256
