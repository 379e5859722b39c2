"""Model-management benchmark: downloads must not make the page janky, the time
estimate must be right, and switching to a loaded model must be instant.

Measured in headless Chromium with the simulated engine (real HTTP downloads into
Cache Storage, WebLLM's progress texts):

1. Responsiveness during a download with >= 20 progress reports per second: the
   longest main-thread task (Long Tasks API) and the delay from a key press in the
   composer to the next frame (median and worst), while a model downloads.
   Budget: no task over 50 ms.
2. Time estimate at steady speed: the Download Manager's raw estimate (`data-eta-s` on
   the progress bar, the number behind "about N s left") sampled during a download,
   compared with the time that actually remained. Budget: within 20 % once 10 % is done
   (samples with at least 3 s left; below that, the "a few seconds" wording applies).
3. Settling after a speed change: the core's estimator fed WebLLM's exact progress texts
   for a simulated-scale download (1.6 MB shards, as with sim_scale=0.05) at 40 MB/s that
   drops to 8 MB/s at 40 % (the simulated engine's speed is fixed per download, so this
   part is computed, on the same code the page runs, sampled every 0.25 s as the page
   shows it). Budget: within 20 % of the truth no later than 5 s after the change.
   Also reported for real 32 MB shards at 10 → 2 MB/s, where one report arrives every
   16 s after the change: no estimator can know sooner, so this is information only.
4. Switching a conversation to the model that is already loaded: time from the click on
   the option to the selector showing it. Budget: 100 ms.

Writes bench/results/models-<time>.json. Usage: python bench/models.py [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "pysrc"))
from tools.devserver import make_server  # noqa: E402

from localchat.core.eta import EtaEstimator  # noqa: E402
from localchat.core.progress import parse_progress  # noqa: E402

_spec = importlib.util.spec_from_file_location("playwright_config", ROOT / "playwright.config.py")
assert _spec and _spec.loader
config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config)

MB = 1024 * 1024
BUDGET_TASK_MS = 50
BUDGET_ETA_ERROR = 0.20
BUDGET_SETTLE_S = 5.0
BUDGET_SWITCH_MS = 100

PROBES = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push(e.duration);
}).observe({ type: "longtask", buffered: true });
window.__keyDelays = [];
document.addEventListener("keydown", (event) => {
  const t0 = event.timeStamp;
  requestAnimationFrame(() => window.__keyDelays.push(performance.now() - t0));
}, true);
"""


def open_app(browser: Browser, base: str, query: str) -> Page:
    context = browser.new_context(viewport=config.VIEWPORTS["desktop"])
    context.add_init_script(PROBES)
    page = context.new_page()
    page.goto(f"{base}?{query}&sw=off#/chat")
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    page.wait_for_selector("body[data-models=ready]", timeout=120_000)
    return page


def start_download(page: Page, key: str) -> None:
    page.get_by_role("button", name="Downloads").click()
    page.locator(f'li[data-key="{key}"] [data-action="download"]').click()
    page.wait_for_selector(f'li[data-key="{key}"] [role=progressbar]', timeout=60_000)


def responsiveness(browser: Browser, base: str) -> dict[str, float]:
    # Genius at scale 0.05: 136 shards of 1.6 MB; at 60 MB/s about 35 reports a second.
    page = open_app(browser, base, "engine=sim&sim_scale=0.05&sim_mbps=60&sim_compile_s=1")
    page.evaluate("window.__longTasks.length = 0")
    start_download(page, "genius")
    reports = page.evaluate("""() => new Promise((resolve) => {
        let n = 0;
        const bar = document.querySelector('li[data-key="genius"] [role=progressbar]');
        const obs = new MutationObserver(() => { n += 1; });
        obs.observe(bar, { attributes: true, attributeFilter: ["aria-valuenow"] });
        setTimeout(() => { obs.disconnect(); resolve(n / 2); }, 2000);
    })""")
    box = page.get_by_role("textbox", name="Message")
    box.click()
    page.evaluate("window.__keyDelays.length = 0")
    for ch in "typing while a model downloads stays smooth":
        page.keyboard.type(ch)
        page.wait_for_timeout(20)
    page.wait_for_function(
        "!document.querySelector('li[data-key=genius].state-downloading')", timeout=120_000)
    tasks = page.evaluate("window.__longTasks")
    delays = page.evaluate("window.__keyDelays")
    page.context.close()
    return {"progress_updates_per_s": float(reports),
            "longest_task_ms": max(tasks, default=0.0),
            "long_tasks": float(len(tasks)),
            "key_to_frame_median_ms": statistics.median(delays) if delays else float("nan"),
            "key_to_frame_max_ms": max(delays, default=float("nan"))}


