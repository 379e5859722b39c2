"""Bounded rendering of very long or very large Markdown (standard library only).

A message up to `SYNC_CHARS` is rendered in one go, as always. A longer one is shown
first as escaped plain text (`plain_html`, in pieces the browser lays out only when they
are on screen), and `plan` cuts its Markdown into chunks that each render within a task:
at blank lines outside code fences, before a line that can only start a new block, and a
large pipe table by groups of rows (each group rendered under the table's header, its
body rows joined into the one table by `merge`). Rendering the chunks one by one and
merging them gives the same HTML as rendering the whole text (tests/unit/test_heavy.py).

`plan` returns None when the message can't be formatted within budget: over
`MAX_RENDER_CHARS` in all, a block (a paragraph, a list) that can't be cut and costs more
than `MAX_BLOCK_COST` to render (`block_cost`: its length plus `SPECIAL_COST` for each
character that can start inline Markdown, which is where markdown-it spends its time), a
code block over `MAX_FENCE_CHARS`, tables of more than `MAX_TABLE_ROWS` rows (laying out
a 1,000-row table alone takes ~250 ms here), or link reference definitions (they reach
across chunks). Such a message stays plain text with `TOO_LONG_NOTE`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

__all__ = ["CHUNK_CHARS", "MAX_BLOCK_COST", "MAX_FENCE_CHARS", "MAX_RENDER_CHARS",
           "MAX_TABLE_ROWS", "PENDING_ATTR", "SYNC_CHARS", "TOO_LONG_NOTE", "Chunk", "Plan",
           "block_cost", "is_heavy", "merge", "plain_html", "plain_pieces", "plan"]

SYNC_CHARS = 5_000
"""Up to this many characters a message's Markdown is rendered at once (≈ 50 ms at most)."""
CHUNK_CHARS = 3_000
"""Target size of one chunk (one task's rendering)."""
MAX_BLOCK_COST = 60_000
"""A block that can't be cut renders in one task: at most this costly (`block_cost`).
Measured with markdown-it-py in CPython, ~0.3 µs a unit for prose dense with Markdown
(0.07 µs a character for plain words), Pyodide 3-4 times slower: ≤ ~60 ms in the page."""
SPECIAL_COST = 40
MAX_FENCE_CHARS = 50_000
"""Code blocks are cheap to render (no inline parsing): one can be this long."""
MAX_RENDER_CHARS = 100_000
MAX_TABLE_ROWS = 300
PIECE_CHARS = 4_000
"""Plain text over PIECES_FROM is shown in pieces of about this size, each laid out only
when on screen (CSS content-visibility; until then it has no innerText)."""
PIECES_FROM = 20_000
PART_CHARS = 20_000
"""Rendered HTML is inserted in parts of about this size (when there are several, each is
laid out only when on screen)."""

