"""Failures that cross from adapters into the core, and their plain-words explanations.

Adapters raise `EngineFailure` or `StoreFailure` carrying the JS error's name and message
(WebLLM errors cross the worker as strings like "ShaderF16SupportError: …"; the JS
bridges turn them into named Errors). `explain_engine_failure` and
`explain_store_failure` map them to what the user reads and can do next.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONVERSATION_DELETED",
    "EngineFailure",
    "StoreFailure",
    "UserMessage",
    "conversation_was_deleted",
    "engine_was_lost",
    "explain_engine_failure",
    "explain_start_failure",
    "explain_store_failure",
    "storage_refused",
]


class EngineFailure(Exception):
    """The model engine (worker) rejected a call."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class StoreFailure(Exception):
    """The conversation store (IndexedDB through Dexie) rejected a call."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


CONVERSATION_DELETED = "ConversationDeletedError"
"""StoreFailure name of a write into a conversation that no longer exists (another tab
deleted it): the store checks inside the write's own transaction, and stores nothing."""


def conversation_was_deleted(failure: StoreFailure) -> bool:
    return failure.name == CONVERSATION_DELETED


@dataclass(frozen=True)
class UserMessage:
    """What the user reads: a title, the detail, and the next action."""

    title: str
    detail: str
    action: str


_NETWORK_HINTS = ("failed to fetch", "networkerror", "cannot fetch", "network error",
                  "err_name_not_resolved", "load failed")


def explain_engine_failure(failure: EngineFailure) -> UserMessage:
    name, text = failure.name, failure.message
    lowered = f"{name} {text}".lower()
    if name == "ShaderF16SupportError" or "shader-f16" in lowered:
        return UserMessage("This model needs a GPU feature your browser doesn't offer.",
                           "The f16 variant needs WebGPU's shader-f16 feature.",
                           "Choose another model, or use an up-to-date Chrome or Edge.")
    if name == "WebGPUNotAvailableError" or "webgpu is not" in lowered:
        return UserMessage("WebGPU isn't available here, so models can't run.",
                           text, "Use a recent Chrome or Edge on a computer with a GPU.")
    if name == "DeviceLostError" or "device was lost" in lowered or "devicelost" in lowered:
        return UserMessage("The GPU stopped while loading the model.",
                           "This usually means the model needs more GPU memory than is free.",
                           "Close other GPU-heavy tabs or apps, or choose a smaller model.")
    if name == "QuotaExceededError" or "quota" in lowered:
        return UserMessage("There isn't enough storage space for this model.", text,
                           "Free some disk space or delete a downloaded model, then retry.")
    if name == "EngineWorkerError":
        return UserMessage("The model engine could not start.", text,
                           "Reload the page. If it keeps failing, the site's files may be "
                           "incomplete.")
    if name == "StallError":
        return UserMessage("The download stopped making progress.",
                           "The connection to the model host stalled, even after retries.",
                           "Check the connection, then retry: it resumes where it stopped.")
    if name == "TimeoutError":
        return UserMessage("The model engine stopped responding.", text,
                           "Try again; if it keeps happening, reload the page.")
    if name == "ContextWindowSizeExceededError":
        return UserMessage("This conversation is too long for the model.", text,
                           "Start a new chat, or shorten your message.")
    if any(hint in lowered for hint in _NETWORK_HINTS):
        return UserMessage("Can't reach the model host.",
                           "The model's files could not be downloaded. Check your internet "
                           "connection (models download once, then work offline).",
                           "Check the connection and try again.")
    if name == "ModelNotFoundError" or "cannot find model record" in lowered:
        # WebLLM's list of models (its prebuiltAppConfig) has no record of this id: the
        # site's files don't match each other. Its own words name appConfig and model_list.
        return UserMessage("The model engine doesn't know this model.",
                           "This copy of LocalChat lists a model its engine has no record "
                           "of; the site's files may be out of date or incomplete.",
                           "Reload the page to get the current version, or choose another "
                           "model.")
    if name == "EngineTerminated":
        return UserMessage("The model engine was stopped.", text, "Try again.")
    return UserMessage("The model engine reported an error.", f"{name}: {text}", "Try again.")


_LOST_NAMES = frozenset({"ModelNotLoadedError", "DeviceLostError", "EngineWorkerError"})


def engine_was_lost(failure: EngineFailure) -> bool:
    """The engine can't answer any more (its GPU device was lost or reset, its worker
    died): drop it, and load the model again from the cache."""
    lowered = failure.message.lower()
    return (failure.name in _LOST_NAMES or "device was lost" in lowered
            or "device is lost" in lowered or "model not loaded" in lowered)


