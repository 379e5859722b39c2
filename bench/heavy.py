"""Heavy-message benchmark: opening a conversation whose reply is very long or very large.

Two conversations, each one user message and one assistant reply, are written into
IndexedDB with the raw API (as a saved conversation would be), in a fresh browser context
per run (headless Chromium with playwright.config.py's flags, `?engine=sim&sw=off`):

- `line`: the reply is one 200 KB line of prose with inline Markdown (bold, code, links,
  emphasis), no line break anywhere.
- `table`: the reply is a Markdown table of 10,000 rows (four columns, some inline
  Markdown in the cells).
- `sliced` (the path in between, no budget of the issue's own but held to the same): about
  60 KB of paragraphs with inline Markdown, a code block and a 250-row table: small
  enough to be formatted, too large for one task, so it is formatted in slices.

The page is reloaded and left to settle on `#/chat` (Markdown installed, the model cache
checked); then location.hash is set to `#/chat/<id>` and, from that moment:
- first text: the reply's bubble has text in the DOM, then the next frame is painted
  (requestAnimationFrame, then a message-channel task). Budget: <= 500 ms.
- settled: the reply is in its final form (no `[data-render="pending"]` inside it: a
  reply shown as plain text first carries that mark until its rendered HTML replaces it
  or it stays plain with a note), and how it ended: `table` (a rendered table), `note`
  (plain text with the "too long to format" note) or `html` (rendered, no table).
- longest task: the longest main-thread task (PerformanceObserver 'longtask', installed
  before the page loads) overlapping [hash change, settled + 300 ms]. Budget: <= 100 ms.

Medians of `--runs` runs (default 5); the worst run's longest task is printed beside.
Writes bench/results/heavy-<time>.json. Exit code 1 if a median is over budget.
Usage: python bench/heavy.py [--runs 5] [--only line,table,sliced]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.devserver import make_server  # noqa: E402

# The chat bench's page set-up: the same flags, query, model, long-task probe and raw
# IndexedDB seeding (the records an earlier session would have left).
sys.path.insert(0, str(ROOT / "bench"))
from chat import LONGTASK_PROBE, MODEL_ID, QUERY, SEED_JS, TIMEOUT_MS, config  # noqa: E402

BUDGET_LONGEST_TASK_MS = 100.0
BUDGET_FIRST_TEXT_MS = 500.0

# From the hash change: {first, painted, settled, t0, ending}, times in ms from t0.
OPEN_JS = """([id, replyId]) => new Promise((resolve) => {
  const thread = document.getElementById("thread");
  const out = {first: null, painted: null, settled: null, ending: null};
  const t0 = performance.now();
  const reply = () => Array.from(thread.querySelectorAll("article[data-message-id]"))
    .find((n) => n.dataset.messageId === replyId);
  const finish = () => {
    if (out.painted !== null && out.settled !== null) {
      observer.disconnect();
      resolve({...out, t0});
    }
  };
  const check = () => {
    const node = reply();
    if (!node) return;
    const bubble = node.querySelector(".bubble");
    const now = performance.now();
    if (out.first === null && bubble && bubble.textContent.length > 0) {
      out.first = now - t0;
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => { out.painted = performance.now() - t0; finish(); };
        channel.port2.postMessage(0);
      });
    }
    if (out.settled === null && bubble && !node.querySelector('[data-render="pending"]')) {
      out.settled = now - t0;
      out.ending = node.querySelector("table") ? "table"
        : node.querySelector(".record-note") ? "note" : "html";
      finish();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(thread, {subtree: true, childList: true, attributes: true,
                            characterData: true});
  location.hash = `#/chat/${id}`;
})"""

VOCAB = ("the", "model", "token", "browser", "reply", "render", "thread", "value", "cache",
         "of", "and", "to", "in", "is", "for", "with", "layout", "python", "worker")


def line_reply(size: int = 200_000) -> str:
    """One line of prose with inline Markdown, exactly `size` characters, no newline."""
    rng = random.Random(200)
    words: list[str] = []
    length = 0
    while length < size:
        pick = rng.random()
        word = rng.choice(VOCAB)
        if pick < 0.06:
            word = f"**{word}**"
        elif pick < 0.10:
            word = f"`{word}()`"
        elif pick < 0.13:
            word = f"*{word}*"
        elif pick < 0.15:
            word = f"[{word}](https://example.org/{word})"
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size].rstrip()


def table_reply(rows: int = 10_000) -> str:
    lines = ["| # | Name | Value | Note |", "|---:|---|---:|---|"]
    rng = random.Random(rows)
    for i in range(rows):
        lines.append(f"| {i + 1} | **{rng.choice(VOCAB)}** | {rng.randint(0, 99_999)} | "
                     f"`{rng.choice(VOCAB)}` {rng.choice(VOCAB)} |")
    return "\n".join(lines)


def sliced_reply() -> str:
    rng = random.Random(60)
    paragraphs = [" ".join(rng.choice(VOCAB) if rng.random() > 0.1 else
                           f"**{rng.choice(VOCAB)}**" for _ in range(80)) + "."
                  for _ in range(110)]
    return ("## A long answer\n\n" + "\n\n".join(paragraphs[:55])
            + "\n\n```python\nprint('sliced')\n```\n\n" + table_reply(250) + "\n\n"
            + "\n\n".join(paragraphs[55:]))


def conversation(name: str, reply: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cid = f"bench-heavy-{name}"
    start = 1_700_000_000_000
    messages = [
        {"id": f"{cid}-q", "conversationId": cid, "role": "user",
         "content": f"Please write the {name}.", "createdAt": start, "status": "done"},
        {"id": f"{cid}-a", "conversationId": cid, "role": "assistant", "content": reply,
         "createdAt": start + 1000, "status": "done", "model": MODEL_ID},
    ]
    return ({"id": cid, "title": f"Heavy {name}", "model": "smart", "createdAt": start,
             "updatedAt": start + 1000}, messages)


def longest_task(page: Page, start: float, end: float) -> float:
    page.wait_for_timeout(300)  # long-task entries are delivered asynchronously
    entries = page.evaluate("() => window.__longtasks")
    if entries is None:
        raise RuntimeError("this Chromium does not report long tasks")
    hits = [e["duration"] for e in entries
            if e["start"] < end and e["start"] + e["duration"] > start]
    return max(hits) if hits else 0.0


def open_app(page: Page, url: str | None = None) -> None:
    if url is None:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector('body[data-ready="true"]', state="attached")
    page.wait_for_selector('body[data-markdown="ready"][data-models="ready"]',
                           state="attached")
    page.wait_for_timeout(300)


def measure(browser: Browser, site: str, name: str, reply: str, runs: int,
            errors: list[str]) -> dict[str, list[Any]]:
    record, messages = conversation(name, reply)
    out: dict[str, list[Any]] = {"first_text_ms": [], "painted_ms": [], "settled_ms": [],
                                 "longest_task_ms": [], "ending": []}
    for i in range(runs):
        context = browser.new_context(viewport=config.VIEWPORTS["desktop"])
        context.add_init_script(LONGTASK_PROBE)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("console", lambda m: errors.append(f"console error: {m.text}")
                if m.type == "error" else None)
        try:
            open_app(page, f"{site}?{QUERY}#/chat")
            page.evaluate(SEED_JS, [[record], messages])
            open_app(page)
            r = page.evaluate(OPEN_JS, [record["id"], messages[1]["id"]])
            longest = longest_task(page, r["t0"], r["t0"] + r["settled"] + 300)
        finally:
            context.close()
        out["first_text_ms"].append(r["first"])
        out["painted_ms"].append(r["painted"])
        out["settled_ms"].append(r["settled"])
        out["longest_task_ms"].append(longest)
        out["ending"].append(r["ending"])
        print(f"  {name} {i + 1}/{runs}: first text painted {r['painted']:.0f} ms, settled "
              f"{r['settled']:.0f} ms ({r['ending']}), longest task {longest:.0f} ms",
              flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="line,table,sliced",
                        help="comma-separated: line, table, sliced")
    args = parser.parse_args()
    if not (ROOT / "web" / "vendor" / "build.js").is_file():
        print("web/vendor is not built: run `make build` first", file=sys.stderr)
        return 2
    cases = {"line": ("200 KB one-line reply", line_reply),
             "table": ("10,000-row table", table_reply),
             "sliced": (f"{len(sliced_reply()) // 1000} KB reply formatted in slices",
                        sliced_reply)}
    chosen = [c for c in args.only.split(",") if c in cases]

    server = make_server("127.0.0.1", 0, ROOT / "web")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_port}/"
    errors: list[str] = []
    results: dict[str, dict[str, list[Any]]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(**config.launch_args())
        context = browser.new_context()  # one unmeasured load to settle the OS file cache
        open_app(context.new_page(), f"{site}?{QUERY}#/chat")
        context.close()
        for key in chosen:
            label, make = cases[key]
            print(f"opening a conversation with a {label}:", flush=True)
            results[key] = measure(browser, site, key, make(), args.runs, errors)
        browser.close()
    server.shutdown()

    budgets: dict[str, dict[str, Any]] = {}
    print(f"\nheavy messages (medians of {args.runs} runs):")
    print(f"  {'measurement':<58}{'value':>9}      {'budget':<12}result")

    def row(label: str, value: float, key: str | None = None,
            limit: float | None = None) -> None:
        verdict, text = "", ""
        if key is not None and limit is not None:
            passed = value <= limit
            budgets[key] = {"value": value, "limit": limit, "pass": passed}
            verdict, text = ("ok" if passed else "OVER BUDGET"), f"<= {limit:g} ms"
        print(f"  {label:<58}{value:>9,.0f} ms   {text:<12}{verdict}")

    for key, r in results.items():
        label = cases[key][0]
        row(f"{label}: first text painted", statistics.median(r["painted_ms"]),
            f"{key}_first_text", BUDGET_FIRST_TEXT_MS)
        row(f"{label}: longest task", statistics.median(r["longest_task_ms"]),
            f"{key}_longest_task", BUDGET_LONGEST_TASK_MS)
        row(f"{label}: longest task (worst run)", max(r["longest_task_ms"]))
        row(f"{label}: settled (final form)", statistics.median(r["settled_ms"]))
        endings = sorted(set(r["ending"]))
        print(f"  {label}: ends as {', '.join(endings)}")

    summary = {
        "medians": {k: {m: statistics.median(v) for m, v in r.items() if m != "ending"}
                    for k, r in results.items()},
        "runs": results,
        "budgets": budgets,
        "page_errors": errors,
        "query": QUERY,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"heavy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))
    missed = [k for k, b in budgets.items() if not b["pass"]]
    if errors:
        print(f"\n  the pages reported {len(errors)} error(s), first: {errors[0]}")
    print(f"\n  {'OVER BUDGET: ' + ', '.join(missed) if missed else 'within budget'}; "
          f"written to {out.relative_to(ROOT)}")
    return 1 if missed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
