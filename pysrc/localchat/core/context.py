"""Fitting a conversation's history into a model's context window.

WebLLM refuses a prompt longer than the model's context window
(`ContextWindowSizeExceededError`). The history sent to the engine is trimmed first:
oldest turns go first, system messages are always kept, and the newest user message is
always kept (shortened from the front only if it alone cannot fit). Token counts are
estimated from characters; the estimate errs on the large side so the engine's real
tokenizer count stays below the window: Llama-3's tokenizer makes about one token of
each CJK character and more of emoji (shared/notes/real-path.md), so every character from
U+1100 on (Hangul, CJK, kana, emoji, …) counts as a whole token, and the rest as a third.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CHARS_PER_TOKEN", "FittedHistory", "estimate_tokens", "fit_history"]

CHARS_PER_TOKEN = 3.0
"""Conservative: English averages about 4 characters per Llama-3 token."""
MESSAGE_OVERHEAD = 8
"""Tokens the chat template adds around each message."""


WIDE_FROM = 0x1100
"""Characters from here on count as one token each (Hangul Jamo is the first such block)."""


def _char_tokens(text: str) -> float:
    wide = sum(1 for ch in text if ord(ch) >= WIDE_FROM)
    return wide + (len(text) - wide) / CHARS_PER_TOKEN


def estimate_tokens(text: str) -> int:
    return int(_char_tokens(text)) + 1 + MESSAGE_OVERHEAD


def _tail_within(text: str, tokens: float) -> str:
    """The longest end of `text` whose characters cost at most `tokens`."""
    cost = 0.0
    start = len(text)
    while start > 0:
        step = 1.0 if ord(text[start - 1]) >= WIDE_FROM else 1 / CHARS_PER_TOKEN
        if cost + step > tokens:
            break
        cost += step
        start -= 1
    return text[start:]


@dataclass(frozen=True)
class FittedHistory:
    messages: tuple[dict[str, str], ...]
    dropped: int
    """How many earlier messages were left out."""
    shortened: bool = False
    """The newest message alone was too long and was cut from the front."""


def fit_history(history: Sequence[dict[str, str]], context_window: int,
                reserve: int) -> FittedHistory:
    """The newest part of `history` whose estimated size leaves `reserve` tokens free.

    `history` is a list of {"role", "content"} dicts, oldest first; the last one is the
    message being answered.
    """
    budget = max(1, context_window - reserve)
    system = [m for m in history if m.get("role") == "system"]
    turns = [m for m in history if m.get("role") != "system"]
    used = sum(estimate_tokens(m["content"]) for m in system)
    kept: list[dict[str, str]] = []
    for message in reversed(turns):
        cost = estimate_tokens(message["content"])
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    shortened = False
    if not kept and turns:
        newest = turns[-1]
        room = max(0, budget - used - MESSAGE_OVERHEAD - 1)
        kept = [{**newest, "content": _tail_within(newest["content"], room)}]
        shortened = True
    # A reply must follow a user turn: drop a leading assistant message.
    while len(kept) > 1 and kept[0].get("role") == "assistant":
        kept.pop(0)
    dropped = len(turns) - len(kept)
    return FittedHistory((*system, *kept), dropped, shortened)
