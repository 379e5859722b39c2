"""The engine bridge and both engine workers, driven directly from a blank page.

No Python app here: each test imports web/js/engine-bridge.js into an empty page on
the dev server's origin and checks what the app relies on: that the simulated engine
reads the model's files from WebLLM's caches the way WebLLM 0.2.86 does (and fetches
only what is missing, as WebLLM would), WebLLM's exact progress texts and errors, the
sim knobs, the stream, interrupt, terminate, and that every failure arrives as a real,
named Error, never a hang. `T.store()` fills the caches from the dev server's simulated
model host the way LocalChat's downloader does: one complete entry per file, under
WebLLM's keys.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise
from typing import Any

import pytest
from playwright.sync_api import Page

from localchat.core.chat import REPLY_RESERVE_TOKENS
from localchat.core.context import _char_tokens, estimate_tokens, fit_history

MIB = 1024 * 1024
SMART_F16 = "Llama-3.2-3B-Instruct-q4f16_1-MLC"
SMART_F32 = "Llama-3.2-3B-Instruct-q4f32_1-MLC"
QUICK_F32 = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
FAST = "engine=sim&sim_compile_s=0.2&sim_tps=0"
WASM_MAGIC = bytes([0x00, 0x61, 0x73, 0x6D])

HELPERS = """
async () => {
  const bridge = await import("/js/engine-bridge.js");
  const ids = ["1B", "3B"].flatMap((size) => ["q4f16_1", "q4f32_1"].map(
    (q) => `Llama-3.2-${size}-Instruct-${q}-MLC`));
  ids.push("Llama-3.1-8B-Instruct-q4f16_1-MLC", "Llama-3.1-8B-Instruct-q4f32_1-MLC");
  const appConfig = (scale) => ({ model_list: ids.map((id) => ({
    model_id: id,
    model: `${location.origin}/sim-host/${scale}/${id}`,
    model_lib: `${location.origin}/sim-host/${scale}/${id}/resolve/main/model-webgpu.wasm`,
    overrides: { context_window_size: 4096 },
  })) });
  const outcome = (promise) => promise.then(
    (value) => ({ ok: true, value }),
    (e) => ({ ok: false, name: e.name, message: e.message, isError: e instanceof Error }));
  const base = (id, scale) => `${location.origin}/sim-host/${scale}/${id}/resolve/main/`;
  const put = async (cacheName, url, response) =>
    (await caches.open(cacheName)).put(new Request(url), response);
  const copy = async (cacheName, url) => {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    await put(cacheName, url, response);
  };
  window.T = {
    bridge, appConfig, outcome, base, put, engines: [],
    engine(search, scale = 0.01, kind = "sim", config = undefined) {
      const state = { reports: [], times: [], crashes: [], deltas: [] };
      const t0 = performance.now();
      state.handle = bridge.createEngine({
        kind, search, appConfig: kind === "sim" ? config || appConfig(scale) : undefined,
        onProgress: (r) => { state.reports.push(r); state.times.push(performance.now() - t0); },
        onCrash: (m) => state.crashes.push(m),
      });
      T.engines.push(state);
      return state;
    },
    /** Store every file of a model from /sim-host/ in WebLLM's caches (but the shards
        whose indexes are in `skip`); resolves to the shard URLs. */
    async store(modelId, { scale = 0.01, skip = [] } = {}) {
      const dir = base(modelId, scale);
      await copy("webllm/config", dir + "mlc-chat-config.json");
      await copy("webllm/wasm", appConfig(scale).model_list
        .find((m) => m.model_id === modelId).model_lib);
      await copy("webllm/model", dir + "tokenizer.json");
      await copy("webllm/model", dir + "tensor-cache.json");
      const records = (await (await fetch(dir + "tensor-cache.json")).json()).records;
      const urls = records.map((r) => new URL(r.dataPath, dir).href);
      for (const [i, url] of urls.entries()) {
        if (!skip.includes(i)) await copy("webllm/model", url);
      }
      return urls;
    },
    async cachedShards(modelId) {
      const cache = await caches.open("webllm/model");
      return (await cache.keys()).map((r) => r.url)
        .filter((u) => u.includes(`/${modelId}/`) && u.includes("params_shard_"));
    },
  };
  return true;
}
"""


def _open(page: Page, site_url: str) -> None:
    blank = f"{site_url}__engine_bridge_test.html"
    page.route(blank, lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>engine test</title>"))
    page.goto(blank)
    page.evaluate(HELPERS)


def _run(page: Page, body: str, arg: Any = None) -> Any:
    """Evaluate an async JS function body with `arg` in scope."""
    return page.evaluate(f"async (arg) => {{ {body} }}", arg)


def _tensor_cache(page: Page, scale: float, model: str) -> dict[str, Any]:
    return _run(page, "return (await fetch(arg)).json();",
                f"/sim-host/{scale}/{model}/resolve/main/tensor-cache.json")


FETCH_RE = re.compile(
    r"^Fetching param cache\[(\d+)/(\d+)\]: (\d+)MB fetched\. (\d+)% completed, (\d+) secs "
    r"elapsed\. It can take a while when we first visit this page to populate the cache\. "
    r"Later refreshes will become faster\.$")
LOAD_RE = re.compile(
    r"^Loading model from cache\[(\d+)/(\d+)\]: (\d+)MB loaded\. (\d+)% completed, (\d+) secs "
    r"elapsed\.$")
SHADER_RE = re.compile(r"^Loading GPU shader modules\[(\d+)/(\d+)\]: (\d+)% completed, (\d+) secs "
                       r"elapsed\.$")
FINISH = "Finish loading on WebGPU - Simulated GPU (LocalChat simulated engine)"


def _phase(reports: list[dict[str, Any]], prefix: str,
           pattern: re.Pattern[str]) -> list[tuple[dict[str, Any], re.Match[str]]]:
    """The reports of one phase with their parsed texts (each must match exactly)."""
    found = []
    for report in reports:
        if report["text"].startswith(prefix):
            match = pattern.match(report["text"])
            assert match, report["text"]
            found.append((report, match))
    return found


def _check_bytes_text(report: dict[str, Any], match: re.Match[str], total: int) -> None:
    done = round(report["progress"] * total)
    assert int(match[3]) == math.ceil(done / MIB)
    assert int(match[4]) == math.floor(done * 100 / total)
    assert int(match[5]) == report["timeElapsed"]


def test_sim_reload_of_an_empty_cache_fetches_every_file_as_webllm_does(
        page: Page, site_url: str) -> None:
    """Nothing stored: WebLLM's reload fetches each file with cache.add(), shards in 4
    lanes, one "Fetching" report per shard. (LocalChat's downloader normally comes first.)"""
    _open(page, site_url)
    total = sum(r["nbytes"] for r in _tensor_cache(page, 0.01, SMART_F16)["records"])
    shards = len(_tensor_cache(page, 0.01, SMART_F16)["records"])
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=2.5");
        const before = await e.handle.hasModelInCache(arg);
        const load = await T.outcome(e.handle.reload(arg, 60000));
        const after = await e.handle.hasModelInCache(arg);
        const webllm = await import("/vendor/web-llm/index.js");
        const direct = await webllm.hasModelInCache(arg, T.appConfig(0.01));
        const names = await caches.keys();
        const lib = T.appConfig(0.01).model_list.find((m) => m.model_id === arg).model_lib;
        const wasm = await (await caches.open("webllm/wasm")).match(lib);
        const keys = async (name) => (await (await caches.open(name)).keys()).map((r) => r.url);
        const head = wasm ? Array.from(new Uint8Array(await wasm.arrayBuffer()).slice(0, 4)) : null;
        return { before, load, after, direct, names, reports: e.reports, wasm: head,
                 config: await keys("webllm/config"), model: await keys("webllm/model") };
    """, SMART_F16)
    assert result["load"] == {"ok": True, "value": None}
    assert result["before"] is False and result["after"] is True and result["direct"] is True
    assert {"webllm/config", "webllm/wasm", "webllm/model"} <= set(result["names"])
    assert bytes(result["wasm"]) == WASM_MAGIC
    base = f"{site_url}sim-host/0.01/{SMART_F16}/resolve/main/"
    assert result["config"] == [base + "mlc-chat-config.json"]
    assert {base + "tokenizer.json", base + "tensor-cache.json"} <= set(result["model"])
    assert len(result["model"]) == shards + 2

    reports = result["reports"]
    texts = [r["text"] for r in reports]
    assert texts[0] == "Start to fetch params" and reports[0]["progress"] == 0
    fetching = _phase(reports, "Fetching", FETCH_RE)
    loading = _phase(reports, "Loading model", LOAD_RE)
    shaders = _phase(reports, "Loading GPU", SHADER_RE)
    assert [int(m[1]) for _, m in fetching] == list(range(1, shards + 1))
    assert [int(m[1]) for _, m in loading] == list(range(1, shards + 1))
    for report, match in fetching + loading:
        assert int(match[2]) == shards
        _check_bytes_text(report, match, total)
    assert fetching[-1][0]["progress"] == 1 and loading[-1][0]["progress"] == 1
    # Shader reports: at most about one a second, and always the last one.
    assert 1 <= len(shaders) <= 3
    last = shaders[-1][1]
    assert last[1] == last[2] and last[3] == "100"
    assert texts[-1] == FINISH and reports[-1]["progress"] == 1
    assert texts.index(FINISH) == len(texts) - 1


def _watch_requests(page: Page, part: str = "/sim-host/") -> list[str]:
    """Every request URL containing `part` from now on (the page's and its workers')."""
    seen: list[str] = []
    page.context.on("request", lambda r: seen.append(r.url) if part in r.url else None)
    return seen


def test_sim_reload_from_a_fully_stored_cache_sends_no_request(
        page: Page, site_url: str) -> None:
    _open(page, site_url)
    shards = _run(page, "return (await T.store(arg)).length;", SMART_F32)
    requested = _watch_requests(page)
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2&sim_tps=0");
        const load = await T.outcome(e.handle.reload(arg, 60000));
        const reply = await T.outcome(e.handle.chat([{ role: "user", content: "/echo ok" }]));
        return { load, reply, texts: e.reports.map((r) => r.text) };
    """, SMART_F32)
    assert result["load"] == {"ok": True, "value": None}
    assert result["reply"]["ok"] and result["reply"]["value"]["content"] == "ok"
    assert requested == []
    texts = result["texts"]
    # All shards cached: WebLLM skips the "Fetching" phase entirely.
    assert texts[0] == "Start to fetch params"
    assert not any(t.startswith("Fetching") for t in texts)
    assert len([t for t in texts if t.startswith("Loading model from cache")]) == shards
    assert texts[-1] == FINISH