TOO_LONG_NOTE = "Shown as plain text: this reply is too long to format."
PENDING_ATTR = 'data-render="pending"'
"""Marks plain text that its rendered HTML will replace."""

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_LIST_OR_INDENT = re.compile(r"(\s|[-*+](\s|$)|\d{1,9}[.)](\s|$))")
_REFERENCE = re.compile(r" {0,3}\[[^\]]+\]:")
_DELIMITER_ROW = re.compile(r" {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_ROW = re.compile(r" {0,3}\|")
_SPECIAL = re.compile(r"[*_`\[\]<>&!~\\]")


@dataclass(frozen=True)
class Chunk:
    text: str
    continues_table: bool = False
    """Rendered under the table's header: only its body rows are kept (see `merge`)."""


@dataclass(frozen=True)
class Plan:
    chunks: tuple[Chunk, ...]


def is_heavy(text: str) -> bool:
    return len(text) > SYNC_CHARS


def block_cost(text: str) -> int:
    """Rendering cost estimate: characters, and more for each that can start inline
    Markdown (emphasis, code, links, entities, escapes)."""
    return len(text) + SPECIAL_COST * len(_SPECIAL.findall(text))


def _blocks(lines: list[str]) -> list[tuple[int, int, bool]]:
    """(start, end, all in a code fence) line ranges, cut where cutting changes nothing."""
    blocks: list[tuple[int, int, bool]] = []
    start = 0
    fence: str | None = None
    fenced = True  # every line of the current block is inside a fence (so far)
    for i, line in enumerate(lines):
        if fence is None and i > start and not lines[i - 1].strip() and line.strip() \
                and not _LIST_OR_INDENT.match(line):
            blocks.append((start, i, fenced))
            start, fenced = i, True
        opening = _FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening.group(1)
            elif line.strip():
                fenced = False
        elif opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(
                fence) and not line[opening.end():].strip():
            fence = None
    blocks.append((start, len(lines), fenced))
    return blocks


def _table(lines: list[str]) -> int | None:
    """The index of a block's table header when the block ends with a pipe table whose
    rows all start with "|" (so none can end it), else None."""
    for k in range(1, len(lines)):
        if _DELIMITER_ROW.match(lines[k]) and "|" in lines[k] and "|" in lines[k - 1]:
            rows = [line for line in lines[k + 1:] if line.strip()]
            if rows and all(_ROW.match(line) for line in rows):
                return k - 1
            return None
    return None


def plan(text: str, chunk_chars: int = CHUNK_CHARS) -> Plan | None:
    """The chunks to render `text` in, or None if it is too large to format in budget."""
    if len(text) > MAX_RENDER_CHARS:
        return None
    lines = text.split("\n")
    if any(_REFERENCE.match(line) for line in lines):
        return None
    chunks: list[Chunk] = []
    current: list[str] = []
    size = 0
    rows_total = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            chunks.append(Chunk("\n".join(current)))
        current, size = [], 0

    for start, end, fenced in _blocks(lines):
        block = lines[start:end]
        length = sum(len(line) + 1 for line in block)
        header = _table(block) if length > chunk_chars else None
        if header is not None:
            head = block[header:header + 2]
            rows = block[header + 2:]
            tail = []  # the blank lines after the table
            while rows and not rows[-1].strip():
                tail.insert(0, rows.pop())
            rows_total += len(rows)
            if rows_total > MAX_TABLE_ROWS:
                return None
            # The first group goes with what precedes the table; later ones stand alone.
            group: list[str] = [*block[:header + 2]]
            group_size = sum(len(line) + 1 for line in group)
            if size and size + group_size > chunk_chars:
                flush()
            in_group = 0
            first = True
            for row in rows:
                if in_group and group_size + len(row) > chunk_chars:
                    if first:
                        current.extend(group)
                        flush()
                        first = False
                    else:
                        chunks.append(Chunk("\n".join(group), continues_table=True))
                    group, group_size, in_group = [*head], sum(len(h) + 1 for h in head), 0
                group.append(row)
                group_size += len(row) + 1
                in_group += 1
            group.extend(tail)
            if first:
                current.extend(group)
                flush()
            else:
                chunks.append(Chunk("\n".join(group), continues_table=True))
            continue
        if (length > MAX_FENCE_CHARS if fenced
                else length > chunk_chars and block_cost("\n".join(block)) > MAX_BLOCK_COST):
            return None
        rows_total += sum(1 for line in block if _ROW.match(line))
        if rows_total > MAX_TABLE_ROWS:
            return None
        if size and size + length > chunk_chars:
            flush()
        current.extend(block)
        size += length
    flush()
    return Plan(tuple(chunks))


def merge(parts: list[str], chunk: Chunk, html: str, part_chars: int = PART_CHARS) -> None:
    """Add one chunk's rendered HTML to `parts`: a table's later rows into its table,
    other HTML into the last part, or a new part once that one is `part_chars` long."""
    if chunk.continues_table and parts:
        body_start = html.find("<tbody>\n")
        body_end = html.rfind("</tbody>")
        cut = parts[-1].rfind("</tbody>")
        if body_start >= 0 and body_end > body_start and cut >= 0:
            rows = html[body_start + len("<tbody>\n"):body_end]
            parts[-1] = parts[-1][:cut] + rows + parts[-1][cut:]
            return
    if parts and len(parts[-1]) < part_chars:
        parts[-1] += html
    else:
        parts.append(html)


def plain_pieces(text: str, piece_chars: int = PIECE_CHARS) -> list[str]:
    """`text` in consecutive pieces of at most about `piece_chars`, each ending after a
    line break or a space when there is one (joined, they are `text` exactly)."""
    pieces = []
    start = 0
    while len(text) - start > piece_chars:
        end = start + piece_chars
        cut = text.rfind("\n", start + piece_chars // 2, end)
        if cut < 0:
            cut = text.rfind(" ", start + piece_chars // 2, end)
        end = cut + 1 if cut >= 0 else end
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def plain_html(text: str, pending: bool = False, note: str | None = None) -> str:
    """Escaped plain text in pieces; `pending`: its rendered HTML will replace it."""
    mark = f" {PENDING_ATTR}" if pending else ""
    body = escape(text) if len(text) <= PIECES_FROM else "".join(
        f'<div class="plain-piece">{escape(p)}</div>' for p in plain_pieces(text))
    out = f'<div class="plain-text"{mark}>{body}</div>'
    if note:
        out += f'<p class="record-note">{escape(note)}</p>'
    return out
