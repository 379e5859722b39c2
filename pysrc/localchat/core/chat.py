"""Chat use cases: open a conversation, send a message, stream and stop the reply.

`ChatService` drives the ports (store, clock) and the ModelService (which engine
answers) and records every outcome in the
StateBox. It never touches the DOM: streamed text goes to `on_stream` listeners so the
UI can patch one node per animation frame instead of re-rendering the thread.
Storage failures never stop chatting: the conversation goes on unsaved, and the state
says so (`storage_error`). Nothing stored is ever deleted or rewritten on error.

Several tabs: a streaming reply is saved as it grows (at its first text, so the other
tabs show it at once, then every SAVE_EVERY_MS at most, and by the page on `pagehide`
from `partial_reply()`) while this tab holds the reply's lock
(ports.ReplyLocks); a stored reply still marked streaming whose lock nobody holds is
shown as interrupted, with Continue and Regenerate. Other tabs' writes reach this one
through `refresh_conversations` / `refresh_messages` (core/sync.py calls them); a write
into a conversation another tab deleted stores nothing and says so (`unsent_text`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from ..ports import Clock, ConversationStore, ModelEngine, ReplyLocks
from .catalog import DEFAULT_MODEL_KEY, ModelSpec, model_for_key
from .context import fit_history
from .conversation import (
    CONTINUABLE,
    Conversation,
    Message,
    MessageStatus,
    Role,
    new_id,
    title_from,
)
from .errors import (
    EngineFailure,
    StoreFailure,
    UserMessage,
    conversation_was_deleted,
    engine_was_lost,
    explain_engine_failure,
    explain_store_failure,
)
from .models import ModelService, NoModel
from .state import StateBox
from .tabs import ModelsMoved, RemoteModels

__all__ = ["CONTINUE_PROMPT", "MAX_MESSAGE_CHARS", "REPLY_RESERVE_TOKENS", "SAVE_EVERY_MS",
           "ChatService", "SoloLocks", "StreamListener", "check_message"]

MAX_MESSAGE_CHARS = 100_000
"""Longer messages cannot fit any catalog model's context window."""
REPLY_RESERVE_TOKENS = 1024
"""Room left in the context window for the reply."""

StreamListener = Callable[[str, str], None]
"""Called with (message id, new text) while a reply streams."""

SAVE_EVERY_MS = 2000
"""A streaming reply is saved at most this often (and when the page goes away)."""

CONTINUE_PROMPT = ("Continue your previous reply exactly where it stopped. Do not repeat "
                   "what you already wrote and do not comment on the interruption.")
"""Sent after an interrupted reply to continue it (never stored or shown): WebLLM only
answers a conversation whose last message is the user's."""


class SoloLocks:
    """ReplyLocks for a tab that is alone (no Web Locks): only its own replies are held."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def hold(self, message_id: str) -> Callable[[], None]:
        self._held.add(message_id)
        return lambda: self._held.discard(message_id)

    async def held(self) -> set[str]:
        return set(self._held)

    async def released(self, message_id: str) -> None:
        while message_id in self._held:
            await asyncio.sleep(0.5)


@dataclass
class _GrowingReply:
    """The reply streaming in this tab, as far as it has arrived (for the partial saves)."""

    message: Message
    """As in the state: `content` is the text it had before this stream (Continue)."""
    release: Callable[[], None]
    parts: list[str] = field(default_factory=list)
    saved_at: int | None = None
    """When a partial save last started (None: not yet; the first text is saved at once)."""
    saving: asyncio.Future[Any] | None = None
    stored: bool = False
    """A partial save of it has been stored."""
    ended: bool = False
    """Its final version is being stored: nothing partial may overwrite it."""

    @property
    def content(self) -> str:
        return self.message.content + "".join(self.parts)

NO_GPU = UserMessage("Models can't run in this browser.",
                     "No usable WebGPU device was found.",
                     "Use a recent Chrome or Edge on a computer with a GPU.")


LOST_TWICE = UserMessage("The model stopped working twice in a row.",
                         "The GPU was reset or ran out of memory (this can happen after the "
                         "computer sleeps, after a driver update, or next to other GPU-heavy "
                         "apps). LocalChat loaded the model again once, and it stopped again.",
                         "Reload the page. If it keeps happening, close other GPU-heavy tabs "
                         "or choose a smaller model.")


def check_message(text: str) -> UserMessage | None:
    """Why `text` cannot be sent (None: it can). Empty text is simply not sent."""
    if len(text) > MAX_MESSAGE_CHARS:
        return UserMessage("This message is too long to send.",
                           f"It has {len(text):,} characters; the limit is "
                           f"{MAX_MESSAGE_CHARS:,}, since models read about 16,000 characters "
                           "at a time. Your text is still in the message box.",
                           "Shorten it, or send it in parts.")
    return None


def _sorted(conversations: list[Conversation] | tuple[Conversation, ...]
            ) -> tuple[Conversation, ...]:
    return tuple(sorted(conversations, key=lambda c: c.updated_at, reverse=True))


Models = ModelService | RemoteModels
"""The models as this tab has them: its own (it owns them) or the owner tab's."""


