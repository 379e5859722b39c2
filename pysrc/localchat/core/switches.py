"""Whether a switch of the chat engine is news to this tab's user.

The engine loads a model for many reasons: the page was opened, another chat was opened,
a reply needed the model, or the user chose a model or asked for its download. Only the
last is worth a "Now using Smart." (the selector already shows the model of the open chat);
announcing every load made the toast appear on every reload and chat switch.

    notices = SwitchNotices()
    notices.asked("genius")                 # the user chose Genius in this tab
    notices.worth_announcing("genius", "genius")  # → True once, when Genius is in use
"""

from __future__ import annotations

__all__ = ["SwitchNotices"]


class SwitchNotices:
    """The models the user of this tab asked for (chose, downloaded, retried) and has not
    yet been told are in use."""

    def __init__(self) -> None:
        self._asked: set[str] = set()

    def asked(self, key: str) -> None:
        """The user chose `key` for the open chat, or asked for its download."""
        self._asked.add(key)

    def worth_announcing(self, key: str, requested_key: str) -> bool:
        """The engine now answers with `key`: True (once) when the user asked for it and
        the open chat still asks for it."""
        if key not in self._asked:
            return False
        if key != requested_key:
            return False  # kept: the chat that asked may be opened again before it loads
        self._asked.discard(key)
        return True