def test_sim_reload_fetches_only_the_missing_shards(page: Page, site_url: str) -> None:
    _open(page, site_url)
    missing = [0, 3, 4, 17, 30]
    urls = _run(page, "return T.store(arg.model, { skip: arg.missing });",
                {"model": SMART_F16, "missing": missing})
    requested = _watch_requests(page)
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2");
        const load = await T.outcome(e.handle.reload(arg, 60000));
        return { load, cached: await e.handle.hasModelInCache(arg), reports: e.reports };
    """, SMART_F16)
    assert result["load"] == {"ok": True, "value": None} and result["cached"] is True
    assert sorted(requested) == sorted(urls[i] for i in missing)
    fetching = _phase(result["reports"], "Fetching", FETCH_RE)
    # Cached shards still count, at once: one report per shard, in finishing order.
    assert [int(m[1]) for _, m in fetching] == list(range(1, len(urls) + 1))
    assert fetching[-1][0]["progress"] == 1


def test_a_failed_shard_fails_the_load_without_retry_like_webllm(
        page: Page, site_url: str) -> None:
    _open(page, site_url)
    urls = _run(page, "return T.store(arg, { skip: [2, 5] });", QUICK_F32)
    requested = _watch_requests(page, "params_shard_")
    page.route(urls[5], lambda route: route.fulfill(status=503, body="busy"))
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2");
        const load = await T.outcome(e.handle.reload(arg, 60000));
        return { load, cached: await e.handle.hasModelInCache(arg),
                 texts: e.reports.map((r) => r.text) };
    """, QUICK_F32)
    # cache.add() turns any HTTP error into this TypeError; the status is lost.
    assert result["load"] == {"ok": False, "name": "TypeError", "isError": True,
                              "message": "Failed to execute 'add' on 'Cache': Request failed"}
    assert result["cached"] is False
    assert requested.count(urls[5]) == 1  # no retry
    assert not any(t.startswith("Loading model") for t in result["texts"])
    page.unroute(urls[5])
    again = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2");
        return T.outcome(e.handle.reload(arg, 60000));
    """, QUICK_F32)
    assert again == {"ok": True, "value": None}
    assert requested.count(urls[5]) == 2 and requested.count(urls[2]) == 1


def test_no_shader_f16_fails_at_the_shader_phase_after_download(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2&sim_gpu=nof16");
        const f16 = await T.outcome(e.handle.reload(arg.f16, 60000));
        const texts = e.reports.map(r => r.text);
        const cached = await e.handle.hasModelInCache(arg.f16);
        const f32 = await T.outcome(e.handle.reload(arg.f32, 60000));
        return { f16, texts, cached, f32 };
    """, {"f16": SMART_F16, "f32": SMART_F32})
    assert result["f16"]["name"] == "ShaderF16SupportError"
    assert "shader-f16" in result["f16"]["message"]
    assert any(t.startswith("Loading model from cache") and "100% completed" in t
               for t in result["texts"])
    assert not any(t.startswith("Loading GPU shader modules") for t in result["texts"])
    assert result["cached"] is True
    assert result["f32"]["ok"] is True


