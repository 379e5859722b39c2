"""Model management as a user meets it: the model belongs to the conversation, the
selector sits in the composer, and the Download Manager runs one download at a time
with real states, cancel with confirmation, inline failures with Retry that resumes,
and the switch to a finished model only when it is still wanted."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .pages.chat import ChatPage, conversation_record, message_record
from .pages.models import MODEL_IDS, SIM, SLOW, Models, count_workers, record_shards


def test_first_visit_offers_one_download_of_smart_then_chats(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    expect(models.selector).to_have_text("Model: Smart (simulated) (not downloaded)")
    offer = page.get_by_role(
        "button", name=re.compile(r"^Download Smart \(simulated\) \(\d+ MB\)$"))
    expect(offer).to_be_visible()
    # No model badge or selector in the header, no prompt: just the one action.
    expect(page.get_by_role("banner").get_by_role(
        "button", name=re.compile("Smart|Model"))).to_have_count(0)
    offer.click()
    manager = models.manager
    expect(manager).to_be_visible()
    models.wait_state("Smart", "Ready")
    expect(models.selector).to_have_text("Model: Smart (simulated)")
    expect(models.selector).to_have_class(re.compile("switched"))
    expect(chat.toasts).to_contain_text("Now using Smart.")
    expect(offer).to_be_hidden()
    # The toast is not in the way of the composer's buttons.
    box = chat.send_button.bounding_box()
    assert box is not None
    hit = page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('button')?.id",
                        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert hit == "send-button", hit
    chat.send("/echo ready to chat")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("ready to chat")
    # The confirmation and the toast go away by themselves (after 2.5 s and 6 s).
    expect(models.selector).not_to_have_class(re.compile("switched"), timeout=10_000)
    expect(chat.toasts.get_by_text("Now using Smart.")).to_have_count(0, timeout=10_000)


def test_states_progress_and_the_queue_run_one_at_a_time(page: Page, site_url: str) -> None:
    count_workers(page)
    chat = ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Quick").get_by_role("button", name="Download").click()
    models.row("Genius").get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Downloading")
    expect(models.state("Genius")).to_have_text("Queued")
    bar = models.row("Quick").get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?$"))
    detail = models.row("Quick").locator(".row-detail")
    expect(detail).to_contain_text(re.compile(r"\d+% · [\d.]+ (KB|MB) of [\d.]+ MB · "))
    expect(detail).to_contain_text(re.compile(r"(left|estimating…)"))
    expect(detail).to_contain_text(re.compile(r"(about \d+ s left|a few seconds left)"))
    models.wait_state("Quick", "Ready")
    # Quick finished while the chat asks for Smart: it is just Ready, nothing switched,
    # and it never went onto the GPU (no engine worker was ever started).
    expect(models.selector).to_have_text(re.compile(r"^Model: Smart"))
    models.wait_state("Genius", "Downloading")
    expect(models.state("Quick")).to_have_text("Ready")
    assert page.evaluate("window.__workers.made") == 0
    assert chat.stored("conversations") == []


def test_choosing_a_model_is_per_conversation_and_switches_when_ready(
        page: Page, site_url: str) -> None:
    count_workers(page)
    chat = ChatPage(page, site_url).open(query=SIM.replace("sim_mbps=200", "sim_mbps=2"))
    models = Models(page)
    chat.seed([conversation_record("a" * 32, "Other chat", 1_000, model="smart")], [])
    chat.reload()
    chat.send("/echo first in smart")
    expect(chat.wait_for_reply_done().locator(".meta")).to_contain_text("Smart (simulated)")
    conversation_id = page.url.rsplit("/", 1)[1]
    before = {c["id"]: c for c in chat.stored("conversations")}

    models.choose("Quick")
    expect(models.manager).to_be_visible()
    expect(models.selector).to_have_text(re.compile(r"^Model: Quick \(simulated\) \("))
    chat.wait_stored_field("conversations", conversation_id, "model", "quick")
    stored = {c["id"]: c for c in chat.stored("conversations")}
    assert stored[conversation_id]["updatedAt"] == before[conversation_id]["updatedAt"]
    assert stored["a" * 32]["model"] == "smart"
    expect(chat.sidebar_links).to_have_text(["/echo first in smart", "Other chat"])

    # Still downloading: the loaded model (Smart) keeps answering.
    chat.send("/echo while quick downloads")
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).to_have_text("while quick downloads")
    expect(reply.locator(".meta")).to_contain_text("Smart (simulated)")

    models.wait_state("Quick", "Ready")
    expect(models.selector).to_have_text("Model: Quick (simulated)")
    expect(chat.toasts).to_contain_text("Now using Quick.")
    chat.send("/echo now quick")
    expect(chat.wait_for_reply_done().locator(".meta")).to_contain_text("Quick (simulated)")
    messages = [m for m in chat.stored("messages") if m["role"] == "assistant"]
    assert sorted(m["model"] for m in messages) == sorted(
        [MODEL_IDS["smart"], MODEL_IDS["smart"], MODEL_IDS["quick"]])

    # One model in GPU memory at any time: Smart's engine was gone before Quick's started.
    assert page.evaluate("window.__workers.most") == 1

    # The other conversation still uses Smart: opening it starts Smart again (stored).
    chat.sidebar_links.filter(has_text="Other chat").click()
    expect(models.selector).to_have_text(re.compile(r"^Model: Smart"))
    expect(models.selector).to_have_text("Model: Smart (simulated)")
    assert page.evaluate("window.__workers.most") == 1


def test_auto_switch_only_when_still_wanted(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.choose("Quick")
    models.wait_state("Quick", "Downloading")
    models.choose("Smart")  # changed mind: Smart is ... not downloaded either
    models.wait_state("Quick", "Ready", timeout=40_000)
    # Quick is Ready but the chat now asks for Smart: no forced switch.
    expect(models.selector).to_have_text(re.compile(r"^Model: Smart \(simulated\) \("))
    expect(chat.toasts).not_to_contain_text("Now using Quick.")


def test_cancel_asks_first_and_download_again_resumes(page: Page, site_url: str) -> None:
    shards = record_shards(page)
    ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    models.wait_state("Smart", "Downloading")
    page.wait_for_function("() => document.querySelector('[data-key=smart] [role=progressbar]')"
                           "?.getAttribute('aria-valuenow') >= 30", polling=100, timeout=30_000)
    cancel = models.row("Smart").get_by_role("button", name="Cancel")
    cancel.click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_have_accessible_name("Cancel the Smart download?")
    # Both buttons say what they do.
    dialog.get_by_role("button", name="Keep downloading").click()  # dismiss: keep going
    expect(dialog).to_be_hidden()
    expect(models.state("Smart")).to_have_text("Downloading")
    models.row("Smart").get_by_role("button", name="Cancel").click()
    dialog.get_by_role("button", name="Cancel download").click()
    models.wait_state("Smart", "Canceled")
    expect(models.row("Smart")).to_contain_text(
        re.compile(r"Canceled\. [\d.]+ (KB|MB) of [\d.]+ MB kept; Resume continues from there\."))
    fetched_before = set(shards)
    assert fetched_before

    page.evaluate("""() => { const u = new URL(location.href);
        u.searchParams.set("sim_mbps", "200"); history.replaceState(null, "", u); }""")
    models.row("Smart").get_by_role("button", name="Resume").click()
    models.wait_state("Smart", "Ready")
    # Only shards not stored before are fetched again (a shard cut mid-way may repeat).
    again = [u for u in shards[len(fetched_before):] if u in fetched_before]
    assert len(again) <= 4


def test_failure_is_inline_with_retry_and_automatic_retries_are_shown(
        page: Page, site_url: str) -> None:
    # Waits of 0.5, 1 and 2 s before the retries, so that "Retrying" can be seen.
    ChatPage(page, site_url).open(query=SIM.replace("sim_mbps=200", "sim_mbps=2")
                                  .replace("retry_backoff_s=0.05", "retry_backoff_s=0.5")
                                  + "&sim_fail_always=genius@30")
    models = Models(page)
    models.open_manager()
    models.row("Genius").get_by_role("button", name="Download").click()
    # "Retrying in 1 s (1/3)" while it waits, "Retrying (1/3)…" once it has started.
    expect(models.row("Genius")).to_contain_text(
        re.compile(r"Retrying (in \d+ s \([123]/3\)|\([123]/3\)…)"), timeout=40_000)
    models.wait_state("Genius", "Failed", timeout=60_000)
    row = models.row("Genius")
    expect(row.get_by_role("alert")).to_contain_text(
        "The connection to the model host keeps breaking.")
    expect(row.get_by_role("button", name="Retry")).to_be_visible()
    expect(row.get_by_role("button", name="Remove files")).to_be_visible()  # 30 % is kept
    row.get_by_role("button", name="Retry").click()
    expect(models.state("Genius")).to_have_text(re.compile("Downloading|Queued"))


def test_retry_resumes_from_stored_shards(page: Page, site_url: str) -> None:
    shards = record_shards(page)
    ChatPage(page, site_url).open(query=SIM + "&sim_fail=smart@50")
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    models.wait_state("Smart", "Ready")  # failed once at 50 %, retried automatically
    repeated = {u for u in shards if shards.count(u) > 1}
    assert len(repeated) <= 4, repeated  # at most the shards cut mid-way, never the rest
    assert len(set(shards)) >= 8


def test_queue_survives_a_reload_and_resumes(page: Page, site_url: str) -> None:
    shards = record_shards(page)
    chat = ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    models.row("Quick").get_by_role("button", name="Download").click()
    page.wait_for_function("() => document.querySelector('[data-key=smart] [role=progressbar]')"
                           "?.getAttribute('aria-valuenow') >= 25", polling=100, timeout=30_000)
    before = set(shards)
    page.goto(page.url.replace("sim_mbps=0.5", "sim_mbps=200"))
    chat.wait_until_ready()
    models.open_manager()
    models.wait_state("Smart", "Ready")
    models.wait_state("Quick", "Ready")
    again = [u for u in shards[len(before):] if u in before]
    assert len(again) <= 4  # resumed from the stored shards


def test_not_downloaded_banner_offers_download_or_the_loaded_model(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    chat.send("/echo warm up smart")
    chat.wait_for_reply_done()
    chat.seed([conversation_record("g" * 32, "Big questions", 9_000, model="genius")],
              [message_record("g1", "g" * 32, "user", "hello", 9_000)])
    chat.reload()
    chat.sidebar_links.filter(has_text="Big questions").click()
    banner = page.get_by_role("note").filter(has_text="This chat uses Genius")
    expect(banner).to_contain_text("which isn't downloaded")
    banner.get_by_role("button", name="Use Smart (simulated) instead").click()
    expect(models.selector).to_have_text("Model: Smart (simulated)")
    expect(banner).to_be_hidden()
    chat.wait_stored_field("conversations", "g" * 32, "model", "smart")


def test_gpu_fit_marks_models_unavailable_and_uses_f32(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SIM + "&sim_gpu=low")
    models = Models(page)
    models.selector.click()
    genius = models.option("Genius")
    expect(genius).to_have_attribute("aria-disabled", "true")
    expect(genius).to_contain_text("Unavailable: Genius needs a more powerful GPU")
    page.keyboard.press("Escape")
    models.open_manager()
    expect(models.state("Genius")).to_have_text("Unavailable")
    expect(models.row("Genius").get_by_role("button")).to_have_count(0)

    page.goto(page.url.replace("sim_gpu=low", "sim_gpu=nof16"))
    ChatPage(page, site_url).wait_until_ready()
    models.open_manager()
    models.row("Quick").get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Ready")
    names = page.evaluate("caches.open('webllm/model').then(c => c.keys())"
                          ".then(ks => ks.map(r => r.url))")
    assert any("q4f32" in u for u in names) and not any("1B-Instruct-q4f16" in u for u in names)


def test_not_enough_space_fails_at_once_with_sizes(page: Page, site_url: str) -> None:
    page.add_init_script("""
        navigator.storage.estimate = async () => ({ usage: 0, quota: 1024 * 1024 });
    """)
    ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    models.wait_state("Smart", "Failed")
    expect(models.row("Smart").get_by_role("alert")).to_contain_text(
        re.compile(r"Needs \d+ MB, 1 MB available\."))


def test_ready_models_files_can_be_removed_and_storage_is_shown(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    models.open_manager()
    expect(models.manager).to_contain_text(re.compile(r"LocalChat uses .+ of the .+ this browser"))
    models.row("Quick").get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Ready")
    models.row("Quick").get_by_role("button", name="Remove files").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_have_accessible_name("Remove Quick's files from this device?")
    expect(dialog).to_contain_text(re.compile(r"This frees [\d.]+ MB\."))
    dialog.get_by_role("button", name="Remove files").click()
    expect(models.state("Quick")).to_have_text("Not downloaded")
    cached = page.evaluate("""async () => {
        const urls = [];
        for (const name of ["webllm/config", "webllm/wasm", "webllm/model"]) {
            for (const r of await (await caches.open(name)).keys()) urls.push(r.url);
        }
        return urls.filter(u => u.includes('1B-Instruct'));
    }""")
    assert cached == []


def test_download_progress_is_in_the_tab_title_while_hidden(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    models.wait_state("Smart", "Downloading")
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(page).to_have_title(re.compile(r"^\d+% · Downloading Smart — LocalChat$"))
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(page).to_have_title("LocalChat")
    expect(page.locator("#announcer")).to_have_text(re.compile("Smart: (Downloading|Queued)"))


def test_rapid_switching_ends_consistent(page: Page, site_url: str) -> None:
    shards = record_shards(page)
    count_workers(page)
    chat = ChatPage(page, site_url).open(query=SIM)
    models = Models(page)
    chat.send("/echo start")
    chat.wait_for_reply_done()
    import random

    rng = random.Random(7)
    for label in ["Quick", "Genius", "Quick"]:
        models.choose(label)
    for _ in range(47):
        if rng.random() < 0.2:
            # Cancel whatever is running right now (it may finish under our fingers).
            clicked = page.evaluate("""() => {
                const b = document.querySelector('#download-manager [data-action="cancel"]');
                if (b) b.click();
                return Boolean(b);
            }""")
            if clicked:  # a download, or a start (its files complete)
                page.get_by_role("alertdialog").get_by_role(
                    "button", name=re.compile("^(Cancel download|Stop starting)$")).click()
                continue
        models.choose(rng.choice(["Quick", "Smart", "Genius"]))
    final = rng.choice(["Quick", "Smart"])
    models.choose(final)
    expect(models.selector).to_have_text(f"Model: {final} (simulated)", timeout=60_000)
    busy = ".download-row:is(.state-downloading, .state-compiling, .state-queued)"
    page.wait_for_function(f"() => !document.querySelector('{busy}')",
                           polling=200, timeout=60_000)
    # One engine worker is left (the chat engine: one model in GPU memory), there never
    # were two at once, and no download ran twice for a shard beyond the ones cut by a
    # cancel.
    page.wait_for_function("() => window.__workers.live === 1", polling=200, timeout=20_000)
    assert page.evaluate("window.__workers.most") == 1
    chat.send("/echo still consistent")
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".meta")).to_contain_text(f"{final} (simulated)")
    total = len(shards)
    assert total - len(set(shards)) <= 4 * 20


def test_cancel_works_while_starting(page: Page, site_url: str) -> None:
    count_workers(page)
    shards = record_shards(page)
    chat = ChatPage(page, site_url).open(query=SLOW.replace("sim_mbps=0.5", "sim_mbps=200")
                                         .replace("sim_compile_s=2", "sim_compile_s=8"))
    models = Models(page)
    models.choose("Quick")  # wanted now: once downloaded it goes onto the GPU
    models.wait_state("Quick", "Compiling")
    expect(models.selector).to_have_text(re.compile(r"^Model: Quick \(simulated\) \(starting"))
    models.row("Quick").get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_have_accessible_name("Stop starting Quick?")
    dialog.get_by_role("button", name="Stop starting").click()
    # Its files are complete: it is Ready, and the engine worker is gone (terminated
    # mid-start), so nothing holds GPU memory.
    models.wait_state("Quick", "Ready")
    page.wait_for_function("() => window.__workers.live === 0", polling=100, timeout=10_000)
    fetched = len(shards)
    # A message in the chat starts it again, from the stored files only.
    chat.send("/echo again")
    expect(chat.wait_for_reply_done(timeout=30_000).locator(".bubble")).to_have_text("again")
    assert len(shards) == fetched


def test_two_requests_share_one_download(page: Page, site_url: str) -> None:
    shards = record_shards(page)
    ChatPage(page, site_url).open(query=SLOW.replace("sim_mbps=0.5", "sim_mbps=2"))
    models = Models(page)
    models.open_manager()
    models.row("Quick").get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Downloading")
    models.choose("Quick")  # the same model, asked for again from the selector
    models.wait_state("Quick", "Ready")
    expect(models.selector).to_have_text("Model: Quick (simulated)")
    assert len(shards) == len(set(shards))  # every shard fetched once


def test_records_from_an_older_version_are_left_alone(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM)
    page.evaluate("""() => new Promise((resolve, reject) => {
        const req = indexedDB.open("localchat");
        req.onsuccess = () => {
            const db = req.result;
            const tx = db.transaction("downloads", "readwrite");
            tx.objectStore("downloads").put({ key: "genius", state: "downloading", v: 0 });
            tx.objectStore("downloads").put({ key: "mystery", version: 1, state: "ready" });
            tx.oncomplete = () => { db.close(); resolve(); };
            tx.onerror = () => reject(tx.error);
        };
    })""")
    chat.reload()
    models = Models(page)
    models.open_manager()
    expect(models.state("Genius")).to_have_text("Not downloaded")
    expect(models.state("Smart")).to_have_text("Not downloaded")
    keys = sorted(r["key"] for r in chat.stored("downloads"))
    assert keys == ["genius", "mystery"]  # not deleted or rewritten


def test_a_reply_waiting_for_its_model_says_so_and_can_be_stopped(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    chat.send("/echo hello")  # the chat's model (Smart) is not downloaded: it starts
    expect(chat.status).to_contain_text(re.compile(r"Waiting for Smart to download… \d+%"))
    chat.stop_button.click()
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".meta")).to_contain_text("stopped")
    models.open_manager()
    expect(models.state("Smart")).to_have_text("Downloading")  # the download goes on


def test_storage_full_mid_download_fails_clearly_and_loses_nothing(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM + "&sim_quota=quick@40")
    chat.seed([conversation_record("k" * 32, "Keep me", 1_000)],
              [message_record("k1", "k" * 32, "user", "precious", 1_000)])
    chat.reload()
    models = Models(page)
    models.open_manager()
    models.row("Quick").get_by_role("button", name="Download").click()
    models.wait_state("Quick", "Failed")
    row = models.row("Quick")
    expect(row.get_by_role("alert")).to_contain_text(
        "There isn't enough storage space for this model.")
    expect(row.get_by_role("button", name="Retry")).to_be_visible()
    expect(row).not_to_contain_text("Retrying")  # a full disk is not retried by itself
    assert [m["content"] for m in chat.stored("messages")] == ["precious"]
    expect(chat.sidebar_links).to_have_text(["Keep me"])


def test_gpu_lost_while_compiling_fails_clearly_and_chat_goes_on(
        page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM + "&sim_device_lost=genius")
    models = Models(page)
    chat.send("/echo before")
    chat.wait_for_reply_done()
    models.choose("Genius")
    models.wait_state("Genius", "Failed")  # after Downloading and part of Compiling
    alert = models.row("Genius").get_by_role("alert")
    expect(alert).to_contain_text("Genius couldn't start.")
    expect(alert).to_contain_text("needs about 5 GB of GPU memory")
    expect(models.row("Genius").get_by_role("button", name="Remove files")).to_be_visible()
    # The loaded model (Smart) keeps answering; the chat asks for Genius still.
    chat.send("/echo after")
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).to_have_text("after")
    expect(reply.locator(".meta")).to_contain_text("Smart (simulated)")
    expect(models.selector).to_have_text("Model: Genius (simulated) (couldn't start)")


def test_a_gpu_reset_reloads_the_model_by_itself_and_the_reply_comes(
        page: Page, site_url: str) -> None:
    shards = record_shards(page)
    count_workers(page)
    chat = ChatPage(page, site_url).open(query=SIM + "&sim_gpu_reset=1")
    chat.send("/echo one")
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("one")
    fetched = len(shards)
    chat.send("/echo two")  # the GPU was reset after the first reply
    reply = chat.wait_for_reply_done()
    expect(reply.locator(".bubble")).to_have_text("two")
    expect(reply.get_by_role("alert")).to_have_count(0)
    assert len(shards) == fetched  # loaded again from the stored files
    assert page.evaluate("[window.__workers.made, window.__workers.live]") == [2, 1]
    stored = sorted((m for m in chat.stored("messages") if m["role"] == "assistant"),
                    key=lambda m: m["createdAt"])
    assert [m["content"] for m in stored] == ["one", "two"]


def test_a_gpu_that_keeps_resetting_is_explained(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=SIM + "&sim_gpu_reset=0")
    chat.send("/echo hi")
    reply = chat.wait_for_reply_done()
    alert = reply.get_by_role("alert")
    expect(alert).to_contain_text("The model stopped working twice in a row.")
    expect(alert).not_to_contain_text("ModelNotLoadedError")


# Every percent the Download Manager's progress bar for Genius shows while the row says
# Downloading, in order (repeats left out), from the first render of the page.
RECORD_GENIUS_PROGRESS = """
    window.__progress = [];
    new MutationObserver(() => {
        const row = document.querySelector("[data-key=genius]");
        const bar = row && row.querySelector("[role=progressbar]");
        const word = row && row.querySelector(".state-word");
        if (!bar || !word || word.textContent !== "Downloading") return;
        const percent = Number(bar.getAttribute("aria-valuenow"));
        const seen = window.__progress;
        if (seen[seen.length - 1] !== percent) seen.push(percent);
    }).observe(document, { subtree: true, childList: true, attributes: true,
                           characterData: true });
