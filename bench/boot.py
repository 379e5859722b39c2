"""Boot benchmark: LocalChat against a bare-Pyodide page using the same vendored Pyodide.

Measures, in headless Chromium, two times from navigation start, for both pages:
- ready: `<body data-ready="true">` appears;
- usable: the later of ready and the end of the last long task (over 50 ms, the
  browser's `longtask` entries, observed from before the page's first script) that ends
  after ready: a user who types or clicks at "ready" waits that long. The longest such
  task is reported too (budget: none over 50 ms).
Cold is a fresh browser context (empty HTTP cache, no service worker); warm is the same
context navigated again (a returning visit). Each context makes a cold load, one first
return visit (reported, not budgeted: the first visit the app's service worker serves
compiles WebAssembly from its cache once per deployment), then 2 warm loads. Before each
reload the app finishes its start-up work (Markdown installed, the model cache checked)
and the main thread has been free of long tasks for a second, as a visit that ended
normally would. App and bare runs alternate so that machine noise hits both alike; the
budget is on medians and their ratio. Also records the app shell's first contentful
paint, and (a diagnostic, not budgeted) the bare page on Pyodide's standard library as
npm ships it (sources only), which is what the build's standard-library bytecode saves.

Writes bench/results/boot-<time>.json and prints a summary. Exit code 1 if over budget.
Usage: python bench/boot.py [--runs 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.devserver import make_server  # noqa: E402

_spec = importlib.util.spec_from_file_location("playwright_config", ROOT / "playwright.config.py")
assert _spec and _spec.loader
config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config)

BUDGET_RATIO = 1.15
WARM_PER_RUN = 2  # measured warm loads per context (after the first return visit)
BUDGET_FIRST_PAINT_MS = 300
BUDGET_TASK_MS = 50  # no longer task after ready

# Its script is a file, not inline: the dev server's Content-Security-Policy (the app's)
# governs this page too, and refuses inline scripts.
BARE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>bare pyodide</title>
<script type="module" src="bare.js"></script></head><body data-ready="false">bare</body></html>
"""
BARE_SCRIPT = """const { loadPyodide } = await import("./vendor/pyodide/pyodide.mjs");
const pyodide = await loadPyodide();
window.__pyodide = pyodide;  // for bench/memory.py
pyodide.runPython("import sys");
document.body.dataset.ready = "true";
"""

# Record when <body data-ready="true"> appears, for both pages alike.
READY_PROBE = """
(() => {
  const mark = () => {
    if (document.body && document.body.dataset.ready === "true" && !window.__readyAt) {
      window.__readyAt = performance.now();
    }
  };
  new MutationObserver(mark).observe(document, {subtree: true, attributes: true,
                                                attributeFilter: ["data-ready"]});
})();
"""


# Every long task of the page, from before its first script (buffered entries are not
# kept for longtask, so the observer must be there first).
LONGTASK_PROBE = """
(() => {
  window.__tasks = [];
  window.__lastTaskEnd = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      window.__tasks.push([e.startTime, e.duration]);
      window.__lastTaskEnd = Math.max(window.__lastTaskEnd, e.startTime + e.duration);
    }
  }).observe({type: "longtask"});
})();
"""
QUIET_MS = 1000  # no long task for this long: the start-up work is over


def site_root() -> Path:
    """A temporary site root: web/ (linked), the bare page, and the bare page on the stock
    standard library (stock/: vendor/pyodide as built, but npm's python_stdlib.zip)."""
    root = Path(tempfile.mkdtemp(prefix="localchat-bench-"))
    for entry in (ROOT / "web").iterdir():
        os.symlink(entry, root / entry.name)
    (root / "bare.html").write_text(BARE_PAGE)
    (root / "bare.js").write_text(BARE_SCRIPT)
    stock = root / "stock"
    (stock / "vendor" / "pyodide").mkdir(parents=True)
    for entry in (ROOT / "web" / "vendor" / "pyodide").iterdir():
        if entry.name != "python_stdlib.zip":
            os.symlink(entry, stock / "vendor" / "pyodide" / entry.name)
    os.symlink(ROOT / "node_modules" / "pyodide" / "python_stdlib.zip",
               stock / "vendor" / "pyodide" / "python_stdlib.zip")
    (stock / "bare.html").write_text(BARE_PAGE)
    (stock / "bare.js").write_text(BARE_SCRIPT)
    return root


