"""Hostile replies and the site's policy: nothing a reply contains runs, only web and mail
links are clickable and each names its real host, and the Content-Security-Policy refuses
inline script, eval and framing even when something gets past the rendering.

Every test here (like every browser test) also fails on any policy violation it did not
ask for (tests/e2e/conftest.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .pages.chat import ChatPage

# What Chromium prints for a violation, and what the guard's init script adds.
VIOLATION = r"Content-Security-Policy violation|violates the following Content Security Policy"


def _markdown_ready(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-markdown", "ready")


def _watch_violations(page: Page) -> None:
    page.evaluate("""() => {
        window.__violations = [];
        document.addEventListener("securitypolicyviolation",
            (e) => window.__violations.push(e.effectiveDirective));
    }""")


# --- the policy itself --------------------------------------------------------------------


@pytest.mark.allow_console_errors(VIOLATION)
def test_an_injected_inline_script_is_refused_by_the_policy(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open()
    _watch_violations(page)
    # As if an injection had got a <script> and an inline handler into the page.
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__pwned = 'inline script'";
        document.body.append(script);
        const div = document.createElement("div");
        div.innerHTML = '<img src="vendor/icons/icon-192.png" onload="window.__pwned = 1">';
        document.body.append(div);
    }""")
    page.wait_for_function("() => window.__violations.length >= 2")
    assert sorted(set(page.evaluate("window.__violations"))) == [
        "script-src-attr", "script-src-elem"]
    assert page.evaluate("window.__pwned") is None