def test_load_errors_are_named_like_webllm(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const none = T.engine("engine=sim&sim_gpu=none");
        const bare = T.bridge.createEngine({ kind: "sim", search: "engine=sim" });
        return {
          noGpu: await T.outcome(none.handle.reload(arg, 60000)),
          unknown: await T.outcome(none.handle.reload("no-such-model", 60000)),
          noConfig: await T.outcome(bare.reload("no-such-model", 60000)),
          notLoaded: await T.outcome(T.engine(arg).handle.chat([{role: "user", content: "hi"}])),
        };
    """, SMART_F32)
    assert result["noGpu"]["name"] == "WebGPUNotAvailableError"
    assert result["unknown"]["name"] == "ModelNotFoundError"
    assert result["noConfig"]["name"] == "ModelNotFoundError"
    assert result["notLoaded"]["ok"] is False and result["notLoaded"]["isError"]


NOT_WASM = [
    # A captive portal's page served with 200 instead of the library.
    (list(b"<!DOCTYPE html><html>Sign in to the network</html>"),
     "WebAssembly.instantiate(): expected magic word 00 61 73 6d, found 3c 21 44 4f @+0"),
    ([0x00, 0x61, 0x73, 0x6D, 0x02, 0x00, 0x00, 0x00],
     "WebAssembly.instantiate(): expected version 01 00 00 00, found 02 00 00 00 @+4"),
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x05], None),  # V8's own text
]


@pytest.mark.parametrize(("body", "message"), NOT_WASM, ids=["html", "version", "truncated"])
def test_a_stored_library_that_is_not_wasm_fails_with_v8s_compile_error(
        page: Page, site_url: str, body: list[int], message: str | None) -> None:
    _open(page, site_url)
    _run(page, """
        await T.store(arg.model);
        const lib = T.appConfig(0.01).model_list.find((m) => m.model_id === arg.model).model_lib;
        await T.put("webllm/wasm", lib, new Response(new Uint8Array(arg.body)));
    """, {"model": QUICK_F32, "body": body})
    requested = _watch_requests(page)
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2");
        const first = await T.outcome(e.handle.reload(arg, 60000));
        const again = await T.outcome(e.handle.reload(arg, 60000));
        return { first, again, reports: e.reports.length };
    """, QUICK_F32)
    first = result["first"]
    assert first["ok"] is False and first["isError"] and first["name"] == "CompileError"
    if message is None:
        assert first["message"].startswith("WebAssembly.instantiate(): ")
        assert "magic word" not in first["message"] and "version" not in first["message"]
    else:
        assert first["message"] == message
    # As in WebLLM: the stored entry is used again, without a request; no param phase.
    assert result["again"] == first
    assert requested == [] and result["reports"] == 0