# The app's start-up work after it is usable (Markdown installed, the model cache checked)
# is done: a warm load is a returning visit, not a reload that interrupts the previous
# visit's start-up (the bare page has none, so that would weigh on the app alone).
SETTLED = ("() => document.body.dataset.markdown !== undefined && "
           "document.body.dataset.models !== undefined")
QUIET = f"() => performance.now() - Math.max(window.__readyAt, window.__lastTaskEnd) > {QUIET_MS}"


def settle(page: Page) -> None:
    try:
        page.wait_for_function(SETTLED, timeout=30_000)
    except PlaywrightTimeout:  # e.g. no usable WebGPU: no model service to wait for
        print("  (the app's start-up work did not report done; reloading anyway)", flush=True)


def usable_after(page: Page, is_app: bool) -> tuple[float, float, float]:
    """(ready, usable, longest task after ready), once the page has settled."""
    page.wait_for_function("() => window.__readyAt !== undefined", timeout=120_000)
    if is_app:
        settle(page)
    page.wait_for_function(QUIET, timeout=60_000, polling=100)
    ready, tasks = page.evaluate("() => [window.__readyAt, window.__tasks]")
    after = [(start, length) for start, length in tasks if start + length > ready]
    usable = max([ready] + [start + length for start, length in after])
    return float(ready), float(usable), max([0.0] + [float(length) for _, length in after])


