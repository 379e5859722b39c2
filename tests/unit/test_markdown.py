"""MarkdownRenderer: CommonMark + tables to HTML, with model-written HTML kept inert."""

from __future__ import annotations

import pytest

from localchat.ui.markdown import NESTING_NOTE, MarkdownRenderer, escape_plain
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
        {"href": "https://example.com/a?b=1", "target": "_blank", "rel": "noopener noreferrer"},
        {"href": "https://example.org", "target": "_blank", "rel": "noopener noreferrer"},
    ]


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
