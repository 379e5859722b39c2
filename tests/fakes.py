"""Working in-memory fakes of the ports in pysrc/localchat/ports.py, for CPython tests.

- `FakeStore` (ConversationStore): keeps camelCase records like IndexedDB does and decodes
  them with the core's tolerant decoders; `fail()` makes chosen methods raise StoreFailure.
- `FakeEngine` (ModelEngine): scripted replies streamed as deltas, WebLLM-style load
  progress (skipping the download when its runtime's cache has the model), interrupt
  (optionally pausing mid-reply so a test can stop it), a load that holds at a chosen
  report until released, failures, and `terminate()` that stops every pending call with
  EngineTerminated like the real worker.
- `FakeRuntime` (ModelRuntime) and `FakeDownloadRecords` (DownloadRecords), which the
  ModelService behind ChatService needs.
- `FakeClock` (Clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from localchat.core.conversation import (
    Conversation,
    Message,
    conversation_from_record,
    conversation_to_record,
    message_from_record,
    message_to_record,
)
from localchat.core.errors import EngineFailure, StoreFailure
from localchat.ports import ChatResult, DeltaCallback, ProgressCallback

__all__ = [
    "WEBLLM_LOAD_REPORTS",
    "FakeClock",
    "FakeDownloadRecords",
    "FakeEngine",
    "FakeRuntime",
    "FakeStore",
]

# What WebLLM 0.2.86 reports while loading a model that is not cached yet.
WEBLLM_LOAD_REPORTS: tuple[tuple[float, str], ...] = (
    (0.0, "Start to fetch params"),
    (0.5, "Fetching param cache[1/2]: 600MB fetched. 50% completed, 3 secs elapsed. "
          "It can take a while when we first visit this page to populate the cache. "
          "Later refreshes will become faster."),
    (1.0, "Fetching param cache[2/2]: 1200MB fetched. 100% completed, 6 secs elapsed. "
          "It can take a while when we first visit this page to populate the cache. "
          "Later refreshes will become faster."),
    (0.5, "Loading model from cache[1/2]: 600MB loaded. 50% completed, 7 secs elapsed."),
    (1.0, "Loading model from cache[2/2]: 1200MB loaded. 100% completed, 8 secs elapsed."),
    (1.0, "Loading GPU shader modules[96/96]: 100% completed, 9 secs elapsed."),
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
    and an import is all or nothing. `list_conversations` returns insertion order (the
    protocol promises no order). Every call is logged in `calls` as (method, args).
    """

    def __init__(self, conversations: Sequence[Conversation] = (),
                 messages: Sequence[Message] = ()) -> None:
        self.conversation_records: dict[str, dict[str, Any]] = {}
        self.message_records: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.opened = False
        self._failures = _Failures()
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
                   if r["conversationId"] == conversation_id]
        return sorted(records, key=lambda r: r["createdAt"])

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
        if message.id in self.message_records:
            raise StoreFailure("ConstraintError", f"Key {message.id} already exists")
        self.message_records[message.id] = message_to_record(message)
        conversation = self.conversation_records.get(message.conversation_id)
        if touch_updated_at is not None and conversation is not None:
            conversation["updatedAt"] = touch_updated_at

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
                    if r["conversationId"] == conversation_id]:
            del self.message_records[mid]

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


class FakeEngine:
    """A ModelEngine that streams scripted replies.

    Each reply is a sequence of deltas (a plain string is one delta). `load` reports
    `load_reports` through the progress callback; the `Fetching` reports are skipped when
    `cache` (the runtime's set of cached model ids, attached by FakeRuntime) already has
    the model, and the model is added to it once its download phase is over. With
    `load_failure`, the load raises it just before the first report starting with
    `load_failure_at`. With `hold_at`, the load stops just before the first report
    starting with that prefix (`holding` is set) until `release()` — or forever, which
    is a stalled download. With `pause_after=n`, a reply stops after n deltas until
    `interrupt()` (or `resume()`) is called, and `paused` is set meanwhile, so a test can
    press Stop at a known point. After an interrupt the reply ends with finish_reason
    "abort" and the text streamed so far. `terminate()` works like the worker's: pending
    and later calls fail with EngineTerminated and nothing stays loaded.
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
                 loaded_model: str | None = None) -> None:
        self.replies = [[r] if isinstance(r, str) else list(r) for r in replies]
        self.load_reports = tuple(load_reports)
        self.load_failure = load_failure
        self.load_failure_at = load_failure_at
        self.hold_at = hold_at
        self.chat_failure = chat_failure
        self.fail_after_deltas = fail_after_deltas
        self.pause_after = pause_after
        self.usage = usage
        self.cache: set[str] | None = None
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
        if self.terminated:
            raise EngineFailure("EngineTerminated", "The engine was stopped.")

    async def load(self, model_id: str, on_progress: ProgressCallback) -> None:
        self._check_alive()
        self.loads.append(model_id)
        held = False
        for fraction, text in self.load_reports:
            fetching = text.startswith("Fetching param cache")
            if fetching and self.cache is not None and model_id in self.cache:
                continue
            if not fetching and not text.startswith("Start") and self.cache is not None:
                self.cache.add(model_id)  # every shard is in the cache now
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
        if self.cache is not None:
            self.cache.add(model_id)
        self._loaded = model_id

    def release(self) -> None:
        """Let a load held at `hold_at` go on."""
        self._release.set()

    async def chat(self, messages: Sequence[dict[str, str]],
                   on_delta: DeltaCallback) -> ChatResult:
        self._check_alive()
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
        reason = "abort" if self._interrupted else "stop"
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

    `cached` is the model cache: engines made here share it (a finished download adds
    its model; `delete_model` removes it).
    """

    def __init__(self, engine_factory: Callable[[], FakeEngine] = FakeEngine, *,
                 cached: Sequence[str] = (), sizes: dict[str, int] | None = None,
                 storage: tuple[int | None, int | None, bool | None] = (0, 50 * 1024 ** 3,
                                                                        False)) -> None:
        self.engine_factory = engine_factory
        self.engines: list[FakeEngine] = []
        self.cached = set(cached)
        self.sizes = dict(sizes or {})
        self.storage_info = storage
        self.deleted: list[str] = []
        self.persistence_requests = 0

    def new_engine(self) -> FakeEngine:
        engine = self.engine_factory()
        if engine.cache is None:
            engine.cache = self.cached
        self.engines.append(engine)
        return engine

    async def is_cached(self, model_id: str) -> bool:
        return model_id in self.cached

    async def download_size(self, model_id: str) -> int | None:
        return self.sizes.get(model_id)

    async def delete_model(self, model_id: str) -> None:
        self.deleted.append(model_id)
        self.cached.discard(model_id)

    async def storage(self) -> tuple[int | None, int | None, bool | None]:
        return self.storage_info

    async def request_persistence(self) -> bool:
        self.persistence_requests += 1
        return True


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
