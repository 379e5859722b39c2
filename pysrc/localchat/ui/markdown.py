"""Safe Markdown for assistant messages: CommonMark (+ tables, strikethrough) to HTML.

Uses markdown-it-py, a pure-Python renderer. In the browser it is installed by micropip
from the vendored wheels after the app is ready (adapters/packages.py); until then, and
if it can't be installed, messages are shown as escaped plain text.

Safety: raw HTML in the source is never passed through (`html=False`: it is shown as
text). Links (`link_policy`): only absolute `http:`/`https:` URLs with a host and
`mailto:` addresses become links; any other destination (`data:`, `javascript:`, `blob:`,
`file:`, any other scheme, a relative address) leaves the Markdown as plain text. Each link
opens in a new tab with `rel="noopener noreferrer"`, has its full address as its `title`,
and ends with a small label naming its real host, "(example.org)" (part of its accessible
name), unless its text already is its address. Bidirectional control characters in link
text (they can make "gro.elpmaxe" read as another host) are shown as visible marks,
"[U+202E]". Images are not loaded (a model could otherwise make the page contact any
host): `![alt](url)` shows as "!" and a plain link to the image's address, which opens only
if clicked. Code blocks get a Copy button (`data-action="copy-code"`). Table columns are
aligned with classes (`align-left`, `align-center`, `align-right`), never inline styles.

Nesting: markdown-it stops parsing blocks nested deeper than its limit (`maxNesting`,
20 levels of blockquotes or lists) and drops their text. A message that reaches it is
shown whole as escaped plain text instead, with a short note, so nothing is lost.

Usage:
    renderer = MarkdownRenderer.create()   # None if markdown-it-py isn't importable
    html = renderer.render("**hi**") if renderer else escape_plain("**hi**")
"""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["NESTING_NOTE", "MarkdownRenderer", "escape_plain", "link_host", "link_policy",
           "show_bidi_controls"]

# Characters that reorder text around them (embeddings, overrides, isolates, marks).
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def link_policy(url: str) -> bool:
    """Whether a (normalized) link destination may become a clickable link: `http:` and
    `https:` with a host, and `mailto:` with an address. Judged as a browser would read
    the address: tabs and newlines inside it and spaces or controls around it are ignored
    (so "java\tscript:" is javascript:), and a scheme is matched in any case."""
    cleaned = re.sub("[\t\n\r]", "", url).strip("".join(map(chr, range(0x21))))
    match = _SCHEME.match(cleaned)
    if match is None:
        return False  # relative: it would lead into the app itself, not out of a reply
    scheme = match.group(1).lower()
    if scheme == "mailto":
        return len(cleaned) > len("mailto:")
    if scheme in ("http", "https"):
        return cleaned[match.end():].startswith("//") and link_host(cleaned) != ""
    return False


