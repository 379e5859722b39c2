"""Fitting history into the context window (core/context.py): the estimate must never be
below what a real tokenizer counts, for CJK text above all (about one token a character)."""

from __future__ import annotations

import math
import random

import pytest

from localchat.core.context import MESSAGE_OVERHEAD, estimate_tokens, fit_history


def strict_count(text: str) -> int:
    """The simulated engine's count (stricter than WebLLM's for CJK): one token per Han,
    kana or Hangul character, a quarter per other character."""
    cjk = sum(1 for ch in text if "\u1100" <= ch <= "\u11ff" or "\u3040" <= ch <= "\u30ff"
              or "\u3400" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    return cjk + math.ceil((len(text) - cjk) / 4)


def test_cjk_characters_count_as_a_token_each() -> None:
    assert estimate_tokens("世" * 3000) == 3000 + 1 + MESSAGE_OVERHEAD
    assert estimate_tokens("한국어" * 100) == 300 + 1 + MESSAGE_OVERHEAD
    assert estimate_tokens("a" * 3000) == 1000 + 1 + MESSAGE_OVERHEAD


@pytest.mark.parametrize("seed", range(20))
def test_the_estimate_is_never_below_a_strict_count(seed: int) -> None:
    rnd = random.Random(seed)
    alphabet = "abc de,.\n世界こんにちはカタカナ한국😀"
    text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 5000)))
    assert estimate_tokens(text) >= strict_count(text)


def test_a_cjk_history_is_trimmed_to_what_really_fits() -> None:
    block = "漢字" * 1500  # 3,000 characters: 3,000 tokens, not 1,000
    history = [{"role": "user", "content": block}, {"role": "assistant", "content": block},
               {"role": "user", "content": block}]
    fitted = fit_history(history, 4096, 1024)
    assert fitted.dropped == 2
    assert sum(strict_count(m["content"]) for m in fitted.messages) <= 4096 - 1024


def test_a_cjk_message_longer_than_the_window_keeps_an_end_that_fits() -> None:
    text = "始" + "中" * 9000 + "終"
    fitted = fit_history([{"role": "user", "content": text}], 4096, 1024)
    assert fitted.shortened
    kept = fitted.messages[0]["content"]
    assert kept.endswith("終") and not kept.startswith("始")
    assert estimate_tokens(kept) <= 4096 - 1024
    assert len(kept) > 3000  # as much as fits, not a third of it
