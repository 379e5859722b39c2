"""What the core needs from the outside world, named for the core's needs.

Adapters implement these for the browser (Dexie, the WebLLM worker, the clock); tests
implement them as working in-memory fakes (tests/fakes.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .core.conversation import Conversation, Message
from .core.downloader import FetchedFile, FileCheck, FileRequest, ModelSource

__all__ = [
    "BytesCallback",
    "ChatEngine",
    "ChatResult",
    "Clock",
    "ConversationStore",
    "DownloadRecords",
    "FileTransport",
    "ModelEngine",
    "ModelRuntime",
    "ProgressCallback",
    "ReplyLocks",
    "TabLink",
]

ProgressCallback = Callable[[float, str], None]
"""Called with WebLLM's (progress, text) for each load report."""
BytesCallback = Callable[[int, "int | None"], None]
"""(bytes of one file received so far, its full length as far as known)."""
CrashCallback = Callable[[str], None]
"""Called with a technical message when an engine worker dies by itself."""
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
    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    async def get_messages(self, conversation_id: str) -> list[Message]: ...
    async def get_message(self, message_id: str) -> Message | None: ...
    async def add_conversation(self, conversation: Conversation) -> None: ...
    async def add_message(self, message: Message, touch_updated_at: int | None) -> None:
        """Insert a message (and set its conversation's updatedAt when asked), only if its
        conversation exists, in one transaction: else StoreFailure CONVERSATION_DELETED."""
        ...
    async def put_message(self, message: Message, touch_updated_at: int | None) -> None:
        """As add_message, but overwriting a stored message of the same id (a reply saved
        as it grows)."""
        ...
    async def update_message(self, message: Message) -> None: ...
    async def delete_message(self, message_id: str) -> None: ...
    async def update_conversation(self, conversation_id: str,
                                  changes: dict[str, Any]) -> None: ...
    async def delete_conversation(self, conversation_id: str) -> None: ...
    async def take_conversation(self, conversation_id: str) -> None:
        """Delete a conversation and its messages, keeping their records exactly as they
        were stored, so that `restore_conversation` can put them back (Undo)."""
        ...
    async def restore_conversation(self, conversation_id: str) -> bool:
        """Put a taken conversation back, every record as it was (all or nothing); False
        when there is nothing to put back (forgotten, or put back already)."""
        ...
    def forget_taken(self, conversation_id: str) -> None:
        """The Undo offer is over: drop the taken records."""
        ...
    async def import_conversations(self, conversations: list[Conversation],
                                   messages: list[Message]) -> None:
        """Add all of them in one transaction (all or nothing)."""
        ...


class ReplyLocks(Protocol):
    """Which replies are streaming in some tab (Web Locks in the browser): the tab that
    streams a reply holds its lock; the lock goes when the tab goes."""

    async def hold(self, message_id: str) -> Callable[[], None]:
        """Hold the reply's lock (returns once held); call the result to release it."""
        ...

    async def held(self) -> set[str]:
        """Ids of the messages whose lock any tab holds now."""
        ...

    async def released(self, message_id: str) -> None:
        """Return once no tab holds the reply's lock (its tab finished or went away)."""
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
    """Makes engines, says where each model's files come from, and reads the storage."""

    def new_engine(self, on_crash: CrashCallback) -> ModelEngine:
        """A new engine worker; `on_crash` is called if it dies by itself."""
        ...

    async def model_source(self, model_id: str) -> ModelSource:
        """Where the model's files come from (its WebLLM record); EngineFailure if unknown."""
        ...

    async def storage(self) -> tuple[int | None, int | None, bool | None]:
        """(bytes used, quota, persisted) of this site's storage."""
        ...
    async def request_persistence(self) -> bool: ...


class FileTransport(Protocol):
    """Fetches, checks and stores single model files (the download worker in the browser;
    a fake model host in tests). Failures raise core.downloader.FetchFailure."""

    async def fetch(self, request: FileRequest, on_bytes: BytesCallback) -> FetchedFile:
        """Fetch, check and store one file. Cancelling the awaiting task aborts it."""
        ...

    async def stored(self, files: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Of these (cache, url) pairs, the stored ones with their sizes, by URL."""
        ...

    async def read_stored(self, cache: str, url: str,
                          check: FileCheck) -> dict[str, Any] | None:
        """The parsed summary of a stored JSON file (None if absent or unreadable)."""
        ...

    async def peek(self, url: str, check: FileCheck) -> dict[str, Any] | None:
        """Read a JSON file without storing it, only where that contacts no remote host."""
        ...

    async def remove(self, files: Sequence[tuple[str, str]],
                     prefixes: Sequence[tuple[str, str]] = ()) -> None:
        """Delete these (cache, url) entries and every key starting with a (cache, prefix)."""
        ...


class DownloadRecords(Protocol):
    """Where the download queue is persisted. Failures raise StoreFailure."""

    async def load_downloads(self) -> list[dict[str, Any]]: ...
    async def save_download(self, record: dict[str, Any]) -> None: ...
    async def delete_download(self, key: str) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...


class TabLink(Protocol):
    """This tab's line to the other open tabs of the site (BroadcastChannel and Web Locks
    in the browser; an in-memory bus in tests). Messages are plain dicts; `post` adds
    `from` (this tab's id); a message with `to` reaches only that tab."""

    tab_id: str

    def post(self, message: dict[str, Any]) -> None: ...

    def on_message(self, handler: Callable[[dict[str, Any]], None]) -> None:
        """Messages from the other tabs go to `handler` (replacing the one before)."""
        ...

    async def when_gone(self, tab_id: str) -> None:
        """Returns once that tab is closed (at once if it is gone already)."""
        ...
