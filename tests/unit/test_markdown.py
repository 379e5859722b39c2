"""MarkdownRenderer: CommonMark + tables to HTML, with model-written HTML kept inert."""

from __future__ import annotations

import pytest

from localchat.ui.markdown import (
    NESTING_NOTE,
    MarkdownRenderer,
    escape_plain,
    link_host,
    link_policy,
    show_bidi_controls,
)
from tests.unit.html_probe import active_content, elements, text


@pytest.fixture(scope="module")
def md() -> MarkdownRenderer:
    renderer = MarkdownRenderer.create()
    assert renderer is not None, "markdown-it-py is a dev dependency; it must import"
    return renderer


def test_headings_and_emphasis(md: MarkdownRenderer) -> None:
    html = md.render("# Title\n\n## Part *one*\n\nSome **bold** and ~~old~~ text.")
    assert [e.tag for e in elements(html)] == ["h1", "h2", "em", "p", "strong", "s"]
    assert text(html).split("\n")[:2] == ["Title", "Part one"]


def test_lists(md: MarkdownRenderer) -> None:
    html = md.render("- apples\n- pears\n\n1. first\n2. second\n")
    assert [e.tag for e in elements(html)] == ["ul", "li", "li", "ol", "li", "li"]
    assert "apples" in text(html)
    assert "second" in text(html)


def test_tables(md: MarkdownRenderer) -> None:
    html = md.render("| Model | Size |\n|---|---:|\n| Quick | 0.7 GB |\n| Smart | 1.7 GB |\n")
    tags = [e.tag for e in elements(html)]
    assert tags.count("table") == 1
    assert tags.count("th") == 2
    assert tags.count("td") == 4
    assert "Smart" in text(html)


def test_table_alignment_is_a_class_never_an_inline_style(md: MarkdownRenderer) -> None:
    html = md.render("| a | b | c | d |\n|:-:|--:|:--|---|\n| 1 | 2 | 3 | 4 |\n")
    assert "style" not in html  # the site's policy refuses inline styles
    cells = [e for e in elements(html) if e.tag in ("th", "td")]
    assert [c.attrs.get("class") for c in cells] == [
        "align-center", "align-right", "align-left", None] * 2


def test_fenced_code_gets_a_language_label_and_a_copy_button(md: MarkdownRenderer) -> None:
    html = md.render('```python\nprint("<b>hi</b>")\n```\n')
    button = [e.attrs for e in elements(html, "button")]
    assert button == [{"type": "button", "class": "copy-code", "data-action": "copy-code"}]
    assert [e.attrs.get("class") for e in elements(html, "code")] == ["language-python"]
    assert elements(html, "b") == []
    assert 'print("<b>hi</b>")\n' in text(html)
    assert text(html).startswith("pythonCopy")


def test_indented_code_gets_a_copy_button_too(md: MarkdownRenderer) -> None:
    html = md.render("Text\n\n    x = 1\n")
    assert len(elements(html, "button")) == 1
    assert "x = 1" in text(html)
    assert "codeCopy" in text(html)


def test_a_hostile_fence_language_stays_in_its_attribute(md: MarkdownRenderer) -> None:
    html = md.render('```js"onmouseover="alert(1)\ncode\n```\n')
    assert active_content(html) == []
    assert [e.attrs.get("class") for e in elements(html, "code")] == [
        'language-js"onmouseover="alert(1)']


def test_links_open_in_a_new_tab_without_referrer(md: MarkdownRenderer) -> None:
    html = md.render("See [the docs](https://example.com/a?b=1) and <https://example.org>.")
    links = [e.attrs for e in elements(html, "a")]
    assert links == [
        {"href": "https://example.com/a?b=1", "target": "_blank", "rel": "noopener noreferrer",
         "title": "https://example.com/a?b=1"},
        {"href": "https://example.org", "target": "_blank", "rel": "noopener noreferrer",
         "title": "https://example.org"},
    ]
    # The first names its host after its text; the second's text is its address.
    assert text(html) == "See the docs (example.com) and https://example.org.\n"


