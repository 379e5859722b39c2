"""The fakes in tests/fakes.py keep to the ports they stand in for."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from localchat import ports
from localchat.core.conversation import Conversation, Message, Role
from localchat.core.errors import StoreFailure
from tests.fakes import (
    FakeClock,
    FakeDownloadRecords,
    FakeEngine,
    FakeModelHost,
    FakeRuntime,
    FakeStore,
)


def _members(protocol: type) -> dict[str, object]:
    names = {n for n in vars(protocol) if not n.startswith("_")}
    for base in protocol.__mro__[1:]:
        if getattr(base, "_is_protocol", False) and base is not protocol:
            names |= {n for n in vars(base) if not n.startswith("_")}
    return {n: inspect.getattr_static(protocol, n) for n in names}


@pytest.mark.parametrize("protocol, fake", [
    (ports.ConversationStore, FakeStore),
    (ports.ModelEngine, FakeEngine),
    (ports.ModelRuntime, FakeRuntime),
    (ports.DownloadRecords, FakeDownloadRecords),
    (ports.FileTransport, FakeModelHost),
    (ports.Clock, FakeClock),
])
def test_fake_has_every_member_of_its_port(protocol: type, fake: type) -> None:
    members = _members(protocol)
    assert members
    for name, member in members.items():
        ours = inspect.getattr_static(fake, name, None)
        assert ours is not None, f"{fake.__name__} lacks {name}"
        if isinstance(member, property):
            assert isinstance(ours, property), name
            continue
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(member), name
        assert list(inspect.signature(ours).parameters) == \
            list(inspect.signature(member).parameters), name


def test_fake_store_refuses_duplicates_and_fails_on_request() -> None:
    async def scenario() -> FakeStore:
        store = FakeStore()
        chat = Conversation("c1", "T", "smart", 1, 1)
        await store.add_conversation(chat)
        with pytest.raises(StoreFailure) as duplicate:
            await store.add_conversation(chat)
        assert duplicate.value.name == "ConstraintError"
        store.fail("get_messages", failure=StoreFailure("UnknownError", "x"), times=1)
        with pytest.raises(StoreFailure):
            await store.get_messages("c1")
        assert await store.get_messages("c1") == []
        await store.add_message(Message("m1", "c1", Role.USER, "hi", None, 5), 9)
        assert store.conversation_records["c1"]["updatedAt"] == 9
        await store.delete_conversation("c1")
        return store

    store = asyncio.run(scenario())
    assert store.conversation_records == {}
    assert store.message_records == {}


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(1000, step_ms=5)
    assert [clock.now_ms(), clock.now_ms()] == [1000, 1005]
    clock.advance(100)
    assert clock.now_ms() == 1110