def eta_accuracy(browser: Browser, base: str) -> dict[str, float]:
    # Genius at scale 0.1: 435 MB at 25 MB/s, about 17 s of steady download.
    page = open_app(browser, base, "engine=sim&sim_scale=0.1&sim_mbps=25&sim_compile_s=1")
    start_download(page, "genius")
    samples = page.evaluate("""() => new Promise((resolve) => {
        const out = [];
        const timer = setInterval(() => {
            const row = document.querySelector('li[data-key="genius"]');
            const bar = row && row.querySelector('[role=progressbar]');
            if (!row || !row.classList.contains("state-downloading") || !bar) {
                if (out.length) { clearInterval(timer); resolve({ out, end: performance.now() }); }
                return;
            }
            out.push([performance.now(), Number(bar.getAttribute("aria-valuenow")),
                      bar.getAttribute("data-eta-s")]);
        }, 250);
    })""")
    page.context.close()
    end = samples["end"]
    errors = []
    for t, percent, eta in samples["out"]:
        if percent < 10 or not eta:
            continue
        truth = (end - t) / 1000
        if truth < 3:
            continue
        errors.append(abs(float(eta) - truth) / truth)
    return {"samples": float(len(errors)),
            "median_error": statistics.median(errors) if errors else float("nan"),
            "worst_error": max(errors, default=float("nan"))}