@pytest.mark.parametrize("source", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<svg onload="alert(1)"><circle/></svg>',
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[svg](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "<javascript:alert(1)>",
    "- item <img src=x onerror=alert(1)>\n\n| a |\n|---|\n| <script>x</script> |",
])
def test_raw_html_and_script_urls_come_out_as_inert_text(md: MarkdownRenderer,
                                                         source: str) -> None:
    html = md.render(source)
    assert active_content(html) == []
    assert "<script" not in html
    assert 'href="javascript:' not in html.lower()
    hrefs = [(e.attrs.get("href") or "").strip().lower() for e in elements(html, "a")]
    assert not any(h.startswith(("javascript:", "vbscript:", "data:")) for h in hrefs)


def test_raw_html_is_shown_as_its_text(md: MarkdownRenderer) -> None:
    html = md.render("Try <img src=x onerror=alert(1)> now")
    assert text(html).strip() == "Try <img src=x onerror=alert(1)> now"
    assert "&lt;img" in html


@pytest.mark.parametrize("source", ["![cat](https://tracker.example/cat.png)",
                                    "![pixel](data:image/png;base64,iVBORw0KGgo=)",
                                    '![a][ref]\n\n[ref]: https://tracker.example/x.gif "t"'])
def test_images_are_never_rendered_as_img(md: MarkdownRenderer, source: str) -> None:
    html = md.render(source)
    assert elements(html, "img") == []
    assert "<img" not in html


def test_image_markdown_becomes_a_plain_link_nothing_fetched(md: MarkdownRenderer) -> None:
    html = md.render("![cat](https://tracker.example/cat.png)")
    assert elements(html, "img") == []
    links = elements(html, "a")
    assert len(links) == 1 and links[0].attrs["rel"] == "noopener noreferrer"


def test_escape_plain_is_the_fallback() -> None:
    assert escape_plain('<b>"hi"</b> & co') == "&lt;b&gt;&quot;hi&quot;&lt;/b&gt; &amp; co"


# --- the link policy --------------------------------------------------------------------

CLICKABLE = [
    ("[a](https://example.org/x?y=1#z)", "https://example.org/x?y=1#z", "example.org"),
    ("[a](http://example.org)", "http://example.org", "example.org"),
    ("[a](HTTPS://Example.ORG:8443/p)", "HTTPS://Example.ORG:8443/p", "example.org:8443"),
    ("[write](mailto:someone@example.org)", "mailto:someone@example.org", "someone@example.org"),
    ("[a](https://bank.example@evil.example/)", "https://bank.example@evil.example/",
     "evil.example"),
    ("[a](https://аpple.com/)", "https://xn--pple-43d.com/", "xn--pple-43d.com"),
    ('[a][r]\n\n[r]: https://example.org/ref "t"', "https://example.org/ref", "example.org"),
]


@pytest.mark.parametrize(("source", "href", "host"), CLICKABLE)
def test_http_https_and_mailto_links_are_clickable_and_name_their_host(
        md: MarkdownRenderer, source: str, href: str, host: str) -> None:
    html = md.render(source)
    [link] = elements(html, "a")
    assert link.attrs["href"] == href
    assert link.attrs["title"] == href
    assert [e.attrs for e in elements(html, "span")] == [{"class": "link-host"}]
    assert f"({host})" in text(html)


NOT_CLICKABLE = [
    "[click](data:text/html,<script>alert(1)</script>)",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[pic](data:image/png;base64,iVBORw0KGgo=)",
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](file:///etc/passwd)",
    "[click](blob:http://127.0.0.1:8000/0f3c)",
    "[click](ftp://example.org/file)",
    "[click](ws://example.org/)",
    "[click](chrome://settings)",
    "[click](intent://scan/#Intent;scheme=zxing;end)",
    "[click](tel:+15551234)",
    "[click](https:example.org)",
    "[click](https://)",
    "[click](mailto:)",
    "[click](/relative/path)",
    "[click](#/chat/abc)",
    "[click](//example.org/protocol-relative)",
    "[click](%6Aavascript:alert(1))",
    "<data:text/html,hi>",
    "<javascript:alert(1)>",
    "<file:///etc/passwd>",
    "[a][r]\n\n[r]: javascript:alert(1)",
    "[a][r]\n\n[r]: data:text/html,hi",
]


@pytest.mark.parametrize("source", NOT_CLICKABLE)
def test_every_other_destination_stays_plain_text(md: MarkdownRenderer, source: str) -> None:
    html = md.render(source)
    assert elements(html, "a") == []
    assert active_content(html) == []
    shown = text(html)
    # The Markdown itself is what the reader sees, destination included.
    assert "](" in shown or shown.startswith("<") or "]: " in shown


