"""Boot benchmark: LocalChat against a bare-Pyodide page using the same vendored Pyodide.

Measures, in headless Chromium, the time from navigation start to a usable page
(`<body data-ready="true">`): cold (fresh browser context: empty HTTP cache, no service
worker) and warm (the same context, navigated again). App and bare runs alternate so
that machine noise hits both alike; the budget is on medians and their ratio.
Also records the app shell's first contentful paint.

Writes bench/results/boot-<time>.json and prints a summary. Exit code 1 if over budget.
Usage: python bench/boot.py [--runs 5]
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

from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.devserver import make_server  # noqa: E402

_spec = importlib.util.spec_from_file_location("playwright_config", ROOT / "playwright.config.py")
assert _spec and _spec.loader
config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config)

BUDGET_RATIO = 1.15
BUDGET_FIRST_PAINT_MS = 300

BARE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>bare pyodide</title>
<script type="module">
const { loadPyodide } = await import("./vendor/pyodide/pyodide.mjs");
const pyodide = await loadPyodide();
pyodide.runPython("import sys");
document.body.dataset.ready = "true";
</script></head><body data-ready="false">bare</body></html>
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
    return root


def measure(browser: Browser, url: str, warm_runs: int) -> tuple[float, list[float], float | None]:
    """One cold load in a fresh context, then `warm_runs` warm loads in the same one."""
    context = browser.new_context(viewport=config.VIEWPORTS["desktop"])
    context.add_init_script(READY_PROBE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def load(again: bool = False) -> float:
        # A warm load reloads: goto() to the same URL with a #hash would not navigate.
        if again:
            page.reload()
        else:
            page.goto(url)
        page.wait_for_function("window.__readyAt !== undefined", timeout=120_000)
        return float(page.evaluate("window.__readyAt"))

    cold = load()
    paint = page.evaluate(
        "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null")
    if "index.html" in url or url.endswith("/") or "#/" in url:
        # Let the service worker finish precaching, as a returning user's browser has.
        page.wait_for_function(
            "navigator.serviceWorker.controller !== null || "
            "navigator.serviceWorker.ready.then(() => true)", timeout=120_000)
        page.evaluate("navigator.serviceWorker.ready")
    warm = [load(again=True) for _ in range(warm_runs)]
    context.close()
    if errors:
        raise RuntimeError(f"{url}: page errors {errors}")
    return cold, warm, paint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = site_root()
    server = make_server("127.0.0.1", 0, root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    app_url, bare_url = base + "#/chat", base + "bare.html"
    results: dict[str, list[float]] = {"app_cold": [], "app_warm": [], "bare_cold": [],
                                       "bare_warm": [], "app_first_paint": []}
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
                cold, warm, paint = measure(browser, url, 1)
                results[f"{name}_cold"].append(cold)
                results[f"{name}_warm"].extend(warm)
                if name == "app" and paint is not None:
                    results["app_first_paint"].append(float(paint))
            print(f"run {i + 1}/{args.runs}: app cold {results['app_cold'][-1]:.0f} ms, "
                  f"bare cold {results['bare_cold'][-1]:.0f} ms", flush=True)
        browser.close()
    server.shutdown()

    med = {k: statistics.median(v) for k, v in results.items() if v}
    summary = {
        "cold_ratio": med["app_cold"] / med["bare_cold"],
        "warm_ratio": med["app_warm"] / med["bare_warm"],
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
    print(f"\nboot (medians of {args.runs}):")
    print(f"  cold: app {med['app_cold']:.0f} ms / bare {med['bare_cold']:.0f} ms "
          f"= {summary['cold_ratio']:.3f} (budget {BUDGET_RATIO})")
    print(f"  warm: app {med['app_warm']:.0f} ms / bare {med['bare_warm']:.0f} ms "
          f"= {summary['warm_ratio']:.3f} (budget {BUDGET_RATIO})")
    print(f"  first paint of the shell: {med.get('app_first_paint', float('nan')):.0f} ms "
          f"(budget {BUDGET_FIRST_PAINT_MS} ms)")
    print(f"  {'within budget' if ok else 'OVER BUDGET'}; written to {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
