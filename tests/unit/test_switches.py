"""A switch of the chat engine is announced only when the user asked for that model."""

from __future__ import annotations

from localchat.core.switches import SwitchNotices


def test_a_load_nobody_asked_for_is_not_news() -> None:
    notices = SwitchNotices()
    # The page opened, or another chat was opened: its stored model loads.
    assert not notices.worth_announcing("smart", "smart")
    assert not notices.worth_announcing("quick", "quick")


def test_a_chosen_model_is_announced_once_when_it_is_in_use() -> None:
    notices = SwitchNotices()
    notices.asked("genius")
    assert notices.worth_announcing("genius", "genius")
    # Opening a chat that uses Genius later loads it again: not news.
    assert not notices.worth_announcing("genius", "genius")


def test_a_model_the_open_chat_no_longer_asks_for_is_not_announced() -> None:
    notices = SwitchNotices()
    notices.asked("quick")
    assert not notices.worth_announcing("quick", "smart")  # the user changed their mind
    # … and chose it again: it is announced when it is in use.
    assert notices.worth_announcing("quick", "quick")
