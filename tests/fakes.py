"""Working in-memory fakes of the ports in pysrc/localchat/ports.py, for CPython tests.

- `FakeStore` (ConversationStore): keeps camelCase records like IndexedDB does and decodes
  them with the core's tolerant decoders; `fail()` makes chosen methods raise StoreFailure.
  `tab()` gives one tab's view of it (`FakeTabStore`): its successful writes are
  announced to the other tabs' `on_notice` listeners, as db-bridge.js does on its
  BroadcastChannel. `FakeLocks` are Web Locks shared by such tabs (`tab_locks()`).
- `FakeEngine` (ModelEngine): scripted replies streamed as deltas, WebLLM's progress of a
  load from the cache (a load whose files are not all stored fails: WebLLM would
  download them itself), interrupt (optionally pausing mid-reply so a test can stop it),
  a load that holds at a chosen report until released, failures, a lost GPU device, and
  `terminate()` that stops every pending call with EngineTerminated like the real worker.
- `FakeModelHost` (FileTransport): a model host with real-looking files and faults, and
  the browser caches the download worker stores into.
- `FakeRuntime` (ModelRuntime) and `FakeDownloadRecords` (DownloadRecords), which the
  ModelService behind ChatService needs.
- `FakeClock` (Clock).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from localchat.core.conversation import (
    Conversation,
    Message,
    conversation_from_record,
    conversation_to_record,
    key_alias,
    message_from_record,
    message_to_record,
)
from localchat.core.downloader import (
    CONFIG_CACHE,
    MODEL_CACHE,
    WASM_CACHE,
    FailureKind,
    FetchedFile,
    FetchFailure,
    FileCheck,
    FileRequest,
    ModelSource,
)
from localchat.core.errors import CONVERSATION_DELETED, EngineFailure, StoreFailure
from localchat.ports import BytesCallback, ChatResult, DeltaCallback, ProgressCallback

__all__ = [
    "WEBLLM_LOAD_REPORTS",
    "FakeClock",
    "FakeDownloadRecords",
    "FakeEngine",
    "FakeLocks",
    "FakeModelHost",
    "FakeRuntime",
    "FakeStore",
    "FakeTabStore",
]

# What WebLLM 0.2.86 reports while loading a model whose files are all in the cache.
WEBLLM_LOAD_REPORTS: tuple[tuple[float, str], ...] = (
    (0.0, "Start to fetch params"),
    (0.5, "Loading model from cache[1/2]: 600MB loaded. 50% completed, 1 secs elapsed."),
    (1.0, "Loading model from cache[2/2]: 1200MB loaded. 100% completed, 2 secs elapsed."),
    (0.5, "Loading GPU shader modules[48/96]: 50% completed, 3 secs elapsed."),
    (1.0, "Loading GPU shader modules[96/96]: 100% completed, 4 secs elapsed."),
    (1.0, "Finish loading on WebGPU - fake gpu"),
)


class FakeClock:
    """Epoch-ms time that moves only when told to (or by `step_ms` on every reading)."""

    def __init__(self, now_ms: int = 1_700_000_000_000, step_ms: int = 0) -> None:
        self._now = now_ms
        self.step_ms = step_ms

    def now_ms(self) -> int:
        now = self._now
        self._now += self.step_ms
        return now

    def advance(self, ms: int) -> None:
        self._now += ms


class _Failures:
    """Which methods fail, with what, and how many more times (None: always)."""

    def __init__(self) -> None:
        self._plan: dict[str, tuple[Exception, int | None]] = {}

    def set(self, methods: Sequence[str], failure: Exception, times: int | None) -> None:
        for method in methods:
            self._plan[method] = (failure, times)

    def clear(self) -> None:
        self._plan.clear()

    def check(self, method: str) -> None:
        if method not in self._plan:
            return
        failure, times = self._plan[method]
        if times is not None:
            if times <= 1:
                del self._plan[method]
            else:
                self._plan[method] = (failure, times - 1)
        raise failure


class FakeStore:
    """In-memory ConversationStore with Dexie's semantics (see web/js/db-bridge.js).

    `add_*` refuses an id that exists (ConstraintError), `add_message` sets the
    conversation's updatedAt when asked, deleting a conversation deletes its messages,
    and an import is all or nothing. Records are kept by their app id (a numeric key
    under its `key_alias`), and a message belongs to the conversation its conversationId
    aliases to, as in the Dexie adapter. `list_conversations` returns insertion order (the
    protocol promises no order). Every call is logged in `calls` as (method, args).
    """

    def __init__(self, conversations: Sequence[Conversation] = (),
                 messages: Sequence[Message] = ()) -> None:
        self.conversation_records: dict[str, dict[str, Any]] = {}
        self.message_records: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.opened = False
        self._failures = _Failures()
        self._tabs: list[FakeTabStore] = []
        self._taken: dict[str, _Taken] = {}
        for c in conversations:
            self.conversation_records[c.id] = conversation_to_record(c)
        for m in messages:
            self.message_records[m.id] = message_to_record(m)

    # --- test controls --------------------------------------------------------------

    def fail(self, *methods: str, failure: StoreFailure, times: int | None = None) -> None:
        """Make these methods raise `failure` (the next `times` calls; None: every call)."""
        self._failures.set(methods, failure, times)

    def heal(self) -> None:
        self._failures.clear()

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    def messages_of(self, conversation_id: str) -> list[dict[str, Any]]:
        records = [r for r in self.message_records.values()
                   if key_alias(r["conversationId"]) == conversation_id]
        return sorted(records, key=lambda r: r.get("createdAt")
                      if isinstance(r.get("createdAt"), (int, float)) else 0)

    async def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        await asyncio.sleep(0)  # like IndexedDB, every call gives other tasks a turn
        self._failures.check(method)

    # --- ConversationStore ------------------------------------------------------------

    async def open(self) -> None:
        await self._enter("open")
        self.opened = True

    async def list_conversations(self) -> list[Conversation]:
        await self._enter("list_conversations")
        decoded = (conversation_from_record(dict(r))
                   for r in self.conversation_records.values())
        return [c for c in decoded if c is not None]

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        await self._enter("get_conversation", conversation_id)
        record = self.conversation_records.get(conversation_id)
        return conversation_from_record(dict(record)) if record is not None else None

    async def get_message(self, message_id: str) -> Message | None:
        await self._enter("get_message", message_id)
        record = self.message_records.get(message_id)
        return message_from_record(dict(record)) if record is not None else None

    async def get_messages(self, conversation_id: str) -> list[Message]:
        await self._enter("get_messages", conversation_id)
        decoded = (message_from_record(dict(r)) for r in self.messages_of(conversation_id))
        return [m for m in decoded if m is not None]

    async def add_conversation(self, conversation: Conversation) -> None:
        await self._enter("add_conversation", conversation)
        if conversation.id in self.conversation_records:
            raise StoreFailure("ConstraintError", f"Key {conversation.id} already exists")
        self.conversation_records[conversation.id] = conversation_to_record(conversation)

    async def add_message(self, message: Message, touch_updated_at: int | None) -> None:
        await self._enter("add_message", message, touch_updated_at)
        self._store_message(message, touch_updated_at, replace=False)

    async def put_message(self, message: Message, touch_updated_at: int | None) -> None:
        await self._enter("put_message", message, touch_updated_at)
        self._store_message(message, touch_updated_at, replace=True)

    def _store_message(self, message: Message, touch_updated_at: int | None,
                       replace: bool) -> None:
        conversation = self.conversation_records.get(message.conversation_id)
        if conversation is None:  # checked in the write's transaction, like db-bridge.js
            raise StoreFailure(CONVERSATION_DELETED,
                               f"The conversation {message.conversation_id} no longer exists")
        if message.id in self.message_records and not replace:
            raise StoreFailure("ConstraintError", f"Key {message.id} already exists")
        self.message_records[message.id] = message_to_record(message)
        if touch_updated_at is not None:
            conversation["updatedAt"] = touch_updated_at

    def tab(self) -> FakeTabStore:
        """One more tab's view of this store (see FakeTabStore)."""
        view = FakeTabStore(self)
        self._tabs.append(view)
        return view

    def _announce(self, origin: FakeTabStore, notice: dict[str, Any]) -> None:
        for view in self._tabs:
            if view is not origin:
                for listener in list(view.listeners):
                    listener(dict(notice))

    async def update_message(self, message: Message) -> None:
        await self._enter("update_message", message)
        if message.id in self.message_records:
            self.message_records[message.id] = message_to_record(message)

    async def delete_message(self, message_id: str) -> None:
        await self._enter("delete_message", message_id)
        self.message_records.pop(message_id, None)

    async def update_conversation(self, conversation_id: str, changes: dict[str, Any]) -> None:
        await self._enter("update_conversation", conversation_id, dict(changes))
        record = self.conversation_records.get(conversation_id)
        if record is not None:  # Dexie's update() of a missing key changes nothing
            record.update(changes)

    async def delete_conversation(self, conversation_id: str) -> None:
        await self._enter("delete_conversation", conversation_id)
        self.conversation_records.pop(conversation_id, None)
        for mid in [mid for mid, r in self.message_records.items()
                    if key_alias(r["conversationId"]) == conversation_id]:
            del self.message_records[mid]

    async def take_records(self, conversation_id: str) -> _Taken:
        """Delete a conversation and its messages; their records exactly as stored."""
        await self._enter("take_conversation", conversation_id)
        conversation = self.conversation_records.pop(conversation_id, None)
        mids = [mid for mid, r in self.message_records.items()
                if key_alias(r["conversationId"]) == conversation_id]
        messages = {mid: self.message_records.pop(mid) for mid in mids}
        return _Taken(conversation_id, json.loads(json.dumps(conversation)),
                      json.loads(json.dumps(messages)))

    async def put_records(self, taken: _Taken) -> None:
        """Put taken records back, all or nothing."""
        await self._enter("restore_conversation", taken.conversation_id)
        if (taken.conversation_id in self.conversation_records
                or any(mid in self.message_records for mid in taken.messages)):
            raise StoreFailure("BulkError", "Some keys already exist; nothing was added")
        if taken.conversation is not None:
            self.conversation_records[taken.conversation_id] = dict(taken.conversation)
        for mid, record in taken.messages.items():
            self.message_records[mid] = dict(record)

    async def take_conversation(self, conversation_id: str) -> None:
        self._taken[conversation_id] = await self.take_records(conversation_id)

    async def restore_conversation(self, conversation_id: str) -> bool:
        taken = self._taken.get(conversation_id)
        if taken is None:
            return False
        await self.put_records(taken)
        del self._taken[conversation_id]
        return True

    def forget_taken(self, conversation_id: str) -> None:
        self._taken.pop(conversation_id, None)

    async def import_conversations(self, conversations: list[Conversation],
                                   messages: list[Message]) -> None:
        await self._enter("import_conversations", conversations, messages)
        cids = [c.id for c in conversations]
        mids = [m.id for m in messages]
        clash = (len(set(cids)) != len(cids) or len(set(mids)) != len(mids)
                 or any(cid in self.conversation_records for cid in cids)
                 or any(mid in self.message_records for mid in mids))
        if clash:
            raise StoreFailure("BulkError", "Some keys already exist; nothing was added")
        for c in conversations:
            self.conversation_records[c.id] = conversation_to_record(c)
        for m in messages:
            self.message_records[m.id] = message_to_record(m)