def test_tokenizer_files_and_model_records_are_read_like_webllm(page: Page, site_url: str) -> None:
    _open(page, site_url)
    _run(page, "await T.store(arg);", SMART_F32)
    requested = _watch_requests(page)
    result = _run(page, """
        const dir = T.base(arg, 0.01);
        const configs = await caches.open("webllm/config");
        const config = await (await configs.match(dir + "mlc-chat-config.json")).json();
        const useConfig = (files) => T.put("webllm/config", dir + "mlc-chat-config.json",
          new Response(JSON.stringify({ ...config, tokenizer_files: files })));
        const e = T.engine("engine=sim&sim_compile_s=0.2");
        // Without tokenizer.json, WebLLM reads tokenizer.model.
        await useConfig(["tokenizer.model", "tokenizer_config.json"]);
        await T.put("webllm/model", dir + "tokenizer.model", new Response("sentencepiece"));
        const model = await T.outcome(e.handle.reload(arg, 60000));
        await useConfig(["vocab.json"]);
        const unsupported = await T.outcome(e.handle.reload(arg, 60000));
        const noLib = T.appConfig(0.01);
        noLib.model_list.forEach((m) => { delete m.model_lib; });
        const bare = T.engine("engine=sim", 0.01, "sim", noLib);
        return { model, unsupported, noLib: await T.outcome(bare.handle.reload(arg, 60000)) };
    """, SMART_F32)
    assert result["model"] == {"ok": True, "value": None}
    assert result["unsupported"] == {"ok": False, "name": "UnsupportedTokenizerFilesError",
                                     "message": "Cannot handle tokenizer files vocab.json",
                                     "isError": True}
    assert result["noLib"]["name"] == "MissingModelError"
    assert f'"{SMART_F32}"' in result["noLib"]["message"]
    assert requested == []


def test_a_model_library_on_localhost_is_fetched_every_time_and_never_cached(
        page: Page, site_url: str) -> None:
    """WebLLM's own rule (reloadInternal's fetchWasmSource): a model_lib URL containing
    "localhost" is fetched on every reload and not stored in webllm/wasm."""
    # The page is opened on localhost itself: the site's policy lets its workers fetch
    # only from their own origin (and the model hosts), as it should.
    local = site_url.replace("127.0.0.1", "localhost")
    _open(page, local)
    _run(page, "await T.store(arg);", QUICK_F32)
    requested = _watch_requests(page)
    result = _run(page, """
        const config = T.appConfig(0.01);
        // Not the stored library's own URL (this page is on localhost too): a query makes
        // it another key, and it still names localhost.
        const lib = `${arg.local}sim-host/0.01/${arg.model}/resolve/main/model-webgpu.wasm?local`;
        config.model_list.forEach((m) => { m.model_lib = lib; });
        const e = T.engine("engine=sim&sim_compile_s=0.2", 0.01, "sim", config);
        const loads = [await T.outcome(e.handle.reload(arg.model, 60000)),
                       await T.outcome(e.handle.reload(arg.model, 60000))];
        return { loads, lib, stored: await (await caches.open("webllm/wasm")).match(lib) ?? null };
    """, {"model": QUICK_F32, "local": local})
    assert result["loads"] == [{"ok": True, "value": None}] * 2
    assert requested == [result["lib"]] * 2
    assert result["stored"] is None