def measure(browser: Browser, url: str, warm_runs: int) -> dict[str, object]:
    """In a fresh context: a cold load, the first return visit, then `warm_runs` warm loads.

    Returns {cold, first_return, warm: [...], paint}, each load as (ready, usable,
    longest task after ready). The first return visit is the first one the app's service
    worker serves: WebAssembly that came from its cache is compiled then, once per
    deployment, and cached with it; later visits (the warm figure, the steady state of a
    returning user) reuse that code, as the bare page's visits reuse the HTTP cache's.
    Both pages get the same sequence.
    """
    context = browser.new_context(viewport=config.VIEWPORTS["desktop"])
    context.add_init_script(LONGTASK_PROBE)
    context.add_init_script(READY_PROBE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    is_app = "bare.html" not in url

    def load(again: bool = False) -> tuple[float, float, float]:
        # A warm load reloads: goto() to the same URL with a #hash would not navigate.
        if again:
            page.reload()
        else:
            page.goto(url)
        return usable_after(page, is_app)

    cold = load()
    paint = page.evaluate(
        "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null")
    if is_app:
        # Let the service worker finish precaching, as a returning user's browser has.
        page.wait_for_function(
            "() => navigator.serviceWorker.controller !== null || "
            "navigator.serviceWorker.ready.then(() => true)", timeout=120_000)
        page.evaluate("navigator.serviceWorker.ready")
    first_return = load(again=True)
    warm = [load(again=True) for _ in range(warm_runs)]
    context.close()
    if errors:
        raise RuntimeError(f"{url}: page errors {errors}")
    return {"cold": cold, "first_return": first_return, "warm": warm, "paint": paint}


PAGES = ("app", "bare", "stock")
KINDS = ("cold", "first_return", "warm")
MEASURES = ("ready", "usable", "task")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    root = site_root()
    server = make_server("127.0.0.1", 0, root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    urls = {"app": base + "#/chat", "bare": base + "bare.html",
            "stock": base + "stock/bare.html"}
    results: dict[str, list[float]] = {
        f"{page}_{kind}_{what}": [] for page in PAGES for kind in KINDS for what in MEASURES}
    results["app_first_paint"] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(**config.launch_args())
        # One unmeasured round to settle the OS file cache and the server.
        measure(browser, urls["bare"], 1)
        measure(browser, urls["app"], 1)
        for i in range(args.runs):
            order = ["app", "bare"] if i % 2 == 0 else ["bare", "app"]
            for name in [*order, "stock"]:  # the diagnostic last: it is not a ratio's side
                r = measure(browser, urls[name], WARM_PER_RUN)
                loads = {"cold": [r["cold"]], "first_return": [r["first_return"]],
                         "warm": r["warm"]}
                for kind, values in loads.items():
                    for value in values:  # type: ignore[attr-defined]
                        for what, figure in zip(MEASURES, value, strict=True):
                            results[f"{name}_{kind}_{what}"].append(float(figure))
                if name == "app" and r["paint"] is not None:
                    results["app_first_paint"].append(float(r["paint"]))  # type: ignore[arg-type]
            print(f"run {i + 1}/{args.runs}: cold usable app "
                  f"{results['app_cold_usable'][-1]:.0f} ms, bare "
                  f"{results['bare_cold_usable'][-1]:.0f} ms", flush=True)
        browser.close()
    server.shutdown()

    med = {k: statistics.median(v) for k, v in results.items() if v}
    ratio = {f"{kind}_{what}": med[f"app_{kind}_{what}"] / med[f"bare_{kind}_{what}"]
             for kind in KINDS for what in ("ready", "usable")}
    longest_after_ready = max(results["app_cold_task"] + results["app_warm_task"])
    summary = {
        "ratios": ratio,
        "longest_task_after_ready_ms": longest_after_ready,
        "medians_ms": med,
        "runs": results,
        "budget": {"ratio": BUDGET_RATIO, "first_paint_ms": BUDGET_FIRST_PAINT_MS,
                   "task_after_ready_ms": BUDGET_TASK_MS},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"boot-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))

    ok = (all(ratio[f"{kind}_usable"] <= BUDGET_RATIO for kind in ("cold", "warm"))
          and longest_after_ready <= BUDGET_TASK_MS
          and med.get("app_first_paint", 0) <= BUDGET_FIRST_PAINT_MS)
    print(f"\nboot (medians of {args.runs} cold and {args.runs * WARM_PER_RUN} warm loads):")
    for kind, label in (("cold", "cold"), ("warm", "warm"),
                        ("first_return", "first return visit (not budgeted)")):
        for what, budget in (("usable", f" (budget {BUDGET_RATIO})"), ("ready", "")):
            if kind == "first_return":
                budget = ""
            print(f"  {label}, {what}: app {med[f'app_{kind}_{what}']:.0f} ms / bare "
                  f"{med[f'bare_{kind}_{what}']:.0f} ms = {ratio[f'{kind}_{what}']:.3f}{budget}")
    print(f"  longest task after ready (app, cold and warm loads): {longest_after_ready:.0f} ms "
          f"(budget {BUDGET_TASK_MS} ms); median per load: cold "
          f"{med['app_cold_task']:.0f} ms, warm {med['app_warm_task']:.0f} ms")
    print(f"  first paint of the shell: {med.get('app_first_paint', float('nan')):.0f} ms "
          f"(budget {BUDGET_FIRST_PAINT_MS} ms)")
    print(f"  diagnostic: the bare page on npm's standard library (sources only): cold "
          f"{med['stock_cold_usable']:.0f} ms, warm {med['stock_warm_usable']:.0f} ms; "
          f"the app is {med['app_cold_usable'] / med['stock_cold_usable']:.3f} / "
          f"{med['app_warm_usable'] / med['stock_warm_usable']:.3f} of it")
    print(f"  {'within budget' if ok else 'OVER BUDGET'}; written to {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