def explain_start_failure(failure: EngineFailure, label: str, vram_mb: float) -> UserMessage:
    """A model whose files are all stored couldn't start (never "download failed")."""
    name, text = failure.name, failure.message
    lowered = f"{name} {text}".lower()
    gigabytes = max(1, round(vram_mb / 1024))
    title = f"{label} couldn't start."
    action = "Retry, or remove its files and choose a smaller model."
    if name == "DeviceLostError" or "device was lost" in lowered or "out of memory" in lowered:
        return UserMessage(title, f"{label} needs about {gigabytes} GB of GPU memory, and the "
                                  "GPU ran out or was reset while loading it.",
                           "Close other GPU-heavy tabs or apps, then retry; or choose a "
                           "smaller model.")
    if name == "ShaderF16SupportError" or "shader-f16" in lowered:
        return UserMessage(title, "It needs WebGPU's shader-f16 feature, which this GPU "
                                  "doesn't offer.", "Choose another model.")
    if name == "WebGPUNotAvailableError" or "webgpu is not" in lowered:
        return UserMessage(title, "WebGPU isn't available in this browser.",
                           "Use a recent Chrome or Edge on a computer with a GPU.")
    if name == "EngineWorkerError":
        return UserMessage(title, "The model engine could not start, or stopped while "
                                  "loading it.", "Reload the page, then retry.")
    if name == "TimeoutError":
        return UserMessage(title, "Loading it onto the GPU took far too long.", action)
    return UserMessage(title, "Its files are stored, but its model library didn't load in "
                              "this browser (it may be damaged, or not made for this WebLLM).",
                       "Retry: LocalChat fetches the library again. If it keeps failing, "
                       "remove its files.")


_REFUSED_NAMES = frozenset({"StorageRefusedError", "MissingAPIError", "SecurityError",
                            "InvalidStateError"})
"""Errors of a browser that won't let the site store anything (private modes, site data
blocked, IndexedDB turned off). db-bridge.js names its storage check's finding
StorageRefusedError; the others are what IndexedDB or Dexie throw when opening."""


def storage_refused(failure: StoreFailure) -> bool:
    """The browser refuses to store anything for this site (not a fault of the site's
    files, nor of one write)."""
    lowered = f"{failure.name} {failure.message}".lower()
    return (failure.name in _REFUSED_NAMES or "indexeddb is not available" in lowered
            or (failure.name == "UnknownError"
                and ("denied" in lowered or "permission" in lowered)))


def explain_store_failure(failure: StoreFailure) -> UserMessage:
    name, text = failure.name, failure.message
    lowered = f"{name} {text}".lower()
    keep = "Chats in this window still work but will not be saved."
    if conversation_was_deleted(failure):
        return UserMessage("This chat was deleted in another tab.",
                           "Nothing was saved into it; your other chats are unchanged.",
                           "Keep your message as a new chat, or open another chat.")
    if storage_refused(failure):
        return UserMessage("This browser isn't letting LocalChat store anything.",
                           "Saving data is turned off for this site (private browsing, or "
                           "site data blocked in the browser's settings), so conversations "
                           "from earlier visits can't be shown either. " + keep,
                           "To keep your conversations, open LocalChat in a normal (not "
                           "private) window, or allow this site to store data in the "
                           "browser's settings, then reload.")
    if name == "QuotaExceededError" or "quota" in lowered:
        return UserMessage("Storage is full.", "The browser refused to store more data. " + keep,
                           "Free disk space or delete downloaded models, then reload.")
    if name == "VersionChangeError":
        return UserMessage("This tab has stopped using your saved conversations.",
                           "LocalChat was updated in another tab, so this tab let go of them "
                           "for the update to finish; nothing saved was lost. " + keep,
                           "Reload this tab to continue.")
    if name in {"VersionError", "UpgradeError"}:
        return UserMessage("Your conversations were saved by a newer LocalChat.",
                           "This version can't open them; nothing was changed. " + keep,
                           "Reload to get the newest version.")
    if name in {"DatabaseClosedError", "StoreNotOpenError"} or "blocked" in lowered:
        return UserMessage("Conversation storage was closed.",
                           "Another LocalChat tab may be updating it. " + keep,
                           "Reload this tab.")
    if name in _CLASH_NAMES or "key already exists" in lowered or "bulkadd" in lowered:
        return UserMessage("Something with the same id is already stored.",
                           "A conversation or message with one of these ids was saved "
                           "meanwhile (perhaps in another tab), so nothing was saved.",
                           "Try again: LocalChat gives anything already here a new id.")
    if name == "DataCloneError":
        return UserMessage("Part of this can't be stored.",
                           "It contains a value the browser's storage can't keep, so "
                           "nothing was saved.", "Try again; if it keeps failing, reload.")
    if name in {"AbortError", "TimeoutError", "TransactionInactiveError"}:
        return UserMessage("Saving was interrupted.",
                           "The browser's storage stopped the change before it finished, "
                           "so nothing of it was saved.", "Try again.")
    # The browser's own error names (Dexie's "BulkError", "UnknownError"…) mean nothing
    # to the reader: they stay off the page.
    return UserMessage("Conversations can't be saved right now.",
                       f"The browser's storage refused the change. {keep}",
                       "Reload the page; your saved conversations are not deleted.")


_CLASH_NAMES = frozenset({"ConstraintError", "BulkError"})
"""What IndexedDB (and Dexie's bulk operations) report for an id that already exists."""