def test_sim_gpu_reset_loses_the_device_after_n_replies_until_a_reload(
        page: Page, site_url: str) -> None:
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    _open(page, site_url)
    result = _run(page, """
        const search = "engine=sim&sim_compile_s=0.2&sim_tps=0&sim_gpu_reset=1";
        const hi = [{ role: "user", content: "/echo hi" }];
        const e = T.engine(search);
        await e.handle.reload(arg, 60000);
        const first = await T.outcome(e.handle.chat(hi));
        const lost = [await T.outcome(e.handle.chat(hi)), await T.outcome(e.handle.chat(hi))];
        const reload = await T.outcome(e.handle.reload(arg, 60000));
        // The new device stays: the count is per worker and has passed N.
        const after = [await T.outcome(e.handle.chat(hi)), await T.outcome(e.handle.chat(hi))];
        const fresh = T.engine(search);  // a new worker counts from 0
        await fresh.handle.reload(arg, 60000);
        const freshReplies = [await T.outcome(fresh.handle.chat(hi)),
                              await T.outcome(fresh.handle.chat(hi))];
        return { first, lost, reload, after, freshReplies, alive: e.handle.alive };
    """, QUICK_F32)
    not_loaded = {
        "ok": False, "name": "ModelNotLoadedError", "isError": True,
        "message": "Model not loaded before trying to complete ChatCompletionRequest. Please "
                   "ensure you have called MLCEngine.reload(model) to load the model before "
                   "initiating APIs, or initialize your engine using CreateMLCEngine() with a "
                   "valid model configuration."}
    assert result["first"]["ok"] and result["first"]["value"]["content"] == "hi"
    assert result["lost"] == [not_loaded, not_loaded]
    assert result["reload"] == {"ok": True, "value": None}
    assert [r["ok"] and r["value"]["content"] for r in result["after"]] == ["hi", "hi"]
    assert result["freshReplies"][0]["ok"] and result["freshReplies"][1] == not_loaded
    assert result["alive"] is True
    lost_logs = [w for w in warnings if w.startswith("Device was lost.")]
    assert len(lost_logs) == 2 and "sim_gpu_reset=1" in lost_logs[0]


def test_sim_gpu_reset_0_loses_every_loads_device(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine("engine=sim&sim_compile_s=0.2&sim_tps=0&sim_gpu_reset=0");
        const out = [];
        for (let i = 0; i < 2; i++) {
          out.push(await T.outcome(e.handle.reload(arg, 60000)));
          out.push(await T.outcome(e.handle.chat([{ role: "user", content: "hi" }])));
        }
        return out.map((r) => r.ok || r.name);
    """, QUICK_F32)
    assert result == [True, "ModelNotLoadedError"] * 2


def test_prompt_tokens_count_each_wide_character_as_one_token(page: Page, site_url: str) -> None:
    """Stricter than LocalChat's own estimate: one token per character from U+1100 on
    (Han, kana, Hangul, emoji, …), the other characters (code points) 2.5 to a token,
    rounded up."""
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine(arg.search);
        await e.handle.reload(arg.model, 60000);
        const chat = (content) => T.outcome(e.handle.chat([{ role: "user", content }]));
        const mixed = await chat("/echo 世界ひらカタ한글 hello 👋");
        return { mixed: mixed.value.usage.prompt_tokens,
                 fits: await chat("世".repeat(4096)), over: await chat("世".repeat(4097)),
                 latin: (await chat("x".repeat(4096 * 5 / 2))).value.usage.prompt_tokens };
    """, {"search": FAST, "model": SMART_F32})
    assert result["mixed"] == 9 + math.ceil(len("/echo  hello ") / 2.5)
    assert result["fits"]["ok"] and result["fits"]["value"]["usage"]["prompt_tokens"] == 4096
    assert result["over"]["name"] == "ContextWindowSizeExceededError"
    assert "number of prompt tokens: 4097;" in result["over"]["message"]
    assert result["latin"] == 4096


TOKEN_TABLE = [
    "hi", "x", "/echo 世界ひらカタ한글 hello 👋", "Plain English, a sentence or two of it.",
    "def f(x):\n    return x * 2  # code\n", "— dashes, “quotes” and … ellipses —",
    "código, ñandú, Ærøskøbing", "Привет, мир! Как дела?", "مرحبا بالعالم",
    "שלום עולם", "नमस्ते दुनिया", "🙂🙂🙂 👩‍👩‍👧 🇫🇷", "東京の天気は晴れです。" * 3,
    "한국어 문장입니다 and English", "ᄀᄁᄂ (Hangul Jamo, U+1100 on)", "ჰ (U+10F0, below it)",
    "lorem ipsum dolor sit amet " * 40, "a" * 7, "ab" * 2501,
]


