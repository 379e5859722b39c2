"""StateBox: one immutable AppState, swapped on update, announced to listeners."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from localchat.core.conversation import Conversation
from localchat.core.settings import EngineKind
from localchat.core.state import AppState, StateBox


def test_the_initial_state() -> None:
    state = StateBox().state
    assert state.engine_choice.kind is EngineKind.WEBLLM
    assert state.conversations == ()
    assert not state.conversations_loaded
    assert state.active_id is None
    assert state.new_chat_model == "smart"
    assert state.engine.loaded_model is None


def test_a_given_initial_state_is_kept() -> None:
    initial = AppState(replying=True)
    assert StateBox(initial).state is initial


def test_update_swaps_in_a_new_state_and_returns_it() -> None:
    box = StateBox()
    before = box.state
    after = box.update(replying=True, context_dropped=3)
    assert box.state is after
    assert after is not before
    assert (after.replying, after.context_dropped) == (True, 3)
    assert (before.replying, before.context_dropped) == (False, 0)


def test_states_are_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        StateBox().state.replying = True  # type: ignore[misc]


def test_listeners_get_old_and_new_state_in_subscription_order() -> None:
    box = StateBox()
    seen: list[tuple[str, bool, bool]] = []
    box.subscribe(lambda old, new: seen.append(("a", old.replying, new.replying)))
    box.subscribe(lambda old, new: seen.append(("b", old.replying, new.replying)))
    box.update(replying=True)
    box.update(replying=False)
    assert seen == [("a", False, True), ("b", False, True), ("a", True, False),
                    ("b", True, False)]


def test_listeners_see_the_new_state_in_the_box() -> None:
    box = StateBox()
    seen = []
    box.subscribe(lambda old, new: seen.append(box.state is new))
    box.update(active_id="c1")
    assert seen == [True]


def test_unsubscribe_stops_announcements() -> None:
    box = StateBox()
    calls: list[str | None] = []
    unsubscribe = box.subscribe(lambda old, new: calls.append(new.active_id))
    box.update(active_id="one")
    unsubscribe()
    box.update(active_id="two")
    assert calls == ["one"]


def test_a_listener_may_unsubscribe_while_being_called() -> None:
    box = StateBox()
    calls: list[str] = []
    unsubscribe = box.subscribe(lambda old, new: (calls.append("first"), unsubscribe()))
    box.subscribe(lambda old, new: calls.append("second"))
    box.update(replying=True)
    box.update(replying=False)
    assert calls == ["first", "second", "second"]


def test_an_unknown_field_is_refused_and_nothing_changes() -> None:
    box = StateBox()
    calls = []
    box.subscribe(lambda old, new: calls.append(new))
    before = box.state
    with pytest.raises(TypeError):
        box.update(no_such_field=1)
    assert box.state is before
    assert calls == []


def _conversation(cid: str, model: str) -> Conversation:
    return Conversation(cid, cid, model, 1, 1)


def test_active_is_the_conversation_with_the_active_id() -> None:
    state = AppState(conversations=(_conversation("a", "quick"), _conversation("b", "genius")),
                     active_id="b")
    assert state.active is not None
    assert state.active.id == "b"
    assert AppState(conversations=state.conversations, active_id="zzz").active is None


def test_requested_model_is_the_new_chats_choice_without_an_active_chat() -> None:
    assert AppState(new_chat_model="quick").requested_model_key == "quick"


def test_requested_model_is_the_active_conversations_model() -> None:
    state = AppState(conversations=(_conversation("a", "genius"),), active_id="a",
                     new_chat_model="quick")
    assert state.requested_model_key == "genius"


def test_an_unknown_model_asks_for_the_default() -> None:
    state = AppState(conversations=(_conversation("a", "gpt-9"),), active_id="a")
    assert state.requested_model_key == "smart"