def link_host(url: str) -> str:
    """The host a link really leads to ("example.org"; punycode stays punycode, so a
    look-alike name shows as xn--…), or a mailto: link's address; "" if there is none."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() == "mailto":
            return unquote(parts.path)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    return f"{host}:{port}" if host and port else host


def show_bidi_controls(text: str) -> str:
    """Text with every bidirectional control character replaced by a visible mark."""
    return BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)
NESTING_NOTE = "Shown as plain text: it is nested too deeply to format."

_TOO_DEEP = "localchat_nesting_exceeded"
"""The env key set when markdown-it skipped blocks beyond its nesting limit."""



def escape_plain(text: str) -> str:
    return escape(text)


class MarkdownRenderer:
    def __init__(self, md: Any) -> None:
        self._md = md

    @classmethod
    def create(cls) -> MarkdownRenderer | None:
        try:
            from markdown_it import MarkdownIt
        except ImportError:
            return None
        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        md.enable(["table", "strikethrough"])
        # Images would make the page fetch from anywhere the model names: show the text.
        md.disable("image")
        # A destination that fails the policy is not parsed as a link: its Markdown stays text.
        md.validateLink = link_policy  # type: ignore[method-assign]
        md.core.ruler.push("localchat_links", _mark_links)
        renderer = cls(md)
        md.add_render_rule("link_open", renderer._link_open)
        md.add_render_rule("link_close", renderer._link_close)
        md.add_render_rule("fence", renderer._fence)
        md.add_render_rule("code_block", renderer._fence)
        md.add_render_rule("th_open", renderer._cell_open)
        md.add_render_rule("td_open", renderer._cell_open)
        md.block.tokenize = _noting_nesting_limit(md.block.tokenize)
        return renderer

    def render(self, text: str) -> str:
        env: dict[str, Any] = {}
        html = str(self._md.render(text, env))
        if env.get(_TOO_DEEP):
            return (f'<p class="plain-text">{escape(text)}</p>'
                    f'<p class="record-note">{NESTING_NOTE}</p>')
        return html

    # Render rules (markdown-it calls them as methods of its renderer: self is ours).

    @staticmethod
    def _link_open(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer")
        token.attrSet("title", str(token.attrGet("href") or ""))
        return str(renderer.renderToken(tokens, idx, options, env))

    @staticmethod
    def _link_close(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        host = tokens[idx].meta.get("host_label", "")
        label = f'<span class="link-host"> ({escape(host)})</span>' if host else ""
        return label + str(renderer.renderToken(tokens, idx, options, env))

    @staticmethod
    def _cell_open(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        """A table cell aligned by a class, not markdown-it's `style="text-align:…"`: the
        site's policy refuses inline styles (each cell would be a reported violation,
        and unaligned)."""
        token = tokens[idx]
        style = str(token.attrGet("style") or "")
        if style.startswith("text-align:"):
            token.attrs.pop("style", None)
            token.attrSet("class", "align-" + style.removeprefix("text-align:"))
        return str(renderer.renderToken(tokens, idx, options, env))

    @staticmethod
    def _fence(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        info = (token.info or "").strip().split(maxsplit=1)
        lang = info[0] if info else ""
        cls = f' class="language-{escape(lang)}"' if lang else ""
        label = escape(lang) if lang else "code"
        return (f'<div class="code-block"><div class="code-head"><span>{label}</span>'
                '<button type="button" class="copy-code" data-action="copy-code">Copy</button>'
                f"</div><pre><code{cls}>{escape(token.content)}</code></pre></div>")


def _mark_links(state: Any) -> None:
    """Core rule: bidi controls in link text become visible, and each link_close learns
    the host label its link shows (none when the link's text is its address)."""
    for block in state.tokens:
        children = block.children or []
        href: str | None = None
        text: list[str] = []
        for token in children:
            if token.type == "link_open":
                href, text = str(token.attrGet("href") or ""), []
            elif token.type == "link_close" and href is not None:
                shown = "".join(text).strip()
                # An address as its own text names its host, unless it hides it behind a
                # user name ("https://bank.example@evil.example").
                plain = shown in (href, href.removeprefix("mailto:")) and (
                    href.startswith("mailto:") or "@" not in urlsplit(href).netloc)
                if not plain:
                    token.meta["host_label"] = link_host(href)
                href = None
            elif href is not None and token.type in ("text", "code_inline"):
                token.content = show_bidi_controls(token.content)
                text.append(token.content)


def _noting_nesting_limit(tokenize: Any) -> Any:
    """markdown-it's block tokenizer, which also notes in `env` when it is about to skip
    content for being nested beyond the limit (the same test its own loop makes: the
    level is over the limit and a line of this block remains)."""
    def noting(state: Any, start_line: int, end_line: int) -> None:
        if state.level >= state.md.options.maxNesting:
            line = state.skipEmptyLines(start_line)
            if line < end_line and state.sCount[line] >= state.blkIndent:
                state.env[_TOO_DEEP] = True
        tokenize(state, start_line, end_line)
    return noting