def test_the_simulated_count_is_never_below_the_apps_estimate(page: Page, site_url: str) -> None:
    """So that the app's trimming is tested: a history it under-counts is refused."""
    _open(page, site_url)
    counts = _run(page, """
        const e = T.engine(arg.search);
        await e.handle.reload(arg.model, 60000);
        const out = [];
        for (const content of arg.texts) {
          const reply = await e.handle.chat([{ role: "user", content }], { maxTokens: 1 });
          out.push(reply.usage.prompt_tokens);
        }
        return out;
    """, {"search": FAST, "model": SMART_F32, "texts": TOKEN_TABLE})
    for text, count in zip(TOKEN_TABLE, counts, strict=True):
        assert count >= math.ceil(_char_tokens(text)), (text[:40], count, _char_tokens(text))
    # Stricter, not equal, on Latin text (2.5 characters a token against the app's 3).
    latin = TOKEN_TABLE.index("ab" * 2501)
    assert counts[latin] > math.ceil(_char_tokens(TOKEN_TABLE[latin]))


def test_a_history_the_app_trims_to_fit_is_accepted(page: Page, site_url: str) -> None:
    """fit_history (core/context.py) fills the window, less the reply's reserve, by its own
    estimate; the simulated engine, counting more strictly, still accepts it."""
    latin = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 9
    cjk = "東京の天気は晴れです。" * 25
    turns = [{"role": "user" if i % 2 == 0 else "assistant",
              "content": f"{i} " + (cjk if i % 3 == 0 else latin)} for i in range(40)]
    histories = {
        "many turns": [{"role": "system", "content": "Be brief."}, *turns],
        "latin only": [{"role": "user", "content": f"{i} {latin}"} for i in range(60)],
        "one long message": [{"role": "user", "content": "x y z " * 8000 + "THE END"}],
    }
    fitted = {}
    for name, history in histories.items():
        fit = fit_history(history, 4096, REPLY_RESERVE_TOKENS)
        used = sum(estimate_tokens(m["content"]) for m in fit.messages)
        assert 4096 - REPLY_RESERVE_TOKENS - used < 400, name  # filled up to the budget
        fitted[name] = list(fit.messages)
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine(arg.search);
        await e.handle.reload(arg.model, 60000);
        const out = {};
        for (const [name, messages] of Object.entries(arg.fitted)) {
          const reply = await T.outcome(e.handle.chat(messages, { maxTokens: 1 }));
          out[name] = reply.ok ? reply.value.usage.prompt_tokens : reply.name;
        }
        return out;
    """, {"search": FAST, "model": SMART_F32, "fitted": fitted})
    for name, history in fitted.items():
        count = result[name]
        assert isinstance(count, int) and count <= 4096, (name, count)
        chars = math.ceil(sum(_char_tokens(m["content"]) for m in history))
        assert count >= chars, (name, count, chars)


def test_echo_streams_exact_text_with_usage(page: Page, site_url: str) -> None:
    _open(page, site_url)
    text = "<b>hi</b>\nline2 — héllo 👋 世界\n\n  `code`  "
    result = _run(page, """
        const e = T.engine(arg.search);
        await e.handle.reload(arg.model, 60000);
        const deltas = [];
        const echo = await e.handle.chat([{ role: "user", content: "/echo " + arg.text }],
                                         { onDelta: (t) => deltas.push(t) });
        const prompt = [{ role: "user", content: "What is a simulated engine for?" }];
        const reply = await e.handle.chat(prompt);
        const again = await e.handle.chat(prompt);
        const short = await e.handle.chat(prompt, { maxTokens: 5 });
        return { echo, deltas, reply, again, short };
    """, {"search": FAST, "model": SMART_F32, "text": text})
    echo = result["echo"]
    assert echo["content"] == text and "".join(result["deltas"]) == text
    assert echo["finishReason"] == "stop"
    usage = echo["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert {"prefill_tokens_per_s", "decode_tokens_per_s", "time_to_first_token_s",
            "e2e_latency_s"} <= set(usage["extra"])
    reply = result["reply"]
    assert reply["content"] == result["again"]["content"]
    assert "simulated" in reply["content"].lower()
    assert 30 <= reply["usage"]["completion_tokens"] <= 80
    short = result["short"]
    assert short["finishReason"] == "length" and short["usage"]["completion_tokens"] == 5
    assert reply["content"].startswith(short["content"])


def test_deltas_come_every_frame_until_a_stream_outruns_reading(page: Page,
                                                                site_url: str) -> None:
    """Readable speeds get one onDelta call per animation frame; a stream of thousands
    of tokens/s gets one per FAST_DELTA_MS after a call that carried more than
    FAST_DELTA_CHARS. Nothing is lost either way."""
    _open(page, site_url)
    words = " ".join(f"w{i % 10}" for i in range(2000))  # 2,000 tokens
    result = _run(page, """
        const run = async (search, text) => {
          const e = T.engine(search);
          await e.handle.reload(arg.model, 60000);
          const calls = [];
          const reply = await e.handle.chat([{ role: "user", content: "/echo " + text }],
            { onDelta: (t) => calls.push({ at: performance.now(), text: t }) });
          e.handle.terminate();
          return { content: reply.content, calls };
        };
        return {
          fast: await run(arg.fast, arg.words),
          slow: await run(arg.slow, arg.words.slice(0, 200)),
          chars: T.bridge.FAST_DELTA_CHARS, ms: T.bridge.FAST_DELTA_MS,
        };
    """, {"fast": FAST.replace("sim_tps=0", "sim_tps=8000"),  # ~130 tokens a frame, 0.25 s
          "slow": FAST.replace("sim_tps=0", "sim_tps=120"),
          "model": SMART_F32, "words": words})
    chars, ms = result["chars"], result["ms"]
    fast = result["fast"]["calls"]
    assert "".join(c["text"] for c in fast) == result["fast"]["content"] == words
    # The last call comes at once when the stream ends: left out.
    big = [(a, b) for a, b in pairwise(fast[:-1]) if len(a["text"]) > chars]
    assert big, "the fast stream never carried more than FAST_DELTA_CHARS in one call"
    # The next frame after the wait: at least FAST_DELTA_MS minus the 8 ms head start,
    # less 1 ms: headless Chromium often runs that frame at once after the timer, and
    # the timer itself fires up to a few tenths of a millisecond early against
    # performance.now() (measured: 91.8-92.2 ms). Without the wait the calls come
    # a frame (16 ms) apart.
    spacing = [round(b["at"] - a["at"], 1) for a, b in big]
    assert min(spacing) >= ms - 9, (spacing, [len(c["text"]) for c in fast])
    slow = result["slow"]["calls"]
    assert "".join(c["text"] for c in slow) == result["slow"]["content"] == words[:200]
    assert all(len(c["text"]) <= chars for c in slow)
    gaps = [b["at"] - a["at"] for a, b in pairwise(slow)]
    # ~67 tokens at 120/s (0.55 s, a token or two a frame): with the fast-stream wait
    # there would be at most ~6 calls.
    assert len(slow) > 15 and min(gaps) < ms / 2


def test_prompt_beyond_the_context_window_is_refused(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine(arg.search);
        await e.handle.reload(arg.model, 60000);
        return T.outcome(e.handle.chat([{ role: "user", content: "x".repeat(4096 * 4 + 100) }]));
    """, {"search": FAST, "model": SMART_F32})
    assert result["name"] == "ContextWindowSizeExceededError"


