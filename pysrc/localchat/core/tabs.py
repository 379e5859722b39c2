"""Several tabs, one LocalChat: one tab owns the downloads and the engine, the others use it.

The tab that holds the owner lock (Web Locks, see adapters/tab_link.py) runs the real
`ModelService`: the download queue and the one chat engine in GPU memory. `ModelHub`
serves the other tabs from it over a message channel (BroadcastChannel): it publishes
the download items, sizes, storage and the loaded model whenever they change, carries
out their Download, Cancel, Retry, Resume and Remove, and answers their replies with its
engine, one reply at a time (`ModelService.take_turn`), streaming the text back.

Every other tab runs `RemoteModels`, which has `ModelService`'s face (what `ChatService`,
the composition root and the views use) and mirrors the owner's state into its own
`StateBox`. When the owner tab closes, one of the others gets the lock, becomes the owner
(it makes its own `ModelService`, which resumes the queue from the stored records and
files) and announces itself; replies waiting in other tabs go to it, and a reply that was
streaming in the closed tab's engine is started again once, like any lost engine.

Messages are plain dicts: `t` (the kind), `from` (the sender's tab id), `to` (None: every
tab), and per kind `id`, `key`, ...:
- to the owner: hello · request/cancel {key} · remove {id, key} · model {key, download}
  · acquire {id, key} · chat {id, messages} · interrupt {id} · release {id}
- from the owner: owner · state {downloads, sizes, loaded, storage} · switched {key}
  · removed {id, ok} · engine {id, loaded} · delta {id, text} · result {id, content,
  finish, usage} · failed {id, name, message | problem}
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..ports import ChatResult, DeltaCallback, ProgressCallback, TabLink
from .conversation import new_id
from .downloads import DownloadItem, DownloadState
from .errors import EngineFailure, UserMessage, engine_was_lost
from .models import ModelService, ModelView, NoModel
from .state import StateBox, StorageInfo

__all__ = [
    "OWNER_GONE",
    "ModelHub",
    "ModelsMoved",
    "RemoteEngine",
    "RemoteModels",
    "item_from_live",
    "item_to_live",
]

OWNER_GONE = "The tab that was running the model was closed."


class ModelsMoved(Exception):
    """This tab became the owner while a reply waited for the old one: ask the new
    ModelService instead."""


# --- the live form of a download item (every field, unlike the persisted record) -------

def item_to_live(item: DownloadItem) -> dict[str, Any]:
    error = item.error
    return {"key": item.key, "modelId": item.model_id, "state": item.state.value,
            "requestedAt": item.requested_at, "bytesTotal": item.bytes_total,
            "bytesDone": item.bytes_done, "compileFraction": item.compile_fraction,
            "eta": item.eta_seconds, "retry": item.retry, "retryAt": item.retry_at_ms,
            "counting": item.counting,
            "failedToStart": item.failed_to_start,
            "error": None if error is None else {"title": error.title, "detail": error.detail,
                                                 "action": error.action}}


def item_from_live(data: Any) -> DownloadItem | None:
    """Decode an item another tab sent (None for anything malformed; never raises)."""
    try:
        error = data.get("error")
        return DownloadItem(
            key=str(data["key"]), model_id=str(data["modelId"]),
            state=DownloadState(data["state"]), requested_at=int(data.get("requestedAt") or 0),
            bytes_total=_int_or_none(data.get("bytesTotal")),
            bytes_done=int(data.get("bytesDone") or 0),
            compile_fraction=float(data.get("compileFraction") or 0.0),
            eta_seconds=_float_or_none(data.get("eta")), retry=int(data.get("retry") or 0),
            retry_at_ms=_int_or_none(data.get("retryAt")),
            counting=data.get("counting") is True,
            error=None if not isinstance(error, dict) else UserMessage(
                str(error.get("title", "")), str(error.get("detail", "")),
                str(error.get("action", ""))),
            failed_to_start=bool(data.get("failedToStart")))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _problem(data: Any) -> UserMessage | None:
    if not isinstance(data, dict):
        return None
    return UserMessage(str(data.get("title", "")), str(data.get("detail", "")),
                       str(data.get("action", "")))


# --- the owner's side ------------------------------------------------------------------

def _progress_only(old: Any, new: Any) -> bool:
    """Only bytes, estimates and compile progress moved (no state, error, size or model)."""
    if old.model_sizes is not new.model_sizes or old.engine is not new.engine \
            or old.storage is not new.storage or old.downloads.keys() != new.downloads.keys():
        return False
    for key, item in new.downloads.items():
        before = old.downloads[key]
        if (before.state, before.error, before.retry, before.failed_to_start,
                before.bytes_total, before.counting) != (
                item.state, item.error, item.retry, item.failed_to_start, item.bytes_total,
                item.counting):
            return False
    return True


@dataclass
class _Served:
    """A reply of another tab that the owner's engine answers."""

    tab: str
    task: asyncio.Future[None] | None = None
    messages: asyncio.Future[list[dict[str, str]]] = field(
        default_factory=lambda: asyncio.get_event_loop().create_future())
    engine: Any = None
    chatting: bool = False