class ChatService:
    def __init__(self, box: StateBox, store: ConversationStore, models: Models | None,
                 clock: Clock, locks: ReplyLocks | None = None) -> None:
        self.box = box
        self.store = store
        self.models = models
        self.locks: ReplyLocks = locks or SoloLocks()
        self._growing: _GrowingReply | None = None
        self._messages_stale = False
        """Another tab changed the open chat's messages while this one was replying."""
        self._watched: dict[str, asyncio.Future[Any]] = {}
        """Replies streaming in another tab, each watched until that tab lets it go."""
        self._engine: ModelEngine | None = None
        self._stop_waiting: asyncio.Event | None = None
        """The engine answering the reply that is streaming."""
        self.clock = clock
        self.persist = True
        """False after a failed write: later writes are skipped (reads still work)."""
        self.readable = True
        """False when the store could not even be opened."""
        self._stream_listeners: list[StreamListener] = []
        self._deleted: dict[str, Conversation] = {}
        """Conversations deleted here that Undo can still put back."""
        self._turn_of: Models | None = None
        """Whose engine turn the streaming reply holds (see `_turn_and_engine`)."""

    # --- listeners ---------------------------------------------------------------

    def on_stream(self, listener: StreamListener) -> None:
        self._stream_listeners.append(listener)

    # --- storage -----------------------------------------------------------------

    def _storage_failed(self, failure: StoreFailure) -> None:
        self.persist = False
        self.box.update(storage_error=explain_store_failure(failure))

    async def start(self) -> None:
        """Open the store and read the conversation list."""
        try:
            await self.store.open()
            conversations = await self.store.list_conversations()
        except StoreFailure as failure:
            self._storage_failed(failure)
            self.readable = False
            self.box.update(conversations_loaded=True)
            return
        self.box.update(conversations=_sorted(conversations), conversations_loaded=True)

    async def open(self, conversation_id: str | None) -> None:
        """Show a conversation (None: a new, unsaved chat)."""
        state = self.box.state
        if conversation_id is None:
            self.box.update(active_id=None, not_found_id=None, messages=(),
                            new_chat_model=DEFAULT_MODEL_KEY, deleted_elsewhere_id=None,
                            unsent_text=None)
            self._load_requested()
            return
        if conversation_id == state.active_id and state.not_found_id is None:
            return
        if conversation_id != state.not_found_id:
            self.box.update(deleted_elsewhere_id=None, unsent_text=None)
        if not any(c.id == conversation_id for c in state.conversations):
            self.box.update(active_id=None, not_found_id=conversation_id, messages=())
            return
        messages: tuple[Message, ...] = ()
        if self.readable:
            try:
                messages = await self._read_messages(conversation_id)
            except StoreFailure as failure:
                self._storage_failed(failure)
        self.box.update(active_id=conversation_id, not_found_id=None, messages=messages)
        self._load_requested()

    async def _read_messages(self, conversation_id: str,
                             changed: Collection[str] | None = None) -> tuple[Message, ...]:
        """A conversation's stored messages, oldest first (with `changed`: the shown ones,
        with only those read again); a reply stored as streaming whose tab is gone
        (nobody holds its lock) reads as interrupted."""
        if changed is None:
            stored = sorted(await self.store.get_messages(conversation_id),
                            key=lambda m: m.created_at)
        else:
            fresh: dict[str, Message | None] = {}
            for mid in changed:
                found = await self.store.get_message(mid)
                fresh[mid] = found if found is None or found.conversation_id == \
                    conversation_id else None
            kept = {m.id: m for m in self.box.state.messages if m.id not in fresh}
            kept.update({mid: m for mid, m in fresh.items() if m is not None})
            stored = sorted(kept.values(), key=lambda m: m.created_at)
        if any(m.status is MessageStatus.STREAMING for m in stored):
            held = await self.locks.held()
            stored = [replace(m, status=MessageStatus.INTERRUPTED)
                      if m.status is MessageStatus.STREAMING and m.id not in held else m
                      for m in stored]
            own = self._growing.message.id if self._growing is not None else None
            for m in stored:
                if m.status is MessageStatus.STREAMING and m.id != own:
                    self._watch(m)
        return tuple(stored)

    def _watch(self, message: Message) -> None:
        """A reply streaming in another tab: read its chat again once that tab lets it go
        (finished, or gone without a word: then it reads as interrupted)."""
        if message.id in self._watched:
            return

        async def watch() -> None:
            try:
                await self.locks.released(message.id)
            finally:
                self._watched.pop(message.id, None)
            await self.refresh_messages(message.conversation_id)

        self._watched[message.id] = asyncio.ensure_future(watch())

    def _load_requested(self) -> None:
        """Opening a chat whose model is downloaded loads it (no download is started)."""
        if self.models is not None and self.engine_usable():
            self.models.conversation_model_changed(self.models.requested_key(), download=False)

    def engine_usable(self) -> bool:
        gpu = self.box.state.gpu
        return self.models is not None and (gpu is None or gpu.usable)

    def choose_model(self, key: str) -> str | None:
        """The user picked a model for the open chat (or the new chat): the state changes
        at once (the selector follows in the same frame); returns the conversation id to
        save the choice for, if any (see `save_model`)."""
        if model_for_key(key) is None:
            return None
        state = self.box.state
        conversation = state.active
        saved_for = None
        if conversation is None:
            self.box.update(new_chat_model=key)
        elif conversation.model != key:
            changed = replace(conversation, model=key)  # updatedAt stays: no reorder
            self.box.update(conversations=tuple(changed if c.id == conversation.id else c
                                                for c in state.conversations))
            saved_for = conversation.id
        if self.models is not None and self.engine_usable():
            self.models.conversation_model_changed(key, download=True)
        return saved_for

    async def save_model(self, conversation_id: str, key: str) -> None:
        await self._save("update_conversation", conversation_id, {"model": key})

    async def set_model(self, key: str) -> bool:
        """choose_model, then save the choice."""
        if model_for_key(key) is None:
            return False
        conversation_id = self.choose_model(key)
        if conversation_id is not None:
            await self.save_model(conversation_id, key)
        return True

    async def _save(self, action: str, *args: object) -> bool:
        """Store something; False if it wasn't (storage failed or is off). A write into a
        conversation another tab deleted raises StoreFailure CONVERSATION_DELETED (the
        caller decides what the user sees; storage itself is fine)."""
        if not self.persist:
            return False
        try:
            await getattr(self.store, action)(*args)
        except StoreFailure as failure:
            if conversation_was_deleted(failure):
                raise
            self._storage_failed(failure)
            return False
        return True

    def _conversation_gone(self, conversation_id: str, unsent: str | None = None) -> None:
        """Another tab deleted this conversation: drop it here; if it is open, show it as
        deleted elsewhere (with the text that couldn't be sent, if any)."""
        state = self.box.state
        changes: dict[str, Any] = {
            "conversations": tuple(c for c in state.conversations if c.id != conversation_id)}
        if state.active_id == conversation_id or state.not_found_id == conversation_id:
            changes.update(active_id=None, not_found_id=conversation_id, messages=(),
                           deleted_elsewhere_id=conversation_id, replying=False)
            if unsent is not None:
                changes.update(unsent_text=unsent)
        self.box.update(**changes)

    # --- sending -----------------------------------------------------------------

    def model_spec(self, conversation: Conversation | None) -> ModelSpec:
        key = conversation.model if conversation else DEFAULT_MODEL_KEY
        return model_for_key(key) or model_for_key(DEFAULT_MODEL_KEY)  # type: ignore[return-value]

    def model_id_for(self, spec: ModelSpec) -> str:
        gpu = self.box.state.gpu
        return spec.model_id(f16=bool(gpu and gpu.f16))

    async def send(self, text: str) -> bool:
        """Send a user message and stream the reply. False if nothing was sent."""
        content = text.strip()
        state = self.box.state
        if not content or state.replying or check_message(content) is not None:
            return False
        now = self.clock.now_ms()
        conversation = state.active
        if conversation is None and state.deleted_elsewhere_id is not None \
                and state.not_found_id == state.deleted_elsewhere_id:
            self.box.update(unsent_text=content)  # this chat is gone: offer a new one
            return False
        if conversation is None:
            conversation = Conversation(new_id(), title_from(content), state.new_chat_model,
                                        now, now)
            self.box.update(conversations=_sorted((conversation, *state.conversations)),
                            active_id=conversation.id, not_found_id=None, messages=())
            await self._save("add_conversation", conversation)
        user = Message(new_id(), conversation.id, Role.USER, content, None, now)
        touched = replace(conversation, updated_at=now)
        others = tuple(c for c in self.box.state.conversations if c.id != conversation.id)
        self.box.update(conversations=_sorted((touched, *others)),
                        messages=(*self.box.state.messages, user), replying=True)
        try:
            await self._save("add_message", user, now)
        except StoreFailure:  # deleted in another tab: nothing was stored
            self._conversation_gone(conversation.id, unsent=content)
            return False
        try:
            await self._reply(touched)
        finally:
            self.box.update(replying=False)
            await self._after_reply()
        return True

    async def keep_as_new_chat(self) -> bool:
        """Send the text that couldn't be sent (its chat was deleted in another tab) as
        the first message of a new chat."""
        text = self.box.state.unsent_text
        if not text:
            return False
        self.box.update(unsent_text=None, deleted_elsewhere_id=None, not_found_id=None,
                        active_id=None, messages=())
        return await self.send(text)

    def discard_unsent(self) -> None:
        self.box.update(unsent_text=None)

    async def _after_reply(self) -> None:
        """Messages another tab changed in the open chat while this one replied."""
        if self._messages_stale:
            self._messages_stale = False
            active = self.box.state.active_id
            if active is not None:
                await self.refresh_messages(active)

    def _history(self, spec: ModelSpec, resuming: bool = False) -> list[dict[str, str]]:
        history = [{"role": m.role.value, "content": m.content}
                   for m in self.box.state.messages
                   if m.status is not MessageStatus.ERROR and m.content
                   and m.role is not Role.UNKNOWN]  # a stored "system" etc. is only shown
        if resuming:
            history.append({"role": "user", "content": CONTINUE_PROMPT})
        fitted = fit_history(history, spec.context_window, REPLY_RESERVE_TOKENS)
        self.box.update(context_dropped=fitted.dropped, context_shortened=fitted.shortened)
        return list(fitted.messages)

    async def _reply(self, conversation: Conversation, resume: Message | None = None) -> None:
        """Stream a new reply, or with `resume` (an interrupted reply already in the
        state, marked streaming) stream its continuation after its text."""
        spec = self.model_spec(conversation)
        if resume is None:
            reply = Message(new_id(), conversation.id, Role.ASSISTANT, "",
                            self.model_id_for(spec), self.clock.now_ms(),
                            MessageStatus.STREAMING)
            history = self._history(spec)
            self.box.update(messages=(*self.box.state.messages, reply))
        else:
            reply = resume
            history = self._history(spec, resuming=True)
        await self._begin_growing(reply)
        try:
            await self._stream_reply(conversation, reply, history)
        finally:
            self._end_growing()

    async def _stream_reply(self, conversation: Conversation, reply: Message,
                            history: list[dict[str, str]]) -> None:
        if self.models is None or not self.engine_usable():
            problem = self.box.state.engine.error or NO_GPU
            await self._finish(reply, "", MessageStatus.ERROR, problem)
            return
        models = self.models
        lost_once = False
        while True:
            engine = await self._engine_or_stop(conversation.model, reply)
            if engine is None:
                return
            reply = self._credit(reply, engine)
            self._engine = engine
            models.reply_started()
            try:
                result = await engine.chat(history, self._emitter(reply.id))
            except EngineFailure as failure:
                if engine_was_lost(failure):
                    models.engine_lost(engine)
                    if not lost_once:  # the GPU was reset or the worker died: load it again
                        lost_once = True
                        reply = await self._restart(reply)
                        continue
                    problem = LOST_TWICE
                else:
                    problem = explain_engine_failure(failure)
                self.box.update(engine=replace(self.box.state.engine, error=problem))
                await self._finish(reply, "", MessageStatus.ERROR, problem)
                return
            finally:
                self._engine = None
                models.reply_ended()
                self._end_turn()
            break
        status = {"abort": MessageStatus.STOPPED, "length": MessageStatus.CUT}.get(
            result.finish_reason, MessageStatus.DONE)
        self.box.update(last_usage=result.usage)
        await self._finish(reply, result.content, status, None)

    async def _engine_or_stop(self, model_key: str, reply: Message) -> ModelEngine | None:
        """The engine for this reply, waiting for its model if needed; None when the user
        pressed Stop meanwhile or no model can answer (the reply is finished then)."""
        assert self.models is not None
        self._stop_waiting = asyncio.Event()
        waiting = asyncio.ensure_future(self._turn_and_engine(model_key))
        stop = asyncio.ensure_future(self._stop_waiting.wait())
        await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not waiting.done():  # Stop while the model was still on its way
            waiting.cancel()
            await self._finish(reply, "", MessageStatus.STOPPED, None)
            return None
        try:
            return waiting.result()
        except NoModel as no_model:
            await self._finish(reply, "", MessageStatus.ERROR, no_model.problem)
            return None

    async def _turn_and_engine(self, model_key: str) -> ModelEngine:
        """Wait for this reply's turn on the engine (another tab's reply may be using it),
        then for the engine; the turn is kept (until `_end_turn`) only with an engine. If
        this tab takes the models over meanwhile, it asks its own ModelService."""
        while True:
            models = self.models
            assert models is not None
            await models.take_turn()
            try:
                engine = await models.engine_for_reply(model_key)
            except ModelsMoved:
                models.end_turn()
                continue
            except BaseException:
                models.end_turn()
                raise
            self._turn_of = models
            return engine

    def _end_turn(self) -> None:
        models, self._turn_of = self._turn_of, None
        if models is not None:
            models.end_turn()

    def _credit(self, reply: Message, engine: ModelEngine) -> Message:
        """The reply records the model that really writes it."""
        writer = engine.loaded_model or reply.model
        if writer == reply.model:
            return reply
        credited = replace(reply, model=writer)
        self._replace_message(reply.id, credited)
        if self._growing is not None and self._growing.message.id == reply.id:
            self._growing.message = credited
        return credited

    async def _restart(self, reply: Message) -> Message:
        """The same reply started over (a fresh id, so no streamed text of the lost try
        stays; text it had before this stream, when continuing, is kept)."""
        fresh = replace(reply, id=new_id())
        growing = self._growing
        self._end_growing()
        if growing is not None:
            if growing.saving is not None:
                await growing.saving
            if growing.stored:  # a partial save of the lost try: it is replaced
                await self._save("delete_message", reply.id)
        self._replace_message(reply.id, fresh)
        await self._begin_growing(fresh)
        return fresh

    # --- the growing reply: saved as it streams, under its lock ----------------------

    async def _begin_growing(self, reply: Message) -> None:
        release = await self.locks.hold(reply.id)
        self._growing = _GrowingReply(reply, release)

    def _end_growing(self) -> None:
        growing, self._growing = self._growing, None
        if growing is not None:
            growing.release()

    def _grow(self, message_id: str, text: str) -> None:
        growing = self._growing
        if growing is None or growing.message.id != message_id or growing.ended:
            return
        growing.parts.append(text)
        now = self.clock.now_ms()
        if not self.persist or (growing.saved_at is not None
                                and now - growing.saved_at < SAVE_EVERY_MS):
            return
        if growing.saving is not None and not growing.saving.done():
            return
        growing.saved_at = now
        growing.saving = asyncio.ensure_future(self._save_growing(growing))

    async def _save_growing(self, growing: _GrowingReply) -> None:
        partial = replace(growing.message, content=growing.content,
                          status=MessageStatus.STREAMING)
        # A StoreFailure here: its chat was deleted in another tab (that tab's notice
        # says so here); the final save will find the same.
        with contextlib.suppress(StoreFailure):
            growing.stored = await self._save("put_message", partial, None) or growing.stored

    def partial_reply(self, unsettled: Callable[[str], bool] = lambda _cid: False
                      ) -> Message | None:
        """The reply streaming now as far as it has arrived, marked interrupted: what the
        page stores when it goes away (`pagehide`), where nothing can be read first. None
        when its chat is gone, or `unsettled` (another tab changed it, maybe deleted it,
        and this tab hasn't read it yet): the last periodic save stays then."""
        growing = self._growing
        if growing is None or growing.ended or not self.persist:
            return None
        if unsettled(growing.message.conversation_id):
            return None
        if not any(c.id == growing.message.conversation_id
                   for c in self.box.state.conversations):
            return None  # deleted in another tab: never store a message without its chat
        return replace(growing.message, content=growing.content,
                       status=MessageStatus.INTERRUPTED)

    def _replace_message(self, message_id: str, message: Message) -> None:
        self.box.update(messages=tuple(message if m.id == message_id else m
                                       for m in self.box.state.messages))

    def _emitter(self, message_id: str) -> Callable[[str], None]:
        return lambda text: self._emit(message_id, text)

    def _emit(self, message_id: str, text: str) -> None:
        self._grow(message_id, text)
        for listener in list(self._stream_listeners):
            listener(message_id, text)

    async def _finish(self, reply: Message, content: str, status: MessageStatus,
                      problem: UserMessage | None) -> None:
        """Store and show the reply as ended; `content` is this stream's text (after the
        text the reply had before it, when continuing)."""
        error = f"{problem.title} {problem.detail} {problem.action}" if problem else None
        final = replace(reply, content=reply.content + content, status=status, error=error)
        growing = self._growing
        if growing is not None and growing.message.id == reply.id:
            growing.ended = True  # the final save below supersedes any partial one
            if growing.saving is not None:
                await growing.saving
        if not any(c.id == reply.conversation_id for c in self.box.state.conversations):
            return  # its conversation was deleted meanwhile: nothing to keep
        # Saved first, then shown as finished: a finished reply is a stored reply.
        try:
            await self._save("put_message", final, self.clock.now_ms())
        except StoreFailure:  # deleted in another tab while the reply streamed
            self._conversation_gone(reply.conversation_id)
            return
        self.box.update(messages=tuple(final if m.id == reply.id else m
                                       for m in self.box.state.messages))

    # --- regenerate, rename, delete, import ----------------------------------------

    async def regenerate(self, message_id: str | None = None) -> bool:
        """Replace a reply (done, stopped, cut or failed; the last one unless `message_id`
        names another) with a new one. Everything after it goes too, as after an edit:
        the new reply answers the conversation as it was up to there."""
        state = self.box.state
        conversation = state.active
        if conversation is None or state.replying or not state.messages:
            return False
        index = len(state.messages) - 1 if message_id is None else next(
            (i for i, m in enumerate(state.messages) if m.id == message_id), None)
        if index is None:
            return False
        target = state.messages[index]
        if target.role is not Role.ASSISTANT or target.status is MessageStatus.STREAMING:
            return False
        return await self._answer_anew(conversation, state.messages[:index],
                                       state.messages[index:])

    async def edit_and_resend(self, message_id: str, text: str) -> bool:
        """Replace a message of yours with `text` and answer it anew: the replies and
        messages after it are deleted (earlier versions are not kept), the message keeps
        its place and date. False if nothing changed: no such message of yours in the open
        chat, a reply is streaming (here, or in another tab into what would be deleted),
        or the text can't be sent."""
        content = text.strip()
        state = self.box.state
        conversation = state.active
        if conversation is None or state.replying or not content \
                or check_message(content) is not None:
            return False
        index = next((i for i, m in enumerate(state.messages) if m.id == message_id), None)
        if index is None or state.messages[index].role is not Role.USER:
            return False
        edited = replace(state.messages[index], content=content)
        return await self._answer_anew(conversation, (*state.messages[:index], edited),
                                       state.messages[index + 1:], edited)

    async def _answer_anew(self, conversation: Conversation, kept: tuple[Message, ...],
                           removed: tuple[Message, ...], edited: Message | None = None
                           ) -> bool:
        """The thread becomes `kept` (ending with `edited`, a message of yours with new
        text, if one was edited) and a new reply answers it; `removed` are deleted from
        the store. False, and nothing changed, while another tab writes a reply among
        `removed`; False too if the chat was deleted in another tab meanwhile."""
        held = await self.locks.held()
        if any(m.id in held for m in removed):
            return False
        changes: dict[str, Any] = {"messages": kept, "replying": True}
        if edited is not None:  # like a send: the chat moves to the top
            conversation = replace(conversation, updated_at=self.clock.now_ms())
            others = tuple(c for c in self.box.state.conversations if c.id != conversation.id)
            changes["conversations"] = _sorted((conversation, *others))
        self.box.update(**changes)
        try:
            try:
                for message in removed:
                    await self._save("delete_message", message.id)
                if edited is not None:
                    await self._save("put_message", edited, conversation.updated_at)
            except StoreFailure:  # deleted in another tab meanwhile
                self._conversation_gone(conversation.id,
                                        unsent=edited.content if edited else None)
                return False
            await self._reply(conversation)
        finally:
            self.box.update(replying=False)
            await self._after_reply()
        return True

    async def continue_reply(self) -> bool:
        """Continue the last reply, when it was stopped, cut at the length limit or
        interrupted (its tab went away): the model writes on, and its text is appended
        to the reply."""
        state = self.box.state
        conversation = state.active
        if conversation is None or state.replying or not state.messages:
            return False
        last = state.messages[-1]
        if last.role is not Role.ASSISTANT or last.status not in CONTINUABLE:
            return False
        if last.id in await self.locks.held():
            return False  # another tab has just started continuing it
        resumed = replace(last, status=MessageStatus.STREAMING, error=None)
        self.box.update(messages=(*state.messages[:-1], resumed), replying=True)
        try:
            await self._reply(conversation, resume=resumed)
        finally:
            self.box.update(replying=False)
            await self._after_reply()
        return True

    async def rename(self, conversation_id: str, title: str) -> bool:
        """Give a conversation a new title (the list order does not change)."""
        clean = " ".join(title.split())
        target = next((c for c in self.box.state.conversations if c.id == conversation_id), None)
        if target is None or not clean or clean == target.title:
            return False
        renamed = replace(target, title=clean[:200])
        self.box.update(conversations=tuple(renamed if c.id == conversation_id else c
                                            for c in self.box.state.conversations))
        await self._save("update_conversation", conversation_id, {"title": renamed.title})
        return True

    async def delete(self, conversation_id: str) -> bool:
        """Delete a conversation and its messages; until `forget_deleted`, `undo_delete`
        puts it back exactly as it was stored."""
        state = self.box.state
        target = next((c for c in state.conversations if c.id == conversation_id), None)
        if target is None:
            return False
        if state.replying and state.active_id == conversation_id:
            await self.stop()
            state = self.box.state
        changes: dict[str, object] = {
            "conversations": tuple(c for c in state.conversations if c.id != conversation_id)}
        if state.active_id == conversation_id:
            changes.update(active_id=None, messages=(), not_found_id=None)
        self.box.update(**changes)
        self._deleted[conversation_id] = target
        await self._save("take_conversation", conversation_id)
        return True

    async def undo_delete(self, conversation_id: str) -> bool:
        """Put a conversation deleted here back (its stored records as they were: messages,
        title, model, dates); the other tabs are told like of any write. True: it is back."""
        kept = self._deleted.pop(conversation_id, None)
        if kept is None:
            return False
        conversation: Conversation | None = kept
        if self.persist:
            try:
                if await self.store.restore_conversation(conversation_id):
                    conversation = await self.store.get_conversation(conversation_id) or kept
            except StoreFailure as failure:
                self._storage_failed(failure)
                return False
        state = self.box.state
        if conversation is not None and not any(c.id == conversation_id
                                                for c in state.conversations):
            self.box.update(conversations=_sorted((conversation, *state.conversations)))
        return True

    def forget_deleted(self, conversation_id: str) -> None:
        """The Undo offer is over: the deleted records go for good."""
        self._deleted.pop(conversation_id, None)
        self.store.forget_taken(conversation_id)

    # --- what other tabs changed (core/sync.py calls these) ----------------------------

    async def refresh_conversations(self, ids: Collection[str] | None) -> None:
        """Read these conversations (None: all of them) again from the store, where
        another tab changed them; one that is gone is dropped (and, if open here, shown
        as deleted in another tab)."""
        if not self.readable or not self.persist:
            return  # this tab's list is not the store's (it can't read or write it)
        try:
            if ids is None:
                fresh = {c.id: c for c in await self.store.list_conversations()}
                gone = {c.id for c in self.box.state.conversations} - fresh.keys()
            else:
                fresh, gone = {}, set()
                for cid in ids:
                    found = await self.store.get_conversation(cid)
                    if found is None:
                        gone.add(cid)
                    else:
                        fresh[cid] = found
        except StoreFailure:
            return  # the next notice, or a reload, reads it again
        state = self.box.state
        before = state.active
        kept = [fresh.pop(c.id, c) for c in state.conversations if c.id not in gone]
        conversations = _sorted((*kept, *fresh.values()))
        if conversations != state.conversations:
            self.box.update(conversations=conversations)
        for cid in gone:
            if cid == state.active_id:
                if state.replying:
                    await self.stop()
                self._conversation_gone(cid)
        back = self.box.state
        if back.deleted_elsewhere_id is not None and back.unsent_text is None and \
                back.not_found_id == back.deleted_elsewhere_id and \
                any(c.id == back.deleted_elsewhere_id for c in back.conversations):
            # Put back (Undo in the tab that deleted it) while it was open here: show it.
            self.box.update(deleted_elsewhere_id=None)
            await self.open(back.not_found_id)
        after = self.box.state.active
        if before is not None and after is not None and before.model != after.model:
            self._load_requested()

    async def refresh_messages(self, conversation_id: str,
                               changed: Collection[str] | None = None) -> None:
        """Read the open conversation's messages again (another tab changed them). Not
        while this tab streams a reply into it: its reply lives in memory until it ends,
        and the messages are read then. With `changed`, only those messages are read
        (a notice names them): a long thread isn't read whole every time."""
        state = self.box.state
        if conversation_id != state.active_id or not self.readable or not self.persist:
            return
        if state.replying:
            self._messages_stale = True
            return
        try:
            messages = await self._read_messages(conversation_id, changed)
        except StoreFailure:
            return
        state = self.box.state
        if state.active_id == conversation_id and not state.replying \
                and messages != state.messages:
            self.box.update(messages=messages)

    async def export(self, conversation_id: str | None) -> tuple[list[Conversation],
                                                                 dict[str, list[Message]]]:
        """Conversations (one, or all when None) and their messages, for an export file."""
        state = self.box.state
        chosen = [c for c in state.conversations
                  if conversation_id is None or c.id == conversation_id]
        messages: dict[str, list[Message]] = {}
        for c in chosen:
            if c.id == state.active_id:
                messages[c.id] = [m for m in state.messages
                                  if m.status is not MessageStatus.STREAMING]
            elif self.readable:
                messages[c.id] = await self.store.get_messages(c.id)
            else:
                messages[c.id] = []
        return chosen, messages

    async def import_bundle(self, conversations: tuple[Conversation, ...],
                            messages: tuple[Message, ...]) -> None:
        """Store imported conversations (ids already checked to be new)."""
        if self.persist:
            await self.store.import_conversations(list(conversations), list(messages))
        self.box.update(conversations=_sorted((*conversations, *self.box.state.conversations)))

    async def stop(self) -> None:
        """Stop the reply that is streaming; its partial text is kept. A reply still
        waiting for its model to download or load ends at once (the download goes on)."""
        if not self.box.state.replying:
            return
        if self._engine is not None:
            await self._engine.interrupt()
        elif self._stop_waiting is not None:
            self._stop_waiting.set()
