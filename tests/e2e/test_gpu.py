"""The GPU probe: where WebGPU can't run models the user is told why and what to do,
saved conversations stay readable, and without shader-f16 the f32 variants are used."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .pages.chat import FAST_SIM, ChatPage


def _chat_once(chat: ChatPage, text: str) -> None:
    chat.send(text)
    chat.wait_for_reply_done()


def test_no_webgpu_explains_and_keeps_conversations_readable(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _chat_once(chat, "/echo kept for later")
    route = page.url[page.url.index("#"):]

    chat.open(query=FAST_SIM + "&sim_gpu=none", route=route)
    notice = chat.alerts.filter(has_text="WebGPU is not available")
    expect(notice).to_contain_text("Chrome or Edge")
    expect(notice).to_contain_text("saved conversations")
    expect(chat.assistant_messages().locator(".bubble")).to_have_text(["kept for later"])
    chat.send("new question")
    expect(chat.last_reply().get_by_role("alert")).to_contain_text("WebGPU")
    # Nothing stored was deleted or rewritten.
    contents = sorted(m["content"] for m in chat.stored("messages"))
    assert "/echo kept for later" in contents and "kept for later" in contents


def test_without_shader_f16_the_f32_variant_is_used(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query=FAST_SIM + "&sim_gpu=nof16")
    _chat_once(chat, "/echo f32 please")
    expect(chat.last_reply().locator(".bubble")).to_have_text("f32 please")
    stored = [m for m in chat.stored("messages") if m["role"] == "assistant"]
    assert stored[0]["model"] == "Llama-3.2-3B-Instruct-q4f32_1-MLC"


def test_real_probe_on_swiftshader_has_no_f16(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query="")
    report = page.evaluate(
        "import('./js/engine-bridge.js').then(m => m.probeGpu(location.search))")
    assert report["usable"] is True and report["f16"] is False
    assert report["simulated"] is False
    assert report["fallback"] is True, report  # a software adapter: replies will be slow