@dataclass
class _Taken:
    """A taken conversation's records, as they were stored (by their app ids)."""

    conversation_id: str
    conversation: dict[str, Any] | None
    messages: dict[str, dict[str, Any]]


class FakeTabStore:
    """One tab's ConversationStore on a shared FakeStore: reads and writes go to it, and
    each successful write is announced to the other tabs' `listeners`, with db-bridge.js's
    notices ({"kind": "conversations", "ids": [...] | None} / {"kind": "messages",
    "conversationId": ..., "ids": [...]}); a tab never hears its own."""

    def __init__(self, shared: FakeStore) -> None:
        self.shared = shared
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._taken: dict[str, _Taken] = {}

    def on_notice(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self.listeners.append(listener)

    def _tell(self, *notices: dict[str, Any]) -> None:
        for notice in notices:
            self.shared._announce(self, notice)

    async def open(self) -> None:
        await self.shared.open()

    async def list_conversations(self) -> list[Conversation]:
        return await self.shared.list_conversations()

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        return await self.shared.get_conversation(conversation_id)

    async def get_messages(self, conversation_id: str) -> list[Message]:
        return await self.shared.get_messages(conversation_id)

    async def get_message(self, message_id: str) -> Message | None:
        return await self.shared.get_message(message_id)

    async def add_conversation(self, conversation: Conversation) -> None:
        await self.shared.add_conversation(conversation)
        self._tell({"kind": "conversations", "ids": [conversation.id]})

    def _message_notices(self, message: Message, touch: int | None) -> list[dict[str, Any]]:
        notices: list[dict[str, Any]] = [{"kind": "messages",
                                          "conversationId": message.conversation_id,
                                          "ids": [message.id]}]
        if touch is not None:
            notices.append({"kind": "conversations", "ids": [message.conversation_id]})
        return notices

    async def add_message(self, message: Message, touch_updated_at: int | None) -> None:
        await self.shared.add_message(message, touch_updated_at)
        self._tell(*self._message_notices(message, touch_updated_at))

    async def put_message(self, message: Message, touch_updated_at: int | None) -> None:
        await self.shared.put_message(message, touch_updated_at)
        self._tell(*self._message_notices(message, touch_updated_at))

    async def update_message(self, message: Message) -> None:
        await self.shared.update_message(message)
        self._tell({"kind": "messages", "conversationId": message.conversation_id,
                    "ids": [message.id]})

    async def delete_message(self, message_id: str) -> None:
        record = self.shared.message_records.get(message_id)
        await self.shared.delete_message(message_id)
        if record is not None:
            self._tell({"kind": "messages", "conversationId": record["conversationId"],
                        "ids": [message_id]})

    async def update_conversation(self, conversation_id: str, changes: dict[str, Any]) -> None:
        await self.shared.update_conversation(conversation_id, changes)
        self._tell({"kind": "conversations", "ids": [conversation_id]})

    async def delete_conversation(self, conversation_id: str) -> None:
        await self.shared.delete_conversation(conversation_id)
        self._tell({"kind": "conversations", "ids": [conversation_id]})

    async def take_conversation(self, conversation_id: str) -> None:
        self._taken[conversation_id] = await self.shared.take_records(conversation_id)
        self._tell({"kind": "conversations", "ids": [conversation_id]})

    async def restore_conversation(self, conversation_id: str) -> bool:
        taken = self._taken.get(conversation_id)
        if taken is None:
            return False
        await self.shared.put_records(taken)
        del self._taken[conversation_id]
        self._tell({"kind": "conversations", "ids": [conversation_id]},
                   {"kind": "messages", "conversationId": conversation_id, "ids": None})
        return True

    def forget_taken(self, conversation_id: str) -> None:
        self._taken.pop(conversation_id, None)

    async def import_conversations(self, conversations: list[Conversation],
                                   messages: list[Message]) -> None:
        await self.shared.import_conversations(conversations, messages)
        self._tell({"kind": "conversations", "ids": None})


class FakeLocks:
    """Web Locks of one browser profile, shared by its tabs: `tab_locks()` is one tab's
    ReplyLocks; `close_tab()` of it drops every lock that tab holds, as a closed tab does."""

    def __init__(self) -> None:
        self._held: dict[str, object] = {}
        self.changed = asyncio.Event()
        """Set (and cleared again) whenever a lock is let go."""

    def _let_go(self, message_id: str) -> None:
        del self._held[message_id]
        self.changed.set()
        self.changed = asyncio.Event()

    def tab_locks(self) -> _TabLocks:
        return _TabLocks(self)

    def holder(self, message_id: str) -> object | None:
        return self._held.get(message_id)


class _TabLocks:
    def __init__(self, locks: FakeLocks) -> None:
        self._locks = locks

    async def hold(self, message_id: str) -> Callable[[], None]:
        await asyncio.sleep(0)
        assert message_id not in self._locks._held, "a reply's lock is held once"
        self._locks._held[message_id] = self

        def release() -> None:
            if self._locks._held.get(message_id) is self:
                self._locks._let_go(message_id)

        return release

    async def held(self) -> set[str]:
        await asyncio.sleep(0)
        return set(self._locks._held)

    async def released(self, message_id: str) -> None:
        while message_id in self._locks._held:
            await self._locks.changed.wait()

    def close_tab(self) -> None:
        """This tab goes away (no pagehide save): every lock it holds is let go."""
        for mid in [m for m, owner in self._locks._held.items() if owner is self]:
            self._locks._let_go(mid)


class FakeEngine:
    """A ModelEngine that streams scripted replies.

    Each reply is a sequence of deltas (a plain string is one delta). `load` reports
    `load_reports` through the progress callback; with a `host` (attached by FakeRuntime)
    it fails at once unless every file of the model is stored there. With
    `load_failure`, the load raises it just before the first report starting with
    `load_failure_at`. With `hold_at`, the load stops just before the first report
    starting with that prefix (`holding` is set) until `release()` — or forever, which
    is a stalled download. With `pause_after=n`, a reply stops after n deltas until
    `interrupt()` (or `resume()`) is called, and `paused` is set meanwhile, so a test can
    press Stop at a known point. After an interrupt the reply ends with finish_reason
    "abort" and the text streamed so far. After `lose_device()` every reply fails with
    ModelNotLoadedError until the next load. `terminate()` works like the worker's:
    pending and later calls fail with EngineTerminated and nothing stays loaded.
    """

    def __init__(self, replies: Sequence[str | Sequence[str]] = ("Hello!",), *,
                 load_reports: Sequence[tuple[float, str]] = WEBLLM_LOAD_REPORTS,
                 load_failure: EngineFailure | None = None,
                 load_failure_at: str = "Loading model",
                 hold_at: str | None = None,
                 chat_failure: EngineFailure | None = None,
                 fail_after_deltas: int = 0,
                 pause_after: int | None = None,
                 usage: dict[str, Any] | None = None,
                 loaded_model: str | None = None,
                 finish_reasons: Sequence[str] = ()) -> None:
        self.replies = [[r] if isinstance(r, str) else list(r) for r in replies]
        self.finish_reasons = list(finish_reasons)
        """How the replies end, in order ("length": cut at the length limit); then "stop"."""
        self.load_reports = tuple(load_reports)
        self.load_failure = load_failure
        self.load_failure_at = load_failure_at
        self.hold_at = hold_at
        self.chat_failure = chat_failure
        self.fail_after_deltas = fail_after_deltas
        self.pause_after = pause_after
        self.usage = usage
        self.host: FakeModelHost | None = None
        self.crashed = False
        self._lost = False
        self._loaded = loaded_model
        self.loads: list[str] = []
        self.reports: list[str] = []
        """Texts reported so far by `load`, in order."""
        self.prompts: list[list[dict[str, str]]] = []
        self.interrupts = 0
        self.terminated = False
        self.paused = asyncio.Event()
        self.holding = asyncio.Event()
        self._resume = asyncio.Event()
        self._release = asyncio.Event()
        self._interrupted = False

    @property
    def loaded_model(self) -> str | None:
        return self._loaded

    def _check_alive(self) -> None:
        if self.crashed:
            raise EngineFailure("EngineWorkerError", "The engine worker failed: simulated crash.")
        if self.terminated:
            raise EngineFailure("EngineTerminated", "The engine was stopped.")

    async def load(self, model_id: str, on_progress: ProgressCallback) -> None:
        self._check_alive()
        self.loads.append(model_id)
        if self.host is not None:
            missing = [u for u in self.host.model_files(model_id)
                       if u not in self.host.stored_urls()]
            if missing:  # WebLLM would download them itself: never let that pass silently
                raise EngineFailure("NetworkError", f"reload() needed a download: {missing[0]}")
        held = False
        for fraction, text in self.load_reports:
            if self.hold_at is not None and not held and text.startswith(self.hold_at):
                held = True
                self.holding.set()
                await self._release.wait()
                self.holding.clear()
                self._check_alive()
            if self.load_failure is not None and text.startswith(self.load_failure_at):
                await asyncio.sleep(0)
                raise self.load_failure
            on_progress(fraction, text)
            self.reports.append(text)
            await asyncio.sleep(0)
            self._check_alive()
        if self.load_failure is not None:
            raise self.load_failure
        self._loaded = model_id
        self._lost = False

    def lose_device(self) -> None:
        """As WebLLM after device.lost: the model is gone, every request fails until a reload."""
        self._lost = True

    def release(self) -> None:
        """Let a load held at `hold_at` go on."""
        self._release.set()

    async def chat(self, messages: Sequence[dict[str, str]],
                   on_delta: DeltaCallback) -> ChatResult:
        self._check_alive()
        if self._lost:
            raise EngineFailure("ModelNotLoadedError", "Model not loaded before trying to "
                                "complete ChatCompletionRequest.")
        self.prompts.append([dict(m) for m in messages])
        self._interrupted = False
        self._resume.clear()
        self.paused.clear()
        if self.chat_failure is not None and self.fail_after_deltas == 0:
            raise self.chat_failure
        deltas = self.replies.pop(0) if self.replies else ["(no scripted reply)"]
        sent: list[str] = []
        for delta in deltas:
            if self._interrupted:
                break
            on_delta(delta)
            sent.append(delta)
            await asyncio.sleep(0)
            self._check_alive()
            if self.chat_failure is not None and len(sent) >= self.fail_after_deltas:
                raise self.chat_failure
            if self.pause_after is not None and len(sent) == self.pause_after:
                self.paused.set()
                await self._resume.wait()
                self._check_alive()
        scripted = self.finish_reasons.pop(0) if self.finish_reasons else "stop"
        reason = "abort" if self._interrupted else scripted
        return ChatResult("".join(sent), reason, self.usage)

    async def interrupt(self) -> None:
        self._check_alive()
        self.interrupts += 1
        self._interrupted = True
        self._resume.set()

    def resume(self) -> None:
        self._resume.set()

    def terminate(self) -> None:
        self.terminated = True
        self._loaded = None
        self._release.set()
        self._resume.set()


class FakeRuntime:
    """A ModelRuntime whose engines come from `engine_factory` (all kept in `engines`).

    `model_source` answers with folders on `FakeModelHost.BASE`; `crash(engine)` makes an
    engine die by itself (its on_crash callback runs, its calls fail with
    EngineWorkerError), as a worker that crashed.
    """

    def __init__(self, engine_factory: Callable[[], FakeEngine] = FakeEngine, *,
                 host: FakeModelHost | None = None,
                 storage: tuple[int | None, int | None, bool | None] = (0, 50 * 1024 ** 3,
                                                                        False)) -> None:
        self.engine_factory = engine_factory
        self.host = host
        self.engines: list[FakeEngine] = []
        self.storage_info = storage
        self.persistence_requests = 0
        self.crash_callbacks: dict[int, Callable[[str], None]] = {}
        self.unknown: set[str] = set()

    def new_engine(self, on_crash: Callable[[str], None]) -> FakeEngine:
        engine = self.engine_factory()
        if engine.host is None:
            engine.host = self.host
        self.engines.append(engine)
        self.crash_callbacks[id(engine)] = on_crash
        return engine

    def crash(self, engine: FakeEngine) -> None:
        engine.crashed = True
        engine.terminate()
        self.crash_callbacks[id(engine)]("The engine worker failed: simulated crash.")

    async def model_source(self, model_id: str) -> ModelSource:
        await asyncio.sleep(0)
        if model_id in self.unknown:
            raise EngineFailure("ModelNotFoundError", f"No model record for {model_id}.")
        return FakeModelHost.source(model_id)

    async def storage(self) -> tuple[int | None, int | None, bool | None]:
        return self.storage_info

    async def request_persistence(self) -> bool:
        self.persistence_requests += 1
        return True


@dataclass
class HostFile:
    body: bytes
    cache: str


@dataclass
class _Fault:
    failure: FetchFailure
    times: int | None
    at_byte: int = 0


class FakeModelHost:
    """A working FileTransport: a model host and the browser's caches, in memory.

    Every catalog model is served under `BASE/<model id>/resolve/main/` with a chat
    config, tokenizer.json, tensor-cache.json, `shards` shards of `shard_bytes` each, and
    a library (`LIB/<model id>.wasm`). `fetch` streams a file in `chunk` byte pieces
    (giving other tasks a turn after each), checks it as the download worker does, and
    stores it in `caches[cache][url]`. Faults, each for the next `times` requests of a
    URL (None: every one):
    - `fail(url, kind, at_byte=…, status=…, retry_after=…)`: the request fails after
      `at_byte` bytes with that FetchFailure (bytes received stay kept for a resume);
    - `corrupt(url, body)`: the host sends `body` instead (checks then reject it);
    - `hold(url)`: the request stops after its first chunk until `release(url)`.
    A resumed request (`resume` with kept bytes) continues from them unless `no_range`.
    `requests` logs (url, start byte) of every fetch.
    """

    BASE = "https://host.test/mlc-ai/"
    LIB = "https://libs.test/"

    def __init__(self, *, shards: int = 4, shard_bytes: int = 1000, chunk: int = 250,
                 tokenizer_files: Sequence[str] = ("tokenizer.json", "tokenizer_config.json"),
                 models: Sequence[str] | None = None) -> None:
        self.files: dict[str, HostFile] = {}
        self.caches: dict[str, dict[str, bytes]] = {}
        self.kept: dict[str, bytes] = {}
        self.faults: dict[str, list[_Fault]] = {}
        self.held: dict[str, asyncio.Event] = {}
        self.holding: dict[str, asyncio.Event] = {}
        self.corrupted: dict[str, tuple[bytes, int | None]] = {}
        self.requests: list[tuple[str, int]] = []
        self.chunk = chunk
        self.no_range = False
        self.quota: int | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        from localchat.core.catalog import CATALOG

        ids = models if models is not None else [
            m for spec in CATALOG for m in (spec.f16_id, spec.f32_id)]
        for model_id in ids:
            self.add_model(model_id, shards, shard_bytes, tokenizer_files)

    # --- what it serves ----------------------------------------------------------------

    @classmethod
    def source(cls, model_id: str) -> ModelSource:
        return ModelSource(model_id, f"{cls.BASE}{model_id}/resolve/main/",
                           f"{cls.LIB}{model_id}.wasm")

    def add_model(self, model_id: str, shards: int, shard_bytes: int,
                  tokenizer_files: Sequence[str]) -> None:
        source = self.source(model_id)
        config = {"model_type": "llama", "context_window_size": 4096,
                  "tokenizer_files": list(tokenizer_files)}
        records = [{"dataPath": f"params_shard_{i}.bin", "format": "raw-shard",
                    "nbytes": shard_bytes + i, "records": []} for i in range(shards)]
        self.files[source.config_url] = HostFile(json.dumps(config).encode(), CONFIG_CACHE)
        self.files[source.tensor_cache_url] = HostFile(
            json.dumps({"metadata": {}, "records": records}).encode(), MODEL_CACHE)
        self.files[source.file_url("tokenizer.json")] = HostFile(b'{"model": {}}', MODEL_CACHE)
        for i, record in enumerate(records):
            self.files[source.file_url(str(record["dataPath"]))] = HostFile(
                bytes([i % 251]) * int(record["nbytes"]), MODEL_CACHE)
        self.files[source.lib_url] = HostFile(b"\0asm\x01\0\0\0" + b"L" * 300, WASM_CACHE)

    def model_files(self, model_id: str) -> list[str]:
        """Every URL of the model that WebLLM reads (what a complete download stores)."""
        source = self.source(model_id)
        return [url for url in self.files
                if url.startswith(source.base_url) or url == source.lib_url]

    def model_bytes(self, model_id: str) -> int:
        return sum(len(self.files[url].body) for url in self.model_files(model_id))

    def stored_urls(self) -> set[str]:
        return {url for cache in self.caches.values() for url in cache}

    def store_all(self, model_id: str) -> None:
        """As if the model had been downloaded earlier."""
        for url in self.model_files(model_id):
            self.caches.setdefault(self.files[url].cache, {})[url] = self.files[url].body

    # --- faults ------------------------------------------------------------------------

    def fail(self, url: str, kind: FailureKind, *, times: int | None = 1, at_byte: int = 0,
             status: int | None = None, retry_after: float | None = None) -> None:
        self.faults.setdefault(url, []).append(_Fault(
            FetchFailure(kind, status=status, retry_after=retry_after,
                         detail=f"fake {kind.value}", url=url), times, at_byte))

    def corrupt(self, url: str, body: bytes, times: int | None = 1) -> None:
        self.corrupted[url] = (body, times)

    def hold(self, url: str) -> None:
        self.held[url] = asyncio.Event()
        self.holding[url] = asyncio.Event()

    def release(self, url: str) -> None:
        self.held.pop(url).set()

    async def until_holding(self, url: str) -> None:
        await self.holding[url].wait()

    def _next_fault(self, url: str) -> _Fault | None:
        faults = self.faults.get(url)
        if not faults:
            return None
        fault = faults[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
        return fault

    # --- FileTransport -----------------------------------------------------------------

    async def fetch(self, request: FileRequest, on_bytes: BytesCallback) -> FetchedFile:
        url = request.url
        await asyncio.sleep(0)
        if url not in self.files:
            raise FetchFailure(FailureKind.HTTP, status=404, detail="no such file", url=url)
        body = self.files[url].body
        corrupt = self.corrupted.get(url)
        if corrupt is not None:
            body, times = corrupt
            if times is not None:
                if times <= 1:
                    del self.corrupted[url]
                else:
                    self.corrupted[url] = (body, times - 1)
        kept = self.kept.pop(url, b"") if request.resume and not self.no_range else b""
        self.kept.pop(url, None)
        self.requests.append((url, len(kept)))
        fault = self._next_fault(url)
        received = bytearray(kept)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            position = len(kept)
            on_bytes(len(received), len(body))
            while position < len(body):
                if fault is not None and position - len(kept) >= fault.at_byte:
                    break
                piece = body[position:position + self.chunk]
                if fault is not None:
                    piece = piece[:max(0, fault.at_byte - (position - len(kept)))]
                received += piece
                position += len(piece)
                on_bytes(len(received), len(body))
                if url in self.held:
                    self.holding[url].set()
                    await self.held[url].wait()
                await asyncio.sleep(0)
            if fault is not None:
                failure = fault.failure
                if failure.kind in (FailureKind.DROPPED, FailureKind.STALL) and received:
                    self.kept[url] = bytes(received)
                raise FetchFailure(failure.kind, status=failure.status,
                                   retry_after=failure.retry_after,
                                   kept=len(self.kept.get(url, b"")), detail=failure.detail,
                                   url=url)
        except asyncio.CancelledError:
            raise
        finally:
            self.in_flight -= 1
        data = self._check(request, bytes(received))
        if self.quota is not None and sum(len(b) for c in self.caches.values()
                                          for b in c.values()) + len(received) > self.quota:
            raise FetchFailure(FailureKind.QUOTA, detail="fake quota", url=url)
        self.caches.setdefault(request.cache, {})[url] = bytes(received)
        return FetchedFile(len(received), data)

    @staticmethod
    def _check(request: FileRequest, body: bytes) -> dict[str, Any] | None:
        def invalid(why: str) -> FetchFailure:
            return FetchFailure(FailureKind.INVALID, detail=why, url=request.url)

        if request.size is not None and len(body) != request.size:
            raise invalid(f"{len(body)} bytes, expected {request.size}")
        if request.check is FileCheck.WASM and not body.startswith(b"\0asm"):
            raise invalid("not a wasm module")
        if request.check in (FileCheck.JSON, FileCheck.CHAT_CONFIG, FileCheck.TENSOR_CACHE):
            try:
                data = json.loads(body)
            except ValueError:
                raise invalid("not JSON") from None
            if request.check is FileCheck.CHAT_CONFIG:
                if not isinstance(data, dict) or not isinstance(data.get("tokenizer_files"), list):
                    raise invalid("no tokenizer_files")
                return {"tokenizer_files": data["tokenizer_files"],
                        "context_window_size": data.get("context_window_size")}
            if request.check is FileCheck.TENSOR_CACHE:
                if not isinstance(data, dict) or not isinstance(data.get("records"), list):
                    raise invalid("no records")
                return {"records": [{"dataPath": r["dataPath"], "nbytes": r["nbytes"]}
                                    for r in data["records"]]}
        return None

    async def stored(self, files: Sequence[tuple[str, str]]) -> dict[str, int]:
        await asyncio.sleep(0)
        return {url: len(self.caches[cache][url]) for cache, url in files
                if url in self.caches.get(cache, {})}

    async def read_stored(self, cache: str, url: str,
                          check: FileCheck) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        body = self.caches.get(cache, {}).get(url)
        if body is None:
            return None
        try:
            return self._check(FileRequest(url, cache, check), body)
        except FetchFailure:
            return None

    async def peek(self, url: str, check: FileCheck) -> dict[str, Any] | None:
        return None  # a remote host: never contacted before the user asks

    async def remove(self, files: Sequence[tuple[str, str]],
                     prefixes: Sequence[tuple[str, str]] = ()) -> None:
        await asyncio.sleep(0)
        for cache, url in files:
            self.caches.get(cache, {}).pop(url, None)
        for cache, prefix in prefixes:
            entries = self.caches.get(cache, {})
            for url in [u for u in entries if u.startswith(prefix)]:
                del entries[url]


class FakeDownloadRecords:
    """In-memory DownloadRecords, keyed by the record's catalog key; `failure` makes
    every call raise it."""

    def __init__(self, records: Sequence[dict[str, Any]] = ()) -> None:
        self.records: dict[str, dict[str, Any]] = {r["key"]: dict(r) for r in records}
        self.failure: StoreFailure | None = None

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def load_downloads(self) -> list[dict[str, Any]]:
        self._check()
        # A damaged entry (not an object) comes back as it is, like IndexedDB returns it.
        return [dict(r) if isinstance(r, dict) else r for r in self.records.values()]

    async def save_download(self, record: dict[str, Any]) -> None:
        self._check()
        self.records[record["key"]] = dict(record)

    async def delete_download(self, key: str) -> None:
        self._check()
        self.records.pop(key, None)