def test_interrupt_ends_the_reply_with_abort_keeping_the_text(page: Page, site_url: str) -> None:
    _open(page, site_url)
    _run(page, """
        window.e = T.engine("engine=sim&sim_compile_s=0.2&sim_tps=20");
        await e.handle.reload(arg, 60000);
        window.reply = e.handle.chat([{ role: "user", content: "Tell me a story" }],
                                     { onDelta: (t) => e.deltas.push(t) });
    """, SMART_F32)
    page.wait_for_function("() => e.deltas.length >= 2")
    result = _run(page, """
        await e.handle.interrupt();
        const stopped = await reply;
        const full = await e.handle.chat([{ role: "user", content: "Tell me a story" }],
                                         { maxTokens: 1000 });
        // An interrupt that arrives before the first token still stops the reply.
        const early = e.handle.chat([{ role: "user", content: "Tell me a story" }]);
        await e.handle.interrupt();
        return { stopped, full, early: await early, deltas: e.deltas.join("") };
    """)
    stopped = result["stopped"]
    assert stopped["finishReason"] == "abort"
    assert stopped["content"] == result["deltas"]
    assert result["full"]["content"].startswith(stopped["content"])
    assert len(stopped["content"]) < len(result["full"]["content"])
    assert result["early"]["finishReason"] == "abort"


def test_unload_during_download_resolves_the_reload(page: Page, site_url: str) -> None:
    _open(page, site_url)
    urls = _run(page, "return T.store(arg, { skip: [1] });", SMART_F16)
    held = []  # the shard request, never answered: the download is in flight
    page.route(urls[1], lambda route: held.append(route))
    with page.context.expect_event("request", lambda r: r.url == urls[1]):
        _run(page, """
            window.e = T.engine("engine=sim&sim_compile_s=0.2");
            window.load = T.outcome(e.handle.reload(arg, 60000));
        """, SMART_F16)
    result = _run(page, """
        await e.handle.unload();
        return { load: await load, cached: await e.handle.hasModelInCache(arg),
                 chat: await T.outcome(e.handle.chat([{ role: "user", content: "hi" }])),
                 texts: e.reports.map((r) => r.text), alive: e.handle.alive };
    """, SMART_F16)
    assert result["load"] == {"ok": True, "value": None}
    assert result["cached"] is False
    assert result["chat"]["name"] == "ModelNotLoadedError"
    assert not any(t.startswith("Loading model") for t in result["texts"])
    assert result["alive"] is True
    assert len(held) == 1


