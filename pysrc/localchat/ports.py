"""What the core needs from the outside world, named for the core's needs.

Adapters implement these for the browser (Dexie, the WebLLM worker, the clock); tests
implement them as working in-memory fakes (tests/fakes.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .core.conversation import Conversation, Message

__all__ = [
    "ChatEngine",
    "ChatResult",
    "Clock",
    "ConversationStore",
    "DownloadRecords",
    "ModelEngine",
    "ModelRuntime",
    "ProgressCallback",
]

ProgressCallback = Callable[[float, str], None]
"""Called with WebLLM's (progress, text) for each load report."""
DeltaCallback = Callable[[str], None]
"""Called with newly streamed reply text (batched per animation frame)."""


@dataclass(frozen=True)
class ChatResult:
    content: str
    finish_reason: str
    """"stop", "length" or "abort" (stopped by the user)."""
    usage: dict[str, Any] | None = None


class ConversationStore(Protocol):
    """Where conversations and messages are kept. Failures raise StoreFailure."""

    async def open(self) -> None: ...
    async def list_conversations(self) -> list[Conversation]: ...
    async def get_messages(self, conversation_id: str) -> list[Message]: ...
    async def add_conversation(self, conversation: Conversation) -> None: ...
    async def add_message(self, message: Message, touch_updated_at: int | None) -> None: ...
    async def update_message(self, message: Message) -> None: ...
    async def delete_message(self, message_id: str) -> None: ...
    async def update_conversation(self, conversation_id: str,
                                  changes: dict[str, Any]) -> None: ...
    async def delete_conversation(self, conversation_id: str) -> None: ...
    async def import_conversations(self, conversations: list[Conversation],
                                   messages: list[Message]) -> None:
        """Add all of them in one transaction (all or nothing)."""
        ...


class ChatEngine(Protocol):
    """The model engine the user chats with. Failures raise EngineFailure."""

    @property
    def loaded_model(self) -> str | None: ...
    async def load(self, model_id: str, on_progress: ProgressCallback) -> None: ...
    async def chat(self, messages: Sequence[dict[str, str]],
                   on_delta: DeltaCallback) -> ChatResult: ...
    async def interrupt(self) -> None: ...


class ModelEngine(ChatEngine, Protocol):
    """One engine worker: loads one model, answers with it, can be stopped at once."""

    def terminate(self) -> None:
        """Stop the worker now (any phase); its pending calls fail with EngineTerminated."""
        ...


class ModelRuntime(Protocol):
    """Makes engines and answers questions about the model cache and storage."""

    def new_engine(self) -> ModelEngine: ...
    async def is_cached(self, model_id: str) -> bool: ...
    async def download_size(self, model_id: str) -> int | None: ...
    async def delete_model(self, model_id: str) -> None: ...
    async def storage(self) -> tuple[int | None, int | None, bool | None]:
        """(bytes used, quota, persisted) of this site's storage."""
        ...
    async def request_persistence(self) -> bool: ...


class DownloadRecords(Protocol):
    """Where the download queue is persisted. Failures raise StoreFailure."""

    async def load_downloads(self) -> list[dict[str, Any]]: ...
    async def save_download(self, record: dict[str, Any]) -> None: ...
    async def delete_download(self, key: str) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...
