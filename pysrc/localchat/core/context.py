"""Fitting a conversation's history into a model's context window.

WebLLM refuses a prompt longer than the model's context window
(`ContextWindowSizeExceededError`). The history sent to the engine is trimmed first:
oldest turns go first, system messages are always kept, and the newest user message is
always kept (shortened from the front only if it alone cannot fit). Token counts are
estimated from characters; the estimate errs on the large side so the engine's real
tokenizer count stays below the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CHARS_PER_TOKEN", "FittedHistory", "estimate_tokens", "fit_history"]

CHARS_PER_TOKEN = 3.0
"""Conservative: English averages about 4 characters per Llama-3 token."""
MESSAGE_OVERHEAD = 8
"""Tokens the chat template adds around each message."""


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1 + MESSAGE_OVERHEAD


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
        room = max(0, int((budget - used - MESSAGE_OVERHEAD - 1) * CHARS_PER_TOKEN))
        kept = [{**newest, "content": newest["content"][-room:] if room else ""}]
        shortened = True
    # A reply must follow a user turn: drop a leading assistant message.
    while len(kept) > 1 and kept[0].get("role") == "assistant":
        kept.pop(0)
    dropped = len(turns) - len(kept)
    return FittedHistory((*system, *kept), dropped, shortened)