@pytest.mark.allow_console_errors(VIOLATION)
def test_eval_a_script_from_elsewhere_and_style_attributes_are_refused(
        page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open()
    _watch_violations(page)
    outcome = page.evaluate("""async () => {
        const tried = {};
        // Later, from a task of the page's own: code run by Playwright's evaluate itself is
        // exempt from the eval check (DevTools' allowUnsafeEvalBlockedByCSP).
        await new Promise((resolve) => setTimeout(() => {
            try { eval("1 + 1"); tried.eval = "ran"; } catch (e) { tried.eval = e.name; }
            try { new Function("return 1")(); tried.fn = "ran"; } catch (e) { tried.fn = e.name; }
            resolve();
        }));
        const s = document.createElement("script");
        s.src = "http://localhost:1/evil.js";
        tried.remote = await new Promise((resolve) => {
            s.onload = () => resolve("loaded"); s.onerror = () => resolve("refused");
            document.head.append(s);
        });
        const p = document.createElement("p");
        p.innerHTML = '<span style="color: rgb(255, 0, 0)">x</span>';
        document.body.append(p);
        tried.color = getComputedStyle(p.firstChild).color;
        return tried;
    }""")
    assert outcome["eval"] == "EvalError" and outcome["fn"] == "EvalError"
    assert outcome["remote"] == "refused"
    assert outcome["color"] != "rgb(255, 0, 0)"
    page.wait_for_function("() => window.__violations.length >= 4")
    assert {"script-src", "script-src-elem", "style-src-attr"} <= set(
        page.evaluate("window.__violations"))


def test_the_dev_server_sends_the_policy_and_the_other_headers(
        page: Page, site_url: str) -> None:
    response = page.goto(site_url + "?sw=off#/chat")
    assert response is not None
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert page.evaluate("document.referrer") == ""
    ChatPage(page, site_url).wait_until_ready()


@pytest.mark.allow_console_errors(r"frame-ancestors")
def test_another_site_cannot_frame_the_app(page: Page, site_url: str) -> None:
    # localhost is another origin than 127.0.0.1: a page there tries to frame the app.
    other = site_url.replace("127.0.0.1", "localhost") + "framer.html"
    page.route(other, lambda route: route.fulfill(
        content_type="text/html",
        body=f'<!doctype html><title>framer</title><iframe src="{site_url}?sw=off" '
             'onload="document.title = \'frame loaded\'"></iframe>'))
    page.goto(other)
    # The frame finished loading, but as an error page: the app's static shell (its
    # textbox is in index.html itself) is not in it.
    expect(page).to_have_title("frame loaded")
    expect(page.frame_locator("iframe").get_by_role("textbox", name="Message")).to_have_count(0)


# --- hostile replies ----------------------------------------------------------------------

# Each would set window.__pwned if anything in it ran. Through `/echo`, the simulated
# engine's reply is the text verbatim, so each is what a model could write.
PAYLOADS = [
    "<script>window.__pwned = 1</script>",
    "<img src=x onerror=\"window.__pwned = 2\">",
    "<svg onload=\"window.__pwned = 3\"><circle r=5 /></svg>",
    "<svg><script>window.__pwned = 4</script></svg>",
    "<iframe src=\"javascript:parent.__pwned = 5\"></iframe>",
    "<iframe srcdoc=\"<script>parent.__pwned = 6</script>\"></iframe>",
    "<body onload=\"window.__pwned = 7\">",
    "<details open ontoggle=\"window.__pwned = 8\"><summary>x</summary></details>",
    "<video><source onerror=\"window.__pwned = 9\"></video>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__pwned = 10\">",
    "<a href=\"javascript:window.__pwned = 11\">raw link</a>",
    "[click](javascript:window.__pwned=12)",
    "[click](JaVaScRiPt:window.__pwned=13)",
    "[click](  javascript:window.__pwned=14)",
    "[click](<javascript:window.__pwned=15>)",
    "[click](&#106;avascript:window.__pwned=16)",
    "[click](%6Aavascript:window.__pwned=17)",
    "[click](vbscript:msgbox(18))",
    "[click](data:text/html,<script>opener.__pwned=19</script>)",
    "[click](data:text/html;base64,PHNjcmlwdD5vcGVuZXIuX19wd25lZD0yMDwvc2NyaXB0Pg==)",
    "[click](file:///etc/passwd)",
    "[click](blob:http://127.0.0.1/22)",
    "<javascript:window.__pwned=23>",
    "<data:text/html,<script>opener.__pwned=24</script>>",
    "[click][r]\n\n[r]: javascript:window.__pwned=25",
    "[click](https://example.org \"t\\\" onmouseover=\\\"window.__pwned=26\")",
    "[click](https://example.org/\"onmouseover=\"window.__pwned=27)",
    "```\"><img src=x onerror=\"window.__pwned=28\">\ncode\n```",
    "`<img src=x onerror=\"window.__pwned=29\">`",
    "<style>*{background:url(\"javascript:window.__pwned=30\")}</style>",
    "<link rel=stylesheet href=\"data:text/css,*{color:red}\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__pwned=32\">",
    "<form action=\"javascript:window.__pwned=33\"><button>go</button></form>",
    "<input autofocus onfocus=\"window.__pwned=34\">",
    "<object data=\"javascript:window.__pwned=35\"></object>",
    "<embed src=\"javascript:window.__pwned=36\">",
    "<base href=\"javascript:window.__pwned=37//\">",
    "![x](javascript:window.__pwned=38)",
    "![x](https://example.org/x.png\" onerror=\"window.__pwned=39)",
    "| a |\n|---|\n| <img src=x onerror=\"window.__pwned=40\"> |",
    "> <script>window.__pwned = 41</script>",
    "- [click](javascript:window.__pwned=42)\n- <svg/onload=window.__pwned=42>",
    "**<svg/onload=window.__pwned=43>**",
    "[ok](https://example.org)<img src=x onerror=\"window.__pwned=44\">",
    "<https://example.org/\"><script>window.__pwned=45</script>>",
    "[mail](mailto:a@example.org?body=<script>window.__pwned=46</script>)",
    "\\<script\\>window.__pwned=47\\</script\\>",
    "<IMG SRC=\"jav&#x09;ascript:window.__pwned=48\">",
    "<div style=\"background:url(javascript:window.__pwned=49)\">styled</div>",
    "&lt;script&gt;window.__pwned=50&lt;/script&gt;",
]

# Anything in the thread that could run code or load something: elements, inline
# handlers, and any address-bearing attribute whose scheme isn't http(s)/mailto.
DANGER_IN_DOM = """(root) => {
    const found = [];
    const bad = "script,iframe,frame,object,embed,img,svg,math,style,link,meta,base,form,"
              + "input,video,audio,source,details";
    for (const el of root.querySelectorAll(`.bubble :is(${bad})`)) {
        found.push("<" + el.localName + ">");
    }
    for (const el of root.querySelectorAll(".bubble, .bubble *")) {
        for (const attr of el.attributes) {
            const name = attr.name.toLowerCase();
            if (name.startsWith("on") || name === "style" || name === "srcdoc") {
                found.push(name + "=" + attr.value);
            }
            if (["href", "src", "action", "formaction", "xlink:href", "data"].includes(name)) {
                const url = new URL(attr.value, location.href);
                if (!["http:", "https:", "mailto:"].includes(url.protocol)) {
                    found.push(name + "=" + attr.value);
                }
            }
        }
    }
    return found;
}"""


def test_hostile_replies_table_nothing_runs_and_nothing_dangerous_is_in_the_dom(
        page: Page, site_url: str) -> None:
    assert len(PAYLOADS) >= 40
    chat = ChatPage(page, site_url).open()
    _markdown_ready(page)
    thread = page.locator("#thread")
    for n, payload in enumerate(PAYLOADS, 1):
        chat.send(f"/echo {payload}")
        reply = chat.wait_for_reply_done()
        expect(reply.locator(".bubble")).not_to_be_empty()
        found = thread.evaluate(DANGER_IN_DOM)
        assert found == [], f"payload {n} {payload!r} left {found}"
    expect(chat.assistant_messages()).to_have_count(len(PAYLOADS))
    assert page.evaluate("window.__pwned") is None
    # The only links that came through are the web ones.
    hrefs = thread.locator(".bubble a").evaluate_all("(links) => links.map((a) => a.protocol)")
    assert set(hrefs) <= {"https:", "mailto:"}


# --- links ----------------------------------------------------------------------------------


def test_only_web_and_mail_links_are_clickable(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _markdown_ready(page)
    chat.send("/echo [data](data:text/html,<script>alert(1)</script>) "
              "[js](javascript:alert(1)) [file](file:///etc/passwd) "
              "[blob](blob:http://127.0.0.1/x) [tel](tel:+1555) [app](#/chat) "
              "[web](https://example.org/page) [mail](mailto:someone@example.org)")
    reply = chat.wait_for_reply_done()
    bubble = reply.locator(".bubble")
    expect(bubble.get_by_role("link")).to_have_count(2)
    expect(bubble.get_by_role("link", name="web")).to_have_attribute(
        "href", "https://example.org/page")
    expect(bubble.get_by_role("link", name="mail")).to_have_attribute(
        "href", "mailto:someone@example.org")
    # The rest is shown as the Markdown it was, destination and all.
    for source in ("[data](data:text/html,<script>alert(1)</script>)",
                   "[js](javascript:alert(1))", "[file](file:///etc/passwd)",
                   "[blob](blob:http://127.0.0.1/x)", "[tel](tel:+1555)", "[app](#/chat)"):
        expect(bubble).to_contain_text(source)


def test_each_link_names_its_real_host_and_bidi_tricks_show(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    _markdown_ready(page)
    chat.send("/echo Log in at [\u202egro.knab\u202c](https://evil.example/login), "
              "[docs](https://docs.example.org:8443/a?b=1), "
              "[bank](https://bank.example@evil.example/) or [shop](https://аpple.com/)")
    reply = chat.wait_for_reply_done()
    bubble = reply.locator(".bubble")
    links = bubble.get_by_role("link")
    expect(links).to_have_count(4)
    # The host label says where each link really goes: the browser's own reading of href.
    for i in range(4):
        link = links.nth(i)
        real_host = link.evaluate("(a) => new URL(a.href).host")
        expect(link.locator(".link-host")).to_have_text(f"({real_host})")
        expect(link.locator(".link-host")).to_be_visible()
        expect(link).to_have_attribute("title", str(link.get_attribute("href")))
    assert [links.nth(i).evaluate("(a) => new URL(a.href).host") for i in range(4)] == [
        "evil.example", "docs.example.org:8443", "evil.example", "xn--pple-43d.com"]
    # The right-to-left override is shown, not obeyed, and the name still reads well.
    disguised = bubble.get_by_role(
        "link", name=re.compile(r"^\[U\+202E\]gro\.knab\[U\+202C\]\s*\(evil\.example\)$"))
    expect(disguised).to_have_attribute("href", "https://evil.example/login")
    text = bubble.inner_text()
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]", text)
    disguised.focus()
    expect(disguised).to_be_focused()
    expect(disguised.locator(".link-host")).to_be_visible()


def test_a_link_opens_in_a_new_tab_without_referrer(page: Page, site_url: str) -> None:
    page.context.route("https://example.org/**", lambda route: route.fulfill(
        content_type="text/html", body="<!doctype html><title>outside</title>"))
    chat = ChatPage(page, site_url).open()
    _markdown_ready(page)
    chat.send("/echo see [the page](https://example.org/where)")
    link = chat.wait_for_reply_done().get_by_role("link", name="the page")
    with page.context.expect_page() as opened:
        link.click()
    outside = opened.value
    outside.wait_for_load_state()
    assert outside.url == "https://example.org/where"
    assert outside.evaluate("document.referrer") == ""
    assert outside.evaluate("window.opener") is None
    outside.close()
