"""Boot benchmark: LocalChat against a bare-Pyodide page using the same vendored Pyodide.

Measures, in headless Chromium, the time from navigation start to a usable page
(`<body data-ready="true">`): cold (fresh browser context: empty HTTP cache, no service
worker) and warm (the same context, navigated again: a returning visit). Each context
makes a cold load, one first return visit (reported, not budgeted: the first visit the
app's service worker serves compiles WebAssembly from its cache once per deployment),
then 2 warm loads. The app is left to finish its start-up work (Markdown installed, the
model cache checked) before each reload, as a visit that ended normally would. App and
bare runs alternate so that machine noise hits both alike; the budget is on medians
and their ratio. Also records the app shell's first contentful paint.

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

# Its script is a file, not inline: the dev server's Content-Security-Policy (the app's)
# governs this page too, and refuses inline scripts.
BARE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>bare pyodide</title>
<script type="module" src="bare.js"></script></head><body data-ready="false">bare</body></html>
"""
BARE_SCRIPT = """const { loadPyodide } = await import("./vendor/pyodide/pyodide.mjs");
const pyodide = await loadPyodide();
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


def site_root() -> Path:
    """A temporary site root: web/ (linked) plus the bare page."""
    root = Path(tempfile.mkdtemp(prefix="localchat-bench-"))
    for entry in (ROOT / "web").iterdir():
        os.symlink(entry, root / entry.name)
    (root / "bare.html").write_text(BARE_PAGE)
    (root / "bare.js").write_text(BARE_SCRIPT)
    return root


# The app's start-up work after it is usable (Markdown installed, the model cache checked)
# is done: a warm load is a returning visit, not a reload that interrupts the previous
# visit's start-up (the bare page has none, so that would weigh on the app alone).
SETTLED = ("() => document.body.dataset.markdown !== undefined && "
           "document.body.dataset.models !== undefined")


def settle(page: Page) -> None:
    try:
        page.wait_for_function(SETTLED, timeout=30_000)
    except PlaywrightTimeout:  # e.g. no usable WebGPU: no model service to wait for
        print("  (the app's start-up work did not report done; reloading anyway)", flush=True)


def measure(browser: Browser, url: str, warm_runs: int) -> dict[str, object]:
    """In a fresh context: a cold load, the first return visit, then `warm_runs` warm loads.

    Returns {cold, first_return, warm: [...], paint}. The first return visit is the first
    one the app's service worker serves: WebAssembly that came from its cache is compiled
    then, once per deployment, and cached with it; later visits (the warm figure, the
    steady state of a returning user) reuse that code, as the bare page's visits reuse
    the HTTP cache's. Both pages get the same sequence.
    """
    context = browser.new_context(viewport=config.VIEWPORTS["desktop"])
    context.add_init_script(READY_PROBE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    is_app = "index.html" in url or url.endswith("/") or "#/" in url

    def load(again: bool = False) -> float:
        # A warm load reloads: goto() to the same URL with a #hash would not navigate.
        if again:
            page.reload()
        else:
            page.goto(url)
        page.wait_for_function("() => window.__readyAt !== undefined", timeout=120_000)
        ready = float(page.evaluate("window.__readyAt"))
        if is_app:
            settle(page)
        return ready

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    root = site_root()
    server = make_server("127.0.0.1", 0, root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    app_url, bare_url = base + "#/chat", base + "bare.html"
    results: dict[str, list[float]] = {
        f"{page}_{kind}": [] for page in ("app", "bare")
        for kind in ("cold", "first_return", "warm")}
    results["app_first_paint"] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(**config.launch_args())
        # One unmeasured round to settle the OS file cache and the server.
        measure(browser, bare_url, 1)
        measure(browser, app_url, 1)
        for i in range(args.runs):
            order = [("app", app_url), ("bare", bare_url)]
            if i % 2:
                order.reverse()
            for name, url in order:
                r = measure(browser, url, WARM_PER_RUN)
                results[f"{name}_cold"].append(float(r["cold"]))  # type: ignore[arg-type]
                results[f"{name}_first_return"].append(float(r["first_return"]))  # type: ignore[arg-type]
                results[f"{name}_warm"].extend(r["warm"])  # type: ignore[arg-type]
                if name == "app" and r["paint"] is not None:
                    results["app_first_paint"].append(float(r["paint"]))  # type: ignore[arg-type]
            print(f"run {i + 1}/{args.runs}: app cold {results['app_cold'][-1]:.0f} ms, "
                  f"bare cold {results['bare_cold'][-1]:.0f} ms", flush=True)
        browser.close()
    server.shutdown()

    med = {k: statistics.median(v) for k, v in results.items() if v}
    summary = {
        "cold_ratio": med["app_cold"] / med["bare_cold"],
        "warm_ratio": med["app_warm"] / med["bare_warm"],
        "first_return_ratio": med["app_first_return"] / med["bare_first_return"],
        "medians_ms": med,
        "runs": results,
        "budget": {"ratio": BUDGET_RATIO, "first_paint_ms": BUDGET_FIRST_PAINT_MS},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"boot-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))

    ok = (summary["cold_ratio"] <= BUDGET_RATIO and summary["warm_ratio"] <= BUDGET_RATIO
          and med.get("app_first_paint", 0) <= BUDGET_FIRST_PAINT_MS)
    print(f"\nboot (medians of {args.runs} cold and {args.runs * WARM_PER_RUN} warm loads):")
    print(f"  cold: app {med['app_cold']:.0f} ms / bare {med['bare_cold']:.0f} ms "
          f"= {summary['cold_ratio']:.3f} (budget {BUDGET_RATIO})")
    print(f"  warm: app {med['app_warm']:.0f} ms / bare {med['bare_warm']:.0f} ms "
          f"= {summary['warm_ratio']:.3f} (budget {BUDGET_RATIO})")
    print(f"  first return visit (not budgeted; the app compiles its cached WebAssembly once): "
          f"app {med['app_first_return']:.0f} ms / bare {med['bare_first_return']:.0f} ms "
          f"= {summary['first_return_ratio']:.3f}")
    print(f"  first paint of the shell: {med.get('app_first_paint', float('nan')):.0f} ms "
          f"(budget {BUDGET_FIRST_PAINT_MS} ms)")
    print(f"  {'within budget' if ok else 'OVER BUDGET'}; written to {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