def test_terminate_settles_every_pending_call(page: Page, site_url: str) -> None:
    _open(page, site_url)
    _run(page, """
        // A long GPU phase: terminate() must stop it (WebLLM ignores an abort there).
        window.loading = T.engine("engine=sim&sim_compile_s=60");
        window.load = T.outcome(loading.handle.reload(arg, 0));
        window.chatting = T.engine("engine=sim&sim_compile_s=0.2&sim_tps=2");
        await chatting.handle.reload(arg, 60000);
        window.reply = T.outcome(chatting.handle.chat([{ role: "user", content: "hi" }],
                                                      { onDelta: (t) => chatting.deltas.push(t) }));
    """, SMART_F16)
    page.wait_for_function("() => loading.reports.length >= 1 && chatting.deltas.length >= 1")
    result = _run(page, """
        loading.handle.terminate();
        loading.handle.terminate();  // idempotent
        chatting.handle.terminate();
        return { load: await load, reply: await reply, alive: loading.handle.alive,
                 later: await T.outcome(loading.handle.chat([{ role: "user", content: "hi" }])) };
    """)
    assert result["load"]["name"] == "EngineTerminated" and result["load"]["isError"]
    assert result["reply"]["name"] == "EngineTerminated"
    assert result["alive"] is False
    assert result["later"]["name"] == "EngineTerminated"


def test_a_worker_that_cannot_start_rejects_calls_and_reports_the_crash(
        page: Page, site_url: str) -> None:
    page.route("**/workers/sim-engine-worker.js*",
               lambda route: route.fulfill(status=200, content_type="text/javascript",
                                           body="this is not javascript ("))
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine("engine=sim");
        const load = await T.outcome(e.handle.reload(arg, 60000));
        return { load, crashes: e.crashes, alive: e.handle.alive };
    """, SMART_F16)
    assert result["load"]["name"] == "EngineWorkerError"
    assert "engine worker" in result["load"]["message"]
    assert len(result["crashes"]) == 1 and result["alive"] is False


def test_real_engine_fails_fast_when_the_model_host_is_unreachable(
        page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const e = T.engine("", 1, "webllm");
        const t0 = performance.now();
        const load = await T.outcome(e.handle.reload(arg, 60000));
        return { load, ms: performance.now() - t0, alive: e.handle.alive };
    """, QUICK_F32)
    load = result["load"]
    assert load["ok"] is False and load["isError"]
    assert "fetch" in (load["name"] + " " + load["message"]).lower()
    assert result["ms"] < 20_000
    assert result["alive"] is True


def test_probe_gpu(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const p = T.bridge.probeGpu;
        return { real: await p(""), f16: await p("?engine=sim"),
                 nof16: await p("engine=sim&sim_gpu=nof16"),
                 low: await p("?engine=sim&sim_gpu=low"),
                 none: await p("?engine=sim&sim_gpu=none") };
    """)
    real = result["real"]
    # Headless Chromium with --enable-unsafe-webgpu: SwiftShader, no shader-f16.
    assert real["usable"] is True and real["reason"] == "ok"
    assert real["f16"] is False and real["simulated"] is False
    assert (result["f16"]["usable"], result["f16"]["f16"], result["f16"]["lowResource"]) == (
        True, True, False)
    assert (result["nof16"]["usable"], result["nof16"]["f16"]) == (True, False)
    low = result["low"]
    assert low["usable"] and low["f16"] and low["lowResource"]
    assert low["maxStorageBufferBindingSize"] == 128 * MIB
    assert (result["none"]["usable"], result["none"]["reason"]) == (False, "no-webgpu")
    assert all(result[k]["simulated"] for k in ("f16", "nof16", "low", "none"))


@pytest.mark.parametrize(("value", "name", "message"), [
    ("ShaderF16SupportError: needs f16", "ShaderF16SupportError", "needs f16"),
    ("TypeError: Failed to fetch", "TypeError", "Failed to fetch"),
    ("no prefix here", "EngineError", "no prefix here"),
    ("two words: not a name", "EngineError", "two words: not a name"),
])
def test_to_error_names_errors_from_webllm_strings(
        page: Page, site_url: str, value: str, name: str, message: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const e = T.bridge.toError(arg);
        const plain = Object.getPrototypeOf(e) === Error.prototype;
        return [e instanceof Error, plain, e.name, e.message];
    """, value)
    assert result == [True, True, name, message]


def test_with_timeout_normalises_and_times_out(page: Page, site_url: str) -> None:
    _open(page, site_url)
    result = _run(page, """
        const { withTimeout } = T.bridge;
        return {
          hang: await T.outcome(withTimeout(new Promise(() => {}), 50, "Waiting")),
          string: await T.outcome(withTimeout(Promise.reject("NetworkError: gone"), 1000)),
          value: await T.outcome(withTimeout(Promise.resolve(7), 0)),
          dom: await T.outcome(withTimeout(
            Promise.reject(new DOMException("full", "QuotaExceededError")), 0)),
        };
    """)
    assert result["hang"]["name"] == "TimeoutError" and "Waiting" in result["hang"]["message"]
    assert result["string"] == {"ok": False, "name": "NetworkError", "message": "gone",
                                "isError": True}
    assert result["value"] == {"ok": True, "value": 7}
    assert result["dom"]["name"] == "QuotaExceededError" and result["dom"]["isError"]