@pytest.mark.parametrize("url", ["java\tscript:alert(1)", " javascript:alert(1)",
                                 "\x00javascript:alert(1)", "java\nscript:x",
                                 "JaVaScRiPt:x", "https:\\\\evil.example"])
def test_the_policy_reads_an_address_as_a_browser_does(url: str) -> None:
    assert not link_policy(url)


def test_the_policy_accepts_only_absolute_web_and_mail_addresses() -> None:
    assert link_policy("https://example.org")
    assert link_policy("  https://example.org/x  ")
    assert link_policy("mailto:a@example.org")
    assert not link_policy("https://")
    assert not link_policy("example.org")
    assert link_host("https://[::1]:8080/") == "::1:8080"
    assert link_host("https://example.org:99999/") == ""  # an impossible port: no host


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_in_link_text_are_made_visible(md: MarkdownRenderer) -> None:
    html = md.render("[\u202egro.elpmaxe\u202c](https://evil.example/) and `x`")
    [link] = elements(html, "a")
    assert link.attrs["href"] == "https://evil.example/"
    shown = text(html)
    assert "[U+202E]gro.elpmaxe[U+202C] (evil.example)" in shown
    assert not any(c in shown for c in BIDI)


def test_every_bidi_control_gets_a_visible_mark(md: MarkdownRenderer) -> None:
    html = md.render(f"[a{BIDI}b `c{BIDI}`](https://example.org)")
    assert not any(c in text(html) for c in BIDI)
    assert show_bidi_controls(BIDI).count("[U+") == len(BIDI)
    assert show_bidi_controls("\u061c") == "[U+061C]"


def test_bidi_controls_outside_links_are_left_alone(md: MarkdownRenderer) -> None:
    # Right-to-left writing uses marks legitimately; only link text can disguise an address.
    assert "\u200f" in text(md.render("שלום\u200f world"))


def test_an_address_as_its_own_text_needs_no_host_label(md: MarkdownRenderer) -> None:
    assert elements(md.render("<https://example.org/a>"), "span") == []
    assert elements(md.render("<someone@example.org>"), "span") == []
    # ... unless a user name stands where the host seems to be.
    html = md.render("<https://bank.example@evil.example/>")
    assert "(evil.example)" in text(html)


# --- beyond markdown-it's nesting limit (20 levels): shown as plain text, never dropped ------


def _quotes(depth: int, line: str) -> str:
    return ">" * depth + " " + line


def _nested_list(depth: int) -> str:
    return "".join("  " * i + f"- item{i}\n" for i in range(depth))


@pytest.mark.parametrize("source", [
    _quotes(19, "deep text"), _nested_list(9), "**bold** " + "*" * 30 + "x" + "*" * 30,
])
def test_nesting_within_the_limit_is_rendered_as_markdown(md: MarkdownRenderer,
                                                          source: str) -> None:
    html = md.render(source)
    assert NESTING_NOTE not in html
    assert "plain-text" not in html


@pytest.mark.parametrize("source, last_words", [
    (_quotes(20, "deep text"), "deep text"),
    (_quotes(200, "very deep"), "very deep"),
    (_nested_list(10), "item9"),
    (_nested_list(40), "item39"),
    ("before\n\n" + _quotes(30, "inside <b>x</b> & more") + "\n\nafter", "after"),
    ("> " * 25 + "- " * 25 + "mixed", "mixed"),
])
def test_text_beyond_the_nesting_limit_is_shown_as_escaped_plain_text(
        md: MarkdownRenderer, source: str, last_words: str) -> None:
    html = md.render(source)
    shown = text(html)
    assert shown.startswith(source)  # every character, in order
    assert last_words in shown
    assert shown.endswith(NESTING_NOTE)
    assert [e.tag for e in elements(html)] == ["p", "p"]
    assert active_content(html) == []


def test_the_nesting_fallback_escapes_html(md: MarkdownRenderer) -> None:
    source = _quotes(25, '<img src=x onerror=alert(1)><script>alert(2)</script>')
    html = md.render(source)
    assert elements(html, "img") == [] and elements(html, "script") == []
    assert "<img src=x onerror=alert(1)>" in text(html)


def test_the_renderer_keeps_no_state_between_messages(md: MarkdownRenderer) -> None:
    assert NESTING_NOTE in md.render(_quotes(25, "deep"))
    assert md.render("**fine**") == "<p><strong>fine</strong></p>\n"
