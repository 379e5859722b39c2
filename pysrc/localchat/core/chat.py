"""Chat use cases: open a conversation, send a message, stream and stop the reply.

`ChatService` drives the ports (store, clock) and the ModelService (which engine
answers) and records every outcome in the
StateBox. It never touches the DOM: streamed text goes to `on_stream` listeners so the
UI can patch one node per animation frame instead of re-rendering the thread.
Storage failures never stop chatting: the conversation goes on unsaved, and the state
says so (`storage_error`). Nothing stored is ever deleted or rewritten on error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from ..ports import Clock, ConversationStore, ModelEngine
from .catalog import DEFAULT_MODEL_KEY, ModelSpec, model_for_key
from .context import fit_history
from .conversation import Conversation, Message, MessageStatus, Role, new_id, title_from
from .errors import (
    EngineFailure,
    StoreFailure,
    UserMessage,
    engine_was_lost,
    explain_engine_failure,
    explain_store_failure,
)
from .models import ModelService, NoModel
from .state import StateBox
from .tabs import ModelsMoved, RemoteModels

__all__ = ["MAX_MESSAGE_CHARS", "REPLY_RESERVE_TOKENS", "ChatService", "StreamListener",
           "check_message"]

MAX_MESSAGE_CHARS = 100_000
"""Longer messages cannot fit any catalog model's context window."""
REPLY_RESERVE_TOKENS = 1024
"""Room left in the context window for the reply."""

StreamListener = Callable[[str, str], None]
"""Called with (message id, new text) while a reply streams."""

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
                 clock: Clock) -> None:
        self.box = box
        self.store = store
        self.models = models
        self._engine: ModelEngine | None = None
        self._stop_waiting: asyncio.Event | None = None
        """The engine answering the reply that is streaming."""
        self.clock = clock
        self.persist = True
        """False after a failed write: later writes are skipped (reads still work)."""
        self.readable = True
        """False when the store could not even be opened."""
        self._stream_listeners: list[StreamListener] = []
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
                            new_chat_model=DEFAULT_MODEL_KEY)
            self._load_requested()
            return
        if conversation_id == state.active_id and state.not_found_id is None:
            return
        if not any(c.id == conversation_id for c in state.conversations):
            self.box.update(active_id=None, not_found_id=conversation_id, messages=())
            return
        messages: list[Message] = []
        if self.readable:
            try:
                messages = await self.store.get_messages(conversation_id)
            except StoreFailure as failure:
                self._storage_failed(failure)
        self.box.update(active_id=conversation_id, not_found_id=None,
                        messages=tuple(sorted(messages, key=lambda m: m.created_at)))
        self._load_requested()

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

    async def _save(self, action: str, *args: object) -> None:
        if not self.persist:
            return
        try:
            await getattr(self.store, action)(*args)
        except StoreFailure as failure:
            self._storage_failed(failure)

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
        await self._save("add_message", user, now)
        try:
            await self._reply(touched)
        finally:
            self.box.update(replying=False)
        return True

    def _history(self, spec: ModelSpec) -> list[dict[str, str]]:
        history = [{"role": m.role.value, "content": m.content}
                   for m in self.box.state.messages
                   if m.status is not MessageStatus.ERROR and m.content]
        fitted = fit_history(history, spec.context_window, REPLY_RESERVE_TOKENS)
        self.box.update(context_dropped=fitted.dropped, context_shortened=fitted.shortened)
        return list(fitted.messages)

    async def _reply(self, conversation: Conversation) -> None:
        spec = self.model_spec(conversation)
        reply = Message(new_id(), conversation.id, Role.ASSISTANT, "", self.model_id_for(spec),
                        self.clock.now_ms(), MessageStatus.STREAMING)
        history = self._history(spec)
        self.box.update(messages=(*self.box.state.messages, reply))
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
                        reply = self._restart(reply)
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
        status = MessageStatus.STOPPED if result.finish_reason == "abort" else MessageStatus.DONE
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
        return credited

    def _restart(self, reply: Message) -> Message:
        """The same reply started over (a fresh id, so no streamed text of the lost try stays)."""
        fresh = replace(reply, id=new_id(), content="")
        self._replace_message(reply.id, fresh)
        return fresh

    def _replace_message(self, message_id: str, message: Message) -> None:
        self.box.update(messages=tuple(message if m.id == message_id else m
                                       for m in self.box.state.messages))

    def _emitter(self, message_id: str) -> Callable[[str], None]:
        return lambda text: self._emit(message_id, text)

    def _emit(self, message_id: str, text: str) -> None:
        for listener in list(self._stream_listeners):
            listener(message_id, text)

    async def _finish(self, reply: Message, content: str, status: MessageStatus,
                      problem: UserMessage | None) -> None:
        error = f"{problem.title} {problem.detail} {problem.action}" if problem else None
        final = replace(reply, content=content, status=status, error=error)
        if not any(c.id == reply.conversation_id for c in self.box.state.conversations):
            return  # its conversation was deleted meanwhile: nothing to keep
        # Saved first, then shown as finished: a finished reply is a stored reply.
        await self._save("add_message", final, self.clock.now_ms())
        self.box.update(messages=tuple(final if m.id == reply.id else m
                                       for m in self.box.state.messages))

    # --- regenerate, rename, delete, import ----------------------------------------

    async def regenerate(self) -> bool:
        """Replace the last reply (done, stopped or failed) with a new one."""
        state = self.box.state
        conversation = state.active
        if conversation is None or state.replying or not state.messages:
            return False
        last = state.messages[-1]
        if last.role is not Role.ASSISTANT or last.status is MessageStatus.STREAMING:
            return False
        self.box.update(messages=state.messages[:-1], replying=True)
        await self._save("delete_message", last.id)
        try:
            await self._reply(conversation)
        finally:
            self.box.update(replying=False)
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
        """Delete a conversation and its messages (the caller has asked the user)."""
        state = self.box.state
        if not any(c.id == conversation_id for c in state.conversations):
            return False
        if state.replying and state.active_id == conversation_id:
            await self.stop()
        changes: dict[str, object] = {
            "conversations": tuple(c for c in state.conversations if c.id != conversation_id)}
        if state.active_id == conversation_id:
            changes.update(active_id=None, messages=(), not_found_id=None)
        self.box.update(**changes)
        await self._save("delete_conversation", conversation_id)
        return True

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