"""


def test_retry_and_reload_after_a_failure_to_start_never_show_0_percent(
        page: Page, site_url: str) -> None:
    # Genius downloads whole, then couldn't start. Retry removes its library and config
    # (they are fetched again; the config request is held here so that the row can be
    # read), and the page is reloaded in the middle of that: the shards are stored all
    # along, so the progress never reads 0 % and never goes backwards.
    page.add_init_script(RECORD_GENIUS_PROGRESS)
    held: list = []
    hold = {"on": False}

    def config(route) -> None:  # type: ignore[no-untyped-def]
        if hold["on"]:
            held.append(route)
        else:
            route.continue_()

    config_url = "**/Llama-3.1-8B-Instruct-*/resolve/main/mlc-chat-config.json"
    page.context.route(config_url, config)
    chat = ChatPage(page, site_url).open(query=SIM + "&sim_device_lost=genius")
    models = Models(page)
    models.choose("Genius")
    models.open_manager()
    models.wait_state("Genius", "Failed")
    expect(models.row("Genius").get_by_role("alert")).to_contain_text("Genius couldn't start.")

    page.evaluate("() => { window.__progress = []; }")  # the first download's are left out
    hold["on"] = True
    with page.context.expect_event("request", lambda r: "8B-Instruct" in r.url
                                   and r.url.endswith("mlc-chat-config.json")):
        models.row("Genius").get_by_role("button", name="Retry").click()
    models.wait_state("Genius", "Downloading")
    bar = models.row("Genius").get_by_role("progressbar", name="Genius (simulated) progress")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d*$"))
    shown = page.evaluate("() => window.__progress")
    # Every shard (most of the bytes) is stored: what shows is about all of it.
    assert shown and min(shown) >= 50 and shown == sorted(shown), shown

    with page.context.expect_event("request", lambda r: "8B-Instruct" in r.url
                                   and r.url.endswith("mlc-chat-config.json")):
        page.goto(page.url.replace("&sim_device_lost=genius", ""))  # a reload, mid-download
        chat.wait_until_ready()
    models = Models(page)
    models.open_manager()
    models.wait_state("Genius", "Downloading")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d*$"))
    hold["on"] = False
    for route in held[1:]:  # the first was the page before the reload's
        route.continue_()
    models.wait_state("Genius", "Ready")
    shown = page.evaluate("() => window.__progress")
    assert shown and min(shown) >= 50 and shown == sorted(shown), shown


def test_a_canceled_models_kept_files_can_be_removed_or_resumed(
        page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query=SLOW)
    models = Models(page)
    models.open_manager()
    models.row("Smart").get_by_role("button", name="Download").click()
    bar = models.row("Smart").get_by_role("progressbar", name="Smart (simulated) progress")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([2-9]\d|100)$"),
                                  timeout=30_000)
    models.row("Smart").get_by_role("button", name="Cancel").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Cancel download").click()
    models.wait_state("Smart", "Canceled")
    # What is kept is then counted from storage (a file cut mid-way is not kept), a moment
    # after the cancel; after a reload the row shows that count from the start.
    chat = ChatPage(page, site_url)
    chat.reload()
    expect(page.locator("body")).to_have_attribute("data-models", "ready")
    models.open_manager()
    models.wait_state("Smart", "Canceled")
    row = models.row("Smart")
    kept = re.compile(r"Canceled\. ([\d.]+ (?:KB|MB)) of [\d.]+ MB kept; "
                      r"Resume continues from there\.")
    expect(row).to_contain_text(kept)
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    expect(row.get_by_role("button", name="Download")).to_have_count(0)
    match = kept.search(row.inner_text())
    assert match is not None
    row.get_by_role("button", name="Remove files").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_have_accessible_name("Remove Smart's files from this device?")
    expect(dialog).to_contain_text(f"This frees {match.group(1)}.")
    dialog.get_by_role("button", name="Remove files").click()
    expect(models.state("Smart")).to_have_text("Not downloaded")
    expect(models.row("Smart").get_by_role("button", name="Download")).to_be_visible()
    cached = page.evaluate("""async () => {
        const urls = [];
        for (const name of ["webllm/config", "webllm/wasm", "webllm/model"]) {
            for (const r of await (await caches.open(name)).keys()) urls.push(r.url);
        }
        return urls.filter(u => u.includes("3B-Instruct"));
    }""")
    assert cached == []
