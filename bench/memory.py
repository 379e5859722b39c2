"""Memory benchmark: the page's JavaScript heap and WebAssembly memory, app against bare.

Measures, in headless Chromium, four pages, each in a fresh browser context per run:
- bare: bench/boot.py's bare-Pyodide page (same vendored Pyodide), after boot;
- app, after boot: the app (simulated engine, no service worker, as bench/chat.py opens
  it) on an empty database;
- app, 10,000 conversations: bench/chat.py's 10,000 conversations seeded into IndexedDB,
  the page reloaded, the sidebar showing its first link;
- app, 1,000-message thread: bench/chat.py's 1,000-message conversation seeded, the page
  reloaded, the conversation opened until its newest message is in the DOM.
Each is measured once the page has settled: ready, for the app its start-up work done
(`data-markdown` and `data-models`), then the main thread free of long tasks for a second
(bench/boot.py's probes). Then garbage is collected (CDP `HeapProfiler.collectGarbage`,
twice) and:
- JS heap: CDP `Runtime.getHeapUsage` usedSize: the page's main-thread V8 heap (workers,
  e.g. the engine's, are separate isolates and not counted);
  Blink's own heap (the DOM; CDP's embedderHeapUsedSize) is recorded beside it, not
  counted;
- WebAssembly memory: the byte length of Pyodide's wasm heap
  (`pyodide._module.HEAPU8.buffer`; the app's instance is `window.localchat.pyodide`).
  A wasm memory never shrinks, so this is its high-water mark. An init script also
  records every WebAssembly memory the page creates or instantiates (main thread); the
  figure counts Pyodide's only, and the total of all of them is recorded beside it (the
  two are equal when Pyodide's is the page's only wasm memory).
`performance.measureUserAgentSpecificMemory()` is recorded too where the page has it (it
needs cross-origin isolation, which the site does not have: normally skipped).

Budget: the app's JS heap + wasm memory after boot <= 1.3x the bare page's (medians over
runs). The other two states are reported, not budgeted.

Writes bench/results/memory-<time>.json and prints a summary. Exit code 1 if over budget.
Usage: python bench/memory.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import boot
import chat

ROOT = boot.ROOT
BUDGET_RATIO = 1.3
MB = 1024 * 1024
TIMEOUT_MS = 120_000

# Every WebAssembly memory of the page (main thread), created or exported by an instance.
WASM_PROBE = """
(() => {
  const seen = [];
  window.__wasmMemories = seen;
  const keep = (memory) => {
    if (!seen.some((ref) => ref.deref() === memory)) seen.push(new WeakRef(memory));
  };
  const fromInstance = (instance) => {
    for (const value of Object.values(instance.exports)) {
      if (value instanceof WebAssembly.Memory) keep(value);
    }
    return instance;
  };
  const fromResult = (result) => {
    fromInstance(result instanceof WebAssembly.Instance ? result : result.instance);
    return result;
  };
  const W = WebAssembly;
  const NativeMemory = W.Memory;
  W.Memory = new Proxy(NativeMemory, {construct(target, args) {
    const memory = Reflect.construct(target, args);
    keep(memory);
    return memory;
  }});
  W.Instance = new Proxy(W.Instance, {construct(target, args) {
    return fromInstance(Reflect.construct(target, args));
  }});
  const instantiate = W.instantiate;
  W.instantiate = (...args) => instantiate(...args).then(fromResult);
  const streaming = W.instantiateStreaming;
  if (streaming) W.instantiateStreaming = (...args) => streaming(...args).then(fromResult);
})();
"""

WASM_JS = """async (isApp) => {
  const pyodide = isApp ? await window.localchat.pyodide : window.__pyodide;
  const own = pyodide._module.HEAPU8.buffer.byteLength;
  const buffers = new Set();
  for (const ref of window.__wasmMemories) {
    const memory = ref.deref();
    if (memory) buffers.add(memory.buffer);
  }
  let all = 0;
  for (const buffer of buffers) all += buffer.byteLength;
  return {pyodide: own, all, memories: buffers.size};
}"""

UA_MEMORY_JS = """async () => {
  if (typeof performance.measureUserAgentSpecificMemory !== "function" ||
      !self.crossOriginIsolated) return null;
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 60000));
  const result = await Promise.race([performance.measureUserAgentSpecificMemory(), timeout]);
  return result === null ? null : result.bytes;
}"""

STATES = ("bare", "boot", "sidebar", "thread")
LABELS = {"bare": "bare page after boot", "boot": "app after boot",
          "sidebar": "app, 10,000 conversations", "thread": "app, 1,000-message thread open"}


def quiet(page: Page) -> None:
    """Wait until the main thread has been free of long tasks for a second."""
    page.wait_for_function("() => window.__readyAt !== undefined", timeout=TIMEOUT_MS)
    page.wait_for_function(boot.QUIET, timeout=60_000, polling=100)


def measure_page(page: Page, is_app: bool) -> dict[str, Any]:
    quiet(page)
    cdp = page.context.new_cdp_session(page)
    for _ in range(2):
        cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")
    cdp.detach()
    wasm = page.evaluate(WASM_JS, is_app)
    return {"js": float(heap["usedSize"]), "js_total": float(heap["totalSize"]),
            "embedder": float(heap.get("embedderHeapUsedSize", 0)),
            "wasm": float(wasm["pyodide"]), "wasm_all": float(wasm["all"]),
            "wasm_memories": wasm["memories"], "ua_memory": page.evaluate(UA_MEMORY_JS)}


def run_state(s: chat.Session, state: str, base: str) -> dict[str, Any]:
    with s.page(boot.LONGTASK_PROBE, boot.READY_PROBE, WASM_PROBE) as page:
        if state == "bare":
            page.goto(base + "bare.html")
            page.wait_for_selector('body[data-ready="true"]', state="attached")
            return measure_page(page, is_app=False)
        s.open_app(page)
        if state == "sidebar":
            chat.seed(page, chat.many_conversations(10_000), [])
            s.open_app(page, reload=True)
            page.wait_for_selector('ul[aria-label="Saved conversations"] a', state="attached")
        elif state == "thread":
            conversation, messages = chat.long_conversation(1000)
            chat.seed(page, [conversation], messages)
            s.open_app(page, reload=True)
            page.evaluate("(id) => { location.hash = `#/chat/${id}`; }", conversation["id"])
            page.wait_for_selector(f'#thread [data-message-id="{messages[-1]["id"]}"]',
                                   state="attached")
            page.wait_for_timeout(200)  # let the thread's first frame run first
            page.evaluate("() => { window.__readyAt = performance.now(); }")  # quiet from here
            rendered = page.locator("#thread article[data-message-id]").count()
            return {**measure_page(page, is_app=True), "rendered_messages": rendered}
        return measure_page(page, is_app=True)


def mb(value: float) -> str:
    return f"{value / MB:,.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not (ROOT / "web" / "vendor" / "build.js").is_file():
        print("web/vendor is not built: run `make build` first", file=sys.stderr)
        return 2
    root = boot.site_root()
    server = boot.make_server("127.0.0.1", 0, root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    runs: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
    with sync_playwright() as p:
        browser = p.chromium.launch(**boot.config.launch_args())
        s = chat.Session(browser, base)
        with s.page() as page:  # one unmeasured load to settle the OS file cache
            s.open_app(page)
        for i in range(args.runs):
            order = list(STATES) if i % 2 == 0 else ["boot", "bare", "sidebar", "thread"]
            for state in order:
                runs[state].append(run_state(s, state, base))
            print(f"run {i + 1}/{args.runs}: " + ", ".join(
                f"{state} {mb(runs[state][-1]['js'] + runs[state][-1]['wasm'])}"
                for state in STATES), flush=True)
        browser.close()
    server.shutdown()

    med: dict[str, dict[str, float]] = {}
    for state, values in runs.items():
        med[state] = {key: statistics.median(v[key] for v in values)
                      for key in ("js", "js_total", "embedder", "wasm", "wasm_all",
                                  "wasm_memories")}
        med[state]["total"] = statistics.median(v["js"] + v["wasm"] for v in values)
    ratio = {state: med[state]["total"] / med["bare"]["total"] for state in STATES}
    ok = ratio["boot"] <= BUDGET_RATIO
    ua = {state: [v["ua_memory"] for v in values] for state, values in runs.items()}
    summary = {
        "medians_bytes": med, "ratios_to_bare": ratio, "runs": runs,
        "budget": {"boot_ratio": BUDGET_RATIO, "pass": ok},
        "measure_user_agent_specific_memory": (
            ua if any(x is not None for xs in ua.values() for x in xs) else "not available"),
        "page_errors": s.errors, "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))

    bare = med["bare"]
    print(f"\nmemory (medians of {args.runs} runs; JS = main-thread heap after GC, wasm = "
          "Pyodide's heap):")
    print(f"  bare page after boot: JS {mb(bare['js'])} + wasm {mb(bare['wasm'])} = "
          f"{mb(bare['total'])}")
    for state in ("boot", "sidebar", "thread"):
        m = med[state]
        budget = f" (budget {BUDGET_RATIO})" if state == "boot" else ""
        label = "memory after boot: app" if state == "boot" else LABELS[state] + ":"
        print(f"  {label} JS {mb(m['js'])} + wasm {mb(m['wasm'])} = {mb(m['total'])} / bare "
              f"{mb(bare['total'])} = {ratio[state]:.3f}{budget}")
    print("  diagnostic, not counted: Blink's heap (DOM; CDP embedderHeapUsedSize): " + ", ".join(
        f"{state} {mb(med[state]['embedder'])}" for state in STATES) + "; the thread renders "
        f"{statistics.median(v['rendered_messages'] for v in runs['thread']):.0f} of its 1,000 "
        "messages")
    others = {state: med[state]["wasm_all"] - med[state]["wasm"] for state in STATES}
    if any(others.values()):
        print("  other WebAssembly memories in the page (not counted): " + ", ".join(
            f"{state} {mb(v)}" for state, v in others.items()))
    else:
        print("  (Pyodide's is the only WebAssembly memory of each page's main thread)")
    if summary["measure_user_agent_specific_memory"] == "not available":
        print("  performance.measureUserAgentSpecificMemory: not available (no cross-origin "
              "isolation)")
    if s.errors:
        print(f"  the pages reported {len(s.errors)} error(s), first: {s.errors[0]}")
    print(f"  {'within budget' if ok else 'OVER BUDGET'}; written to {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
