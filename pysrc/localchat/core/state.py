"""The app's runtime state and the one place it changes.

`AppState` is immutable; `StateBox.update` swaps in a new one and tells listeners
(views, routing) what the old and new states were. The box knows nothing of the DOM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .catalog import DEFAULT_MODEL_KEY, model_for_key
from .conversation import Conversation, Message
from .downloads import DownloadItem
from .errors import UserMessage
from .gpu import GpuReport
from .settings import EngineChoice, EngineKind

__all__ = ["AppState", "EngineStatus", "Listener", "StateBox", "StorageInfo"]


@dataclass(frozen=True)
class StorageInfo:
    usage: int | None
    quota: int | None
    persisted: bool | None


@dataclass(frozen=True)
class EngineStatus:
    loaded_model: str | None = None
    """What the chat engine can answer with right now (a WebLLM model id)."""
    error: UserMessage | None = None


@dataclass(frozen=True)
class AppState:
    engine_choice: EngineChoice = field(default_factory=lambda: EngineChoice(EngineKind.WEBLLM))
    gpu: GpuReport | None = None
    conversations: tuple[Conversation, ...] = ()
    conversations_loaded: bool = False
    active_id: str | None = None
    """The open conversation (from the route); None for a new, unsaved chat."""
    not_found_id: str | None = None
    deleted_elsewhere_id: str | None = None
    """The conversation that was open here and was deleted in another tab (shown as not
    found, saying so)."""
    unsent_text: str | None = None
    """A message that wasn't sent because its chat was deleted in another tab: offered
    to be kept as a new chat."""
    messages: tuple[Message, ...] = ()
    replying: bool = False
    engine: EngineStatus = field(default_factory=EngineStatus)
    storage_error: UserMessage | None = None
    last_usage: dict[str, Any] | None = None
    """WebLLM's usage report of the last reply (its `extra` has the speeds)."""
    context_dropped: int = 0
    """Earlier messages left out of the last prompt to fit the context window."""
    context_shortened: bool = False
    """The last prompt's newest message alone was too long: only its end was sent."""
    new_chat_model: str = DEFAULT_MODEL_KEY
    """The model chosen for the new, unsaved chat (saved with it on the first send)."""
    downloads: dict[str, DownloadItem] = field(default_factory=dict)
    """Lifecycle of each model that has one, by catalog key (absent: not downloaded)."""
    model_sizes: dict[str, int] = field(default_factory=dict)
    """Exact download sizes in bytes, by catalog key, once known."""
    storage: StorageInfo | None = None
    models_checking: bool = False
    """The stored download records and files are still being read (after boot): until
    then `downloads` is not known, and the model controls say "Checking…" rather than a
    state that may be false ("not downloaded" for a model that is stored)."""

    @property
    def active(self) -> Conversation | None:
        return next((c for c in self.conversations if c.id == self.active_id), None)

    @property
    def requested_model_key(self) -> str:
        """The model the active conversation (or the new chat) asks for."""
        active = self.active
        key = active.model if active is not None else self.new_chat_model
        return key if model_for_key(key) is not None else DEFAULT_MODEL_KEY


Listener = Callable[[AppState, AppState], None]


class StateBox:
    """Holds the current AppState and announces each change."""

    def __init__(self, initial: AppState | None = None) -> None:
        self._state = initial or AppState()
        self._listeners: list[Listener] = []

    @property
    def state(self) -> AppState:
        return self._state

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def update(self, **changes: Any) -> AppState:
        old = self._state
        self._state = replace(old, **changes)
        for listener in list(self._listeners):
            listener(old, self._state)
        return self._state