class ModelHub:
    """The owner tab serves the others from its ModelService."""

    PUBLISHED = ("downloads", "model_sizes", "engine", "storage")
    PROGRESS_EVERY_S = 0.25

    def __init__(self, models: ModelService, link: TabLink) -> None:
        self.models = models
        self.link = link
        self._served: dict[str, _Served] = {}
        self._watched: set[str] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._scheduled = False
        self._progress_timer: asyncio.TimerHandle | None = None
        self._last: dict[str, Any] | None = None
        self.on_switch: Callable[[str], None] | None = None
        """This tab's own announcement of a switch (the others are told by message)."""
        models.on_switch = self._switched
        models.on_already_loaded = self._already_loaded
        self._asking: str | None = None
        """The tab whose model request is being handled now (None: this tab's own)."""
        link.on_message(self.handle)
        self._unsubscribe = models.box.subscribe(self._changed)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _post(self, message: dict[str, Any]) -> None:
        self.link.post(message)

    def announce(self) -> None:
        """Tell every tab that this one owns the models now, and what they are."""
        self._post({"t": "owner"})
        self._publish(force=True)

    # --- publishing the state --------------------------------------------------------

    def _changed(self, old: Any, new: Any) -> None:
        """A change of state, size or model goes out at once (one notice per burst of
        changes); bytes and estimates at most every PROGRESS_EVERY_S, so the other tabs
        render progress a few times a second, not at every report of every file."""
        if all(getattr(old, f) is getattr(new, f) for f in self.PUBLISHED):
            return
        if _progress_only(old, new):
            if not self._scheduled and self._progress_timer is None:
                self._progress_timer = asyncio.get_event_loop().call_later(
                    self.PROGRESS_EVERY_S, self._publish)
            return
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_event_loop().call_soon(self._publish)

    def snapshot(self) -> dict[str, Any]:
        state = self.models.box.state
        storage = state.storage
        return {"t": "state",
                "downloads": [item_to_live(i) for i in state.downloads.values()],
                "sizes": dict(state.model_sizes), "loaded": state.engine.loaded_model,
                "storage": None if storage is None else {
                    "usage": storage.usage, "quota": storage.quota,
                    "persisted": storage.persisted}}

    def _publish(self, force: bool = False) -> None:
        self._scheduled = False
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        snapshot = self.snapshot()
        if force or snapshot != self._last:
            self._last = snapshot
            self._post(snapshot)

    def _switched(self, key: str) -> None:
        """Each tab whose chat asked for `key` says it switched; a switch only another
        tab asked for is not announced here (this tab's chat still uses its own model)."""
        self._post({"t": "switched", "key": key})
        models = self.models
        theirs = key != models.requested_key() and key in models.remote_wants.values()
        if self.on_switch is not None and not theirs:
            self.on_switch(key)

    def _already_loaded(self, key: str) -> None:
        """A chat chose the loaded model again: the tab that chose it is told, no other
        (theirs use it already and asked nothing)."""
        if self._asking is None:
            if self.on_switch is not None:
                self.on_switch(key)
        else:
            self._post({"t": "switched", "to": self._asking, "key": key})

    # --- requests from the other tabs ------------------------------------------------

    def handle(self, message: dict[str, Any]) -> None:
        kind, tab = message.get("t"), message.get("from")
        if not isinstance(tab, str):
            return
        key = message.get("key")
        cid = message.get("id")
        models = self.models
        if kind == "hello":
            self.announce()
        elif kind == "request" and isinstance(key, str):
            models.request(key)
        elif kind == "cancel" and isinstance(key, str):
            models.cancel(key)
        elif kind == "remove" and isinstance(key, str) and isinstance(cid, str):
            self._spawn(self._remove(tab, cid, key))
        elif kind == "model" and isinstance(key, str):
            self._watch(tab)
            models.remote_wants[tab] = key
            self._asking = tab
            try:
                models.conversation_model_changed(key, download=bool(message.get("download")))
            finally:
                self._asking = None
        elif kind == "acquire" and isinstance(key, str) and isinstance(cid, str):
            self._watch(tab)
            served = self._served[cid] = _Served(tab)
            served.task = asyncio.ensure_future(self._serve(cid, served, key))
        elif kind == "chat" and isinstance(cid, str):
            served_chat = self._served.get(cid)
            messages = message.get("messages")
            if served_chat is not None and isinstance(messages, list) \
                    and not served_chat.messages.done():
                served_chat.messages.set_result(messages)
        elif kind in ("interrupt", "release") and isinstance(cid, str):
            served_stop = self._served.get(cid)
            if served_stop is not None and served_stop.tab == tab:
                self._stop(served_stop)

    def _stop(self, served: _Served) -> None:
        """Stop one tab's reply: the engine stops it at the next token, or, if it has not
        begun, it never takes its turn."""
        if served.chatting and served.engine is not None:
            self._spawn(self._interrupt(served.engine))
        elif served.task is not None:
            served.task.cancel()

    @staticmethod
    async def _interrupt(engine: Any) -> None:
        with contextlib.suppress(EngineFailure):
            await engine.interrupt()

    def _watch(self, tab: str) -> None:
        if tab not in self._watched:
            self._watched.add(tab)
            self._spawn(self._when_gone(tab))

    async def _when_gone(self, tab: str) -> None:
        """A tab that closes frees the engine: its reply stops, its wishes are forgotten."""
        await self.link.when_gone(tab)
        self._watched.discard(tab)
        self.models.remote_wants.pop(tab, None)
        for served in list(self._served.values()):
            if served.tab == tab:
                self._stop(served)

    async def _remove(self, tab: str, cid: str, key: str) -> None:
        ok = True
        try:
            await self.models.remove(key)
        except EngineFailure:
            ok = False
        self._post({"t": "removed", "to": tab, "id": cid, "ok": ok})

    async def _serve(self, cid: str, served: _Served, key: str) -> None:
        models, tab = self.models, served.tab

        def reply(kind: str, **fields: Any) -> None:
            self._post({"t": kind, "to": tab, "id": cid, **fields})

        try:
            await models.take_turn()
            try:
                try:
                    engine = await models.engine_for_reply(key)
                except NoModel as no_model:
                    problem = no_model.problem
                    reply("failed", problem={"title": problem.title, "detail": problem.detail,
                                             "action": problem.action})
                    return
                served.engine = engine
                reply("engine", loaded=engine.loaded_model)
                messages = await served.messages
                served.chatting = True
                models.reply_started()
                try:
                    result = await engine.chat(
                        messages, lambda text: reply("delta", text=text))
                except EngineFailure as failure:
                    if engine_was_lost(failure):
                        models.engine_lost(engine)
                    reply("failed", name=failure.name, message=failure.message)
                    return
                finally:
                    models.reply_ended()
                reply("result", content=result.content, finish=result.finish_reason,
                      usage=result.usage)
            finally:
                models.end_turn()
        except asyncio.CancelledError:
            pass  # the tab stopped waiting, or closed, before its reply began
        finally:
            self._served.pop(cid, None)

    def close(self) -> None:
        self._unsubscribe()
        for served in list(self._served.values()):
            self._stop(served)


