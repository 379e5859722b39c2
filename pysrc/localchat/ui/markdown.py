"""Safe Markdown for assistant messages: CommonMark (+ tables, strikethrough) to HTML.

Uses markdown-it-py, a pure-Python renderer. In the browser it is installed by micropip
from the vendored wheels after the app is ready (adapters/packages.py); until then, and
if it can't be installed, messages are shown as escaped plain text.

Safety: raw HTML in the source is never passed through (`html=False`: it is shown as
text); links with `javascript:`, `vbscript:`, `file:` or non-image `data:` URLs are not
made links (markdown-it's validateLink); links open in a new tab with
`rel="noopener noreferrer"`. Images are not loaded (a model could otherwise make the
page contact any host): `![alt](url)` shows as "!" and a plain link to the image's
address, which opens only if clicked. Code blocks get a Copy button
(`data-action="copy-code"`).

Nesting: markdown-it stops parsing blocks nested deeper than its limit (`maxNesting`,
20 levels of blockquotes or lists) and drops their text. A message that reaches it is
shown whole as escaped plain text instead, with a short note, so nothing is lost.

Usage:
    renderer = MarkdownRenderer.create()   # None if markdown-it-py isn't importable
    html = renderer.render("**hi**") if renderer else escape_plain("**hi**")
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["NESTING_NOTE", "MarkdownRenderer", "escape_plain"]

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
        renderer = cls(md)
        md.add_render_rule("link_open", renderer._link_open)
        md.add_render_rule("fence", renderer._fence)
        md.add_render_rule("code_block", renderer._fence)
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
