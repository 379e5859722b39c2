"""Bounded rendering of heavy Markdown: chunks render to the same HTML as the whole text."""

from __future__ import annotations

import random

import pytest

from localchat.ui import heavy
from localchat.ui.markdown import MarkdownRenderer
from tests.unit.html_probe import elements, text


@pytest.fixture(scope="module")
def md() -> MarkdownRenderer:
    renderer = MarkdownRenderer.create()
    assert renderer is not None
    return renderer


def rendered_in_chunks(md: MarkdownRenderer, source: str, chunk_chars: int,
                       part_chars: int = 200) -> list[str]:
    p = heavy.plan(source, chunk_chars)
    assert p is not None
    parts: list[str] = []
    for chunk in p.chunks:
        heavy.merge(parts, chunk, md.render(chunk.text), part_chars)
    return parts


def table(rows: int, align: str = "|---|--:|") -> str:
    return "\n".join(["| name | value |", align]
                     + [f"| **row {i}** | `{i * 7}` |" for i in range(rows)])


SAMPLES = [
    "# Title\n\nSome *text* here.\n\n- a\n- b\n\n  still b\n\n- c\n\n1. one\n\n2. two\n",
    "Intro\n\n```python\nx = 1\n\n\ny = 2\n```\n\nAfter the fence.\n\n    indented\n\n    code\n",
    "Here is a table:\n" + table(40) + "\n\nAnd text after it.\n\n" + table(25, "|:-:|---|"),
    "> quoted\n\n> again\n\npara **bold\n\nnot closed** end\n\n~~~\nunclosed fence\n\nstill code",
    "Setext\n======\n\n---\n\n* star list\n\n+ plus list\n\n" + "word " * 300,
]


@pytest.mark.parametrize("source", SAMPLES)
@pytest.mark.parametrize("chunk_chars", [20, 80, 400])
def test_chunks_render_to_the_same_html_as_the_whole(md: MarkdownRenderer, source: str,
                                                     chunk_chars: int) -> None:
    assert "".join(rendered_in_chunks(md, source, chunk_chars)) == md.render(source)


def test_random_documents_render_the_same_in_chunks(md: MarkdownRenderer) -> None:
    rng = random.Random(14)
    pieces = ["para with *em* and `code`", "- item", "  continued", "1. first", "",
              "```", "    indented", "> quote", "| a | b |", "|---|---|", "| 1 | 2 |",
              "# head", "text **bold**", "~~~", "***"]
    for _ in range(300):
        source = "\n".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        for chunk_chars in (10, 60):
            assert "".join(rendered_in_chunks(md, source, chunk_chars)) == md.render(
                source), source


def test_a_large_table_is_cut_by_rows_into_one_table(md: MarkdownRenderer) -> None:
    source = table(250)
    p = heavy.plan(source)
    assert p is not None and len(p.chunks) > 2
    assert all(len(c.text) <= heavy.CHUNK_CHARS for c in p.chunks)
    assert [c.continues_table for c in p.chunks[1:]] == [True] * (len(p.chunks) - 1)
    html = "".join(rendered_in_chunks(md, source, heavy.CHUNK_CHARS))
    assert [e.tag for e in elements(html)].count("table") == 1
    assert [e.tag for e in elements(html)].count("tr") == 251


def test_chunks_stay_within_their_size() -> None:
    source = "\n\n".join(f"Paragraph {i} " + "words " * 100 for i in range(120))
    p = heavy.plan(source)
    assert p is not None
    assert all(len(c.text) <= heavy.CHUNK_CHARS for c in p.chunks)
    assert "\n".join(c.text for c in p.chunks) == source


@pytest.mark.parametrize("source", [
    "word " * 40_000,  # one 200 KB line: one block that can't be cut
    table(10_000),  # a table too large to lay out in budget
    "x\n\n" * 60_000,  # over the total limit
    "[ref]: https://example.org\n\n" + "see [ref]\n\n" * 1_000,  # references span chunks
    "```\n" + "code line\n" * 6_000 + "```",  # a code block over its limit
])
def test_too_large_to_format_in_budget(source: str) -> None:
    assert heavy.plan(source) is None


def test_a_long_paragraph_of_plain_words_is_formatted_one_dense_with_markdown_is_not(
        ) -> None:
    plain = " ".join(["the", "model", "wrote", "this"] * 2_500)  # 10 KB, one paragraph
    p = heavy.plan(plain)
    assert p is not None and [c.text for c in p.chunks] == [plain]
    dense = " ".join(["**the**", "`model`", "*wrote*", "[this](https://example.org)"] * 500)
    assert heavy.block_cost(dense) > heavy.MAX_BLOCK_COST
    assert heavy.plan(dense) is None


def test_a_long_code_block_is_one_chunk_it_renders_fast() -> None:
    source = "```\n" + "code line\n" * 2_000 + "```"
    p = heavy.plan(source)
    assert p is not None and len(p.chunks) == 1


def test_small_messages_are_not_heavy() -> None:
    assert not heavy.is_heavy("x" * heavy.SYNC_CHARS)
    assert heavy.is_heavy("x" * (heavy.SYNC_CHARS + 1))


@pytest.mark.parametrize("source", ["word " * 5_000, "line\n" * 3_000, "x" * 9_999, "", "a"])
def test_plain_pieces_join_to_the_text_and_stay_small(source: str) -> None:
    pieces = heavy.plain_pieces(source)
    assert "".join(pieces) == source
    assert all(len(p) <= heavy.PIECE_CHARS for p in pieces)
    if "\n" in source:
        assert all(p.endswith("\n") for p in pieces[:-1])


@pytest.mark.parametrize("size", [1_000, 10_000])  # 10 KB and 100 KB: in pieces
def test_plain_html_is_escaped_marked_and_noted(size: int) -> None:
    html = heavy.plain_html("<b>hi</b> " * size, pending=True)
    assert "<b>" not in html and heavy.PENDING_ATTR in html
    assert text(html) == "<b>hi</b> " * size
    assert ("plain-piece" in html) == (size * 10 > heavy.PIECES_FROM)
    noted = heavy.plain_html("<b>x</b>", note=heavy.TOO_LONG_NOTE)
    assert heavy.PENDING_ATTR not in noted and text(noted).endswith(heavy.TOO_LONG_NOTE)