# --- every other tab's side ------------------------------------------------------------

@dataclass
class _Waiting:
    """A call to the owner that waits for its answers."""

    engine: asyncio.Future[str | None]
    result: asyncio.Future[ChatResult]
    on_delta: DeltaCallback | None = None
    removed: asyncio.Future[bool] | None = None


class RemoteEngine:
    """The owner's engine, as one reply of this tab sees it (ports.ChatEngine)."""

    def __init__(self, remote: RemoteModels, cid: str, loaded: str | None) -> None:
        self._remote = remote
        self._id = cid
        self._loaded = loaded

    @property
    def loaded_model(self) -> str | None:
        return self._loaded

    async def load(self, model_id: str, on_progress: ProgressCallback) -> None:
        raise EngineFailure("EngineError", "another tab runs the model")

    async def chat(self, messages: Sequence[dict[str, str]],
                   on_delta: DeltaCallback) -> ChatResult:
        return await self._remote._chat(self._id, list(messages), on_delta)

    async def interrupt(self) -> None:
        self._remote._send({"t": "interrupt", "id": self._id})

    def terminate(self) -> None:
        """The owner's engine is not this tab's to stop."""


class RemoteModels(ModelView):
    """ModelService's face in a tab that does not own the models: reads the mirrored
    state, and asks the owner tab for everything else."""

    def __init__(self, box: StateBox, link: TabLink, max_retries: int) -> None:
        self.box = box
        self.link = link
        self.max_retries = max_retries
        self.on_switch: Callable[[str], None] | None = None
        self.owner: str | None = None
        self._owner_known = asyncio.Event()
        self._outbox: list[dict[str, Any]] = []
        self._waiting: dict[str, _Waiting] = {}
        self._closed = False
        self._mirrored = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        link.on_message(self.handle)

    # --- talking to the owner ----------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        """To the owner; held until one is known (its tab may still be starting)."""
        if self.owner is None:
            self._outbox.append(message)
        else:
            self.link.post({**message, "to": self.owner})

    async def start(self, adopt: bool = True) -> None:
        """Ask who owns the models; returns with the owner's state (an owner that is still
        starting announces itself when it is ready)."""
        self.link.post({"t": "hello"})
        await self._mirrored.wait()

    def handle(self, message: dict[str, Any]) -> None:
        if self._closed:
            return
        kind, sender = message.get("t"), message.get("from")
        if kind == "owner" and isinstance(sender, str):
            self._owner_is(sender)
            return
        if sender != self.owner:
            return  # an old owner's last words
        if kind == "state":
            self._mirror(message)
        elif kind == "switched":
            key = message.get("key")
            if key == self.requested_key() and self.on_switch is not None:
                self.on_switch(key)
        else:
            self._answer(kind, message)

    def _owner_is(self, tab: str) -> None:
        if tab == self.owner:
            return
        self._lost_owner()
        self.owner = tab
        self._owner_known.set()
        task = asyncio.ensure_future(self._watch_owner(tab))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # The new owner learns what this tab's open chat asks for, then what was held.
        self.link.post({"t": "model", "to": tab, "key": self.requested_key(),
                        "download": False})
        outbox, self._outbox = self._outbox, []
        for message in outbox:
            self._send(message)

    async def _watch_owner(self, tab: str) -> None:
        await self.link.when_gone(tab)
        if self.owner == tab:
            self._lost_owner()

    def _lost_owner(self) -> None:
        """The owner tab closed: waiting replies ask the next one; streaming ones fail as
        a lost engine (ChatService starts them again once)."""
        self.owner = None
        self._owner_known.clear()
        for waiting in self._waiting.values():
            self._fail(waiting, EngineFailure("EngineWorkerError", OWNER_GONE), retry=True)

    def _fail(self, waiting: _Waiting, error: Exception, retry: bool = False) -> None:
        if not waiting.engine.done():
            waiting.engine.set_exception(_Again() if retry else error)
        if not waiting.result.done():
            waiting.result.set_exception(error)
        if waiting.removed is not None and not waiting.removed.done():
            waiting.removed.set_result(False)

    def _mirror(self, message: dict[str, Any]) -> None:
        """The owner's state into this tab's: only what changed (equal values keep their
        objects, so the views that watch them don't render again)."""
        raw = message.get("downloads")
        items = [item_from_live(d) for d in raw] if isinstance(raw, list) else []
        downloads = {i.key: i for i in items if i is not None}
        raw_sizes = message.get("sizes")
        sizes = {str(k): int(v) for k, v in raw_sizes.items()
                 if isinstance(v, (int, float))} if isinstance(raw_sizes, dict) else {}
        raw_loaded = message.get("loaded")
        loaded = raw_loaded if isinstance(raw_loaded, str) else None
        raw_storage = message.get("storage")
        storage = StorageInfo(raw_storage.get("usage"), raw_storage.get("quota"),
                              raw_storage.get("persisted")) \
            if isinstance(raw_storage, dict) else None
        state = self.box.state
        changes: dict[str, Any] = {}
        if downloads != state.downloads:
            changes["downloads"] = downloads
        if sizes != state.model_sizes:
            changes["model_sizes"] = sizes
        if loaded != state.engine.loaded_model:
            changes["engine"] = replace(state.engine, loaded_model=loaded)
        if storage is not None and storage != state.storage:
            changes["storage"] = storage
        if state.models_checking:
            changes["models_checking"] = False  # the owner has checked them
        if changes:
            self.box.update(**changes)
        self._mirrored.set()

    def _answer(self, kind: Any, message: dict[str, Any]) -> None:
        cid = message.get("id")
        waiting = self._waiting.get(cid) if isinstance(cid, str) else None
        if waiting is None:
            return
        if kind == "engine" and not waiting.engine.done():
            loaded = message.get("loaded")
            waiting.engine.set_result(loaded if isinstance(loaded, str) else None)
        elif kind == "delta" and waiting.on_delta is not None:
            waiting.on_delta(str(message.get("text", "")))
        elif kind == "result" and not waiting.result.done():
            usage = message.get("usage")
            waiting.result.set_result(ChatResult(
                str(message.get("content", "")), str(message.get("finish", "stop")),
                usage if isinstance(usage, dict) else None))
        elif kind == "removed" and waiting.removed is not None and not waiting.removed.done():
            waiting.removed.set_result(bool(message.get("ok")))
        elif kind == "failed":
            problem = _problem(message.get("problem"))
            error: Exception = NoModel(problem) if problem is not None else EngineFailure(
                str(message.get("name", "EngineError")), str(message.get("message", "")))
            self._fail(waiting, error)

    def _new_waiting(self) -> tuple[str, _Waiting]:
        loop = asyncio.get_event_loop()
        cid = new_id()
        waiting = self._waiting[cid] = _Waiting(loop.create_future(), loop.create_future())
        # Nobody may await one of them: don't let asyncio call it "never retrieved".
        waiting.engine.add_done_callback(_retrieve)
        waiting.result.add_done_callback(_retrieve)
        return cid, waiting

    # --- ModelService's face ---------------------------------------------------------

    def request(self, key: str) -> bool:
        if not self.fit(key).usable:
            return False
        self._send({"t": "request", "key": key})
        return True

    def cancel(self, key: str) -> None:
        self._send({"t": "cancel", "key": key})

    async def remove(self, key: str) -> None:
        cid, waiting = self._new_waiting()
        waiting.removed = asyncio.get_event_loop().create_future()
        self._send({"t": "remove", "id": cid, "key": key})
        try:
            if not await waiting.removed:
                raise EngineFailure("EngineError", "the files could not be removed")
        finally:
            self._waiting.pop(cid, None)

    def conversation_model_changed(self, key: str, download: bool) -> None:
        """The owner starts or downloads it, and confirms with a `switched` notice."""
        self._send({"t": "model", "key": key, "download": download})

    async def engine_for_reply(self, key: str) -> RemoteEngine:
        """The owner's engine for one reply: waits for the owner (a new one, if it
        closes meanwhile), for its turn and for its model."""
        while True:
            if self._closed:
                raise ModelsMoved()
            await self._owner_known.wait()
            if self._closed:
                raise ModelsMoved()
            cid, waiting = self._new_waiting()
            self._send({"t": "acquire", "id": cid, "key": key})
            try:
                loaded = await waiting.engine
            except _Again:
                self._waiting.pop(cid, None)
                continue
            except asyncio.CancelledError:
                self._waiting.pop(cid, None)
                if not self._closed:
                    self._send({"t": "release", "id": cid})
                raise
            except BaseException:
                self._waiting.pop(cid, None)
                raise
            return RemoteEngine(self, cid, loaded)

    async def _chat(self, cid: str, messages: list[dict[str, str]],
                    on_delta: DeltaCallback) -> ChatResult:
        waiting = self._waiting.get(cid)
        if waiting is None:
            raise EngineFailure("EngineWorkerError", OWNER_GONE)
        waiting.on_delta = on_delta
        self._send({"t": "chat", "id": cid, "messages": messages})
        try:
            return await waiting.result
        finally:
            self._waiting.pop(cid, None)

    def engine_lost(self, engine: Any) -> None:
        """The owner drops its engine itself."""

    def reply_started(self) -> None:
        """The owner counts the replies its engine is answering."""

    def reply_ended(self) -> None:
        """See reply_started."""

    async def refresh_storage(self) -> None:
        """The owner publishes the storage figures."""

    def close(self) -> None:
        """This tab owns the models now: whatever waited for the old owner is moved."""
        self._closed = True
        self._owner_known.set()  # waiting replies wake up and see ModelsMoved
        self._mirrored.set()
        for waiting in self._waiting.values():
            if not waiting.engine.done():
                waiting.engine.set_exception(ModelsMoved())
            if not waiting.result.done():
                waiting.result.set_exception(EngineFailure("EngineWorkerError", OWNER_GONE))
            if waiting.removed is not None and not waiting.removed.done():
                waiting.removed.set_result(False)
        for task in self._tasks:
            task.cancel()


class _Again(Exception):
    """The owner closed before this reply's turn: ask the next owner."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