def settle_after_speed_change(shard_mb: float, fast: float, slow: float) -> float:
    """Seconds after a speed change (at 40 %) until the estimate stays within 20 %.

    Four lanes share the speed and finish shards at staggered times: one report per
    shard. The estimate is sampled every 0.25 s between reports, as the page shows it.
    """
    shard = shard_mb * MB
    shards = 400
    total = shard * shards
    change_at_bytes = total * 0.4
    est = EtaEstimator()
    t, done, i, next_sample = 0.0, 0.0, 0, 0.25
    changed_at: float | None = None
    samples: list[tuple[float, float, float | None]] = []  # (time, truth, estimate)
    while done < total:
        speed = (fast if done < change_at_bytes else slow) * MB
        if speed == slow * MB and changed_at is None:
            changed_at = t
        step = shard / speed
        # Sample what the page shows (every 0.25 s) until the next report.
        while next_sample < t + step:
            truth = (total - done) / speed - (next_sample - t)
            samples.append((next_sample, truth, est.seconds_left(total, next_sample)))
            next_sample += 0.25
        t += step
        done = min(total, done + shard)
        i += 1
        mb = -(-int(done) // MB)
        text = (f"Fetching param cache[{i}/{shards}]: {mb}MB fetched. "
                f"{int(done * 100 // total)}% completed, {int(t)} secs elapsed. It can take a "
                "while when we first visit this page to populate the cache. Later "
                "refreshes will become faster.")
        report = parse_progress(text, done / total)
        est.add(t, report.fraction * total)
    assert changed_at is not None
    settled: float | None = None
    for now, truth, guess in samples:
        if now < changed_at or truth <= 3:
            continue
        good = guess is not None and abs(guess - truth) / truth <= BUDGET_ETA_ERROR
        if good and settled is None:
            settled = now - changed_at
        elif not good:
            settled = None  # it must stay within bounds from then on
    return settled if settled is not None else float("inf")


def switch_time(browser: Browser, base: str) -> dict[str, float]:
    # Genius fails at once (so no download runs in the background of the measurement).
    page = open_app(browser, base, "engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2"
                                   "&sim_tps=0&sim_fail_always=genius@0&retry_backoff_s=0.01")
    box = page.get_by_role("textbox", name="Message")
    box.fill("/echo warm up")
    box.press("Enter")
    page.wait_for_selector("article.assistant:not(.streaming) .meta", timeout=60_000)
    picker = page.locator("#model-button")
    times = []
    for _ in range(5):
        # Ask for Genius (its download fails: the selector shows it pending)...
        picker.click()
        page.locator("#model-option-genius").click()
        page.wait_for_selector('li[data-key="genius"].state-failed', timeout=30_000)
        # ...then back to Smart, which is loaded: the switch must show at once.
        picker.click()
        elapsed = page.evaluate("""() => new Promise((resolve) => {
            const button = document.querySelector('#model-button');
            const option = document.querySelector('#model-option-smart');
            const obs = new MutationObserver(() => {
                if (button.textContent === "Model: Smart (simulated)") {
                    obs.disconnect(); resolve(performance.now() - t0);
                }
            });
            obs.observe(button, { childList: true, characterData: true, subtree: true });
            const t0 = performance.now();
            option.click();
        })""")
        times.append(float(elapsed))
    page.context.close()
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = make_server("127.0.0.1", 0, ROOT / "web")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    runs: dict[str, list[dict[str, float]]] = {"responsiveness": [], "eta": [], "switch": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(**config.launch_args())
        for i in range(args.runs):
            runs["responsiveness"].append(responsiveness(browser, base))
            runs["eta"].append(eta_accuracy(browser, base))
            runs["switch"].append(switch_time(browser, base))
            print(f"run {i + 1}/{args.runs} done", flush=True)
        browser.close()
    server.shutdown()
    settle = settle_after_speed_change(1.6, 40, 8)
    settle_real = settle_after_speed_change(32, 10, 2)

    def med(part: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[part])

    summary = {
        "download_longest_task_ms": med("responsiveness", "longest_task_ms"),
        "download_progress_updates_per_s": med("responsiveness", "progress_updates_per_s"),
        "typing_key_to_frame_median_ms": med("responsiveness", "key_to_frame_median_ms"),
        "typing_key_to_frame_max_ms": med("responsiveness", "key_to_frame_max_ms"),
        "eta_median_error": med("eta", "median_error"),
        "eta_worst_error": med("eta", "worst_error"),
        "eta_settle_after_speed_change_s": settle,
        "eta_settle_real_shards_s": settle_real,
        "switch_to_loaded_model_median_ms": med("switch", "median_ms"),
        "switch_to_loaded_model_max_ms": med("switch", "max_ms"),
        "runs": runs,
        "budget": {"task_ms": BUDGET_TASK_MS, "eta_error": BUDGET_ETA_ERROR,
                   "settle_s": BUDGET_SETTLE_S, "switch_ms": BUDGET_SWITCH_MS},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"models-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))
    checks = [
        ("longest task during a download", summary["download_longest_task_ms"],
         BUDGET_TASK_MS, "ms"),
        ("time estimate, worst error after 10 %", summary["eta_worst_error"] * 100,
         BUDGET_ETA_ERROR * 100, "%"),
        ("estimate settles after a speed change", summary["eta_settle_after_speed_change_s"],
         BUDGET_SETTLE_S, "s"),
        ("switch to the loaded model", summary["switch_to_loaded_model_max_ms"],
         BUDGET_SWITCH_MS, "ms"),
    ]
    print(f"\nmodels (medians of {args.runs} runs):")
    print(f"  progress updates during the download: "
          f"{summary['download_progress_updates_per_s']:.0f}/s; typing: key to frame "
          f"{summary['typing_key_to_frame_median_ms']:.0f} ms median, "
          f"{summary['typing_key_to_frame_max_ms']:.0f} ms worst")
    ok = True
    for name, value, budget, unit in checks:
        good = value <= budget
        ok = ok and good
        print(f"  {name}: {value:.1f} {unit} (budget {budget:g} {unit}) "
              f"{'ok' if good else 'OVER BUDGET'}")
    print(f"  (real 32 MB shards, 10 → 2 MB/s: settles {settle_real:.1f} s after the change; "
          "one report arrives every 16 s then)")
    print(f"  written to {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
