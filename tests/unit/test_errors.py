"""Engine and store failures explained in plain words, one branch at a time."""

from __future__ import annotations

import pytest

from localchat.core.errors import (
    EngineFailure,
    StoreFailure,
    UserMessage,
    explain_engine_failure,
    explain_store_failure,
    storage_refused,
)

F16 = "This model needs a GPU feature your browser doesn't offer."
NO_WEBGPU = "WebGPU isn't available here, so models can't run."
DEVICE_LOST = "The GPU stopped while loading the model."
QUOTA = "There isn't enough storage space for this model."
WORKER = "The model engine could not start."
TIMEOUT = "The model engine stopped responding."
TOO_LONG = "This conversation is too long for the model."
NETWORK = "Can't reach the model host."
TERMINATED = "The model engine was stopped."
GENERIC = "The model engine reported an error."


def test_failures_carry_name_and_message() -> None:
    failure = EngineFailure("TimeoutError", "no answer in 30 s")
    assert (failure.name, failure.message) == ("TimeoutError", "no answer in 30 s")
    assert str(failure) == "TimeoutError: no answer in 30 s"
    assert str(StoreFailure("QuotaExceededError", "full")) == "QuotaExceededError: full"


UNKNOWN_MODEL = "The model engine doesn't know this model."


@pytest.mark.parametrize("name, message, title", [
    ("ShaderF16SupportError", "This model requires the feature shader-f16", F16),
    ("Error", "Adapter lacks shader-f16", F16),
    ("WebGPUNotAvailableError", "navigator.gpu is undefined", NO_WEBGPU),
    ("Error", "WebGPU is not supported in your current environment", NO_WEBGPU),
    ("DeviceLostError", "The GPU device was lost", DEVICE_LOST),
    ("Error", "Device was lost during load", DEVICE_LOST),
    ("GPUDeviceLostInfo", "reason: destroyed (DeviceLost)", DEVICE_LOST),
    ("QuotaExceededError", "The quota has been exceeded.", QUOTA),
    ("Error", "Storage quota reached while caching", QUOTA),
    ("EngineWorkerError", "worker script failed to load", WORKER),
    ("TimeoutError", "The engine did not answer within 60 s", TIMEOUT),
    ("ContextWindowSizeExceededError", "Prompt tokens exceed context window size", TOO_LONG),
    ("TypeError", "Failed to fetch", NETWORK),
    ("TypeError", "NetworkError when attempting to fetch resource.", NETWORK),
    ("TypeError", "Load failed", NETWORK),
    ("Error", "Cannot fetch https://huggingface.co/...", NETWORK),
    ("Error", "net::ERR_NAME_NOT_RESOLVED", NETWORK),
    ("EngineTerminated", "The engine was terminated", TERMINATED),
    ("ModelNotFoundError", "Cannot find model record for foo", UNKNOWN_MODEL),
])
def test_engine_failure_titles(name: str, message: str, title: str) -> None:
    assert explain_engine_failure(EngineFailure(name, message)).title == title


def test_shader_f16_explains_the_feature_and_suggests_another_model() -> None:
    msg = explain_engine_failure(EngineFailure("ShaderF16SupportError", "x"))
    assert msg == UserMessage(F16, "The f16 variant needs WebGPU's shader-f16 feature.",
                              "Choose another model, or use an up-to-date Chrome or Edge.")


def test_device_lost_points_at_gpu_memory() -> None:
    msg = explain_engine_failure(EngineFailure("DeviceLostError", "lost"))
    assert "more GPU memory" in msg.detail
    assert "smaller model" in msg.action


@pytest.mark.parametrize("name", ["WebGPUNotAvailableError", "QuotaExceededError",
                                  "EngineWorkerError", "TimeoutError",
                                  "ContextWindowSizeExceededError", "EngineTerminated"])
def test_these_branches_show_the_engines_own_text(name: str) -> None:
    assert explain_engine_failure(EngineFailure(name, "the original words")).detail == \
        "the original words"


def test_network_failure_says_to_check_the_connection() -> None:
    msg = explain_engine_failure(EngineFailure("TypeError", "Failed to fetch"))
    assert "internet connection" in msg.detail
    assert msg.action == "Check the connection and try again."


def test_specific_names_win_over_network_words() -> None:
    failure = EngineFailure("EngineWorkerError", "Failed to fetch worker.js")
    assert explain_engine_failure(failure).title == WORKER


def test_an_unknown_engine_error_keeps_its_name_and_text() -> None:
    msg = explain_engine_failure(EngineFailure("WeirdError", "something odd"))
    assert msg == UserMessage(GENERIC, "WeirdError: something odd", "Try again.")


# --- the store ---------------------------------------------------------------------------

PRIVATE = "This browser isn't letting LocalChat store anything."
FULL = "Storage is full."
NEWER = "Your conversations were saved by a newer LocalChat."
UPDATED_ELSEWHERE = "This tab has stopped using your saved conversations."
CLOSED = "Conversation storage was closed."
STORE_GENERIC = "Conversations can't be saved right now."
KEEP = "Chats in this window still work but will not be saved."


@pytest.mark.parametrize("name, message, title", [
    ("MissingAPIError", "IndexedDB API missing", PRIVATE),
    ("InvalidStateError", "A mutation operation was attempted", PRIVATE),
    ("SecurityError", "The operation is insecure.", PRIVATE),
    ("Error", "IndexedDB is not available in this window", PRIVATE),
    ("StorageRefusedError", "This browser refuses to store data for this site "
                            "(UnknownError: The user denied permission)", PRIVATE),
    ("UnknownError", "The user denied permission to access the database.", PRIVATE),
    ("VersionChangeError", "Another tab opened a newer version", UPDATED_ELSEWHERE),
    ("QuotaExceededError", "Quota exceeded", FULL),
    ("AbortError", "Transaction aborted: quota reached", FULL),
    ("VersionError", "The requested version (1) is less than the existing version (3).", NEWER),
    ("UpgradeError", "upgrade failed", NEWER),
    ("DatabaseClosedError", "Database has been closed", CLOSED),
    ("StoreNotOpenError", "open() was not called", CLOSED),
    ("OpenFailedError", "The open request was blocked by another tab", CLOSED),
    ("UnknownError", "Internal error opening backing store", STORE_GENERIC),
])
def test_store_failure_titles(name: str, message: str, title: str) -> None:
    assert explain_store_failure(StoreFailure(name, message)).title == title


@pytest.mark.parametrize("name", ["MissingAPIError", "StorageRefusedError", "QuotaExceededError",
                                  "VersionError", "VersionChangeError", "DatabaseClosedError",
                                  "UnknownError"])
def test_every_store_explanation_says_chatting_goes_on_unsaved(name: str) -> None:
    assert KEEP in explain_store_failure(StoreFailure(name, "x")).detail


@pytest.mark.parametrize("name", ["MissingAPIError", "StorageRefusedError", "SecurityError",
                                  "InvalidStateError"])
def test_refused_storage_names_the_cause_and_what_to_do(name: str) -> None:
    msg = explain_store_failure(StoreFailure(name, "x"))
    assert "private browsing" in msg.detail and "site data blocked" in msg.detail
    assert "normal (not private) window" in msg.action
    assert "allow this site to store data" in msg.action
    # The cause is the browser's setting, never the site's files.
    assert "rebuild" not in f"{msg.title} {msg.detail} {msg.action}".lower()


def test_storage_refused_tells_refusals_from_other_failures() -> None:
    assert storage_refused(StoreFailure("StorageRefusedError", "x"))
    assert storage_refused(StoreFailure("UnknownError", "The user denied permission"))
    assert not storage_refused(StoreFailure("UnknownError", "Internal error opening backing "
                                                            "store"))
    assert not storage_refused(StoreFailure("QuotaExceededError", "full"))
    assert not storage_refused(StoreFailure("VersionChangeError", "newer version elsewhere"))


def test_an_update_in_another_tab_asks_to_reload_and_loses_nothing() -> None:
    msg = explain_store_failure(StoreFailure("VersionChangeError", "x"))
    assert "another tab" in msg.detail and "nothing saved was lost" in msg.detail
    assert msg.action == "Reload this tab to continue."


def test_newer_version_promises_nothing_was_changed() -> None:
    msg = explain_store_failure(StoreFailure("VersionError", "x"))
    assert "nothing was changed" in msg.detail


def test_an_unknown_store_error_reassures_in_plain_words() -> None:
    msg = explain_store_failure(StoreFailure("UnknownError", "disk on fire"))
    assert "UnknownError" not in f"{msg.title} {msg.detail} {msg.action}"
    assert "not deleted" in msg.action


@pytest.mark.parametrize("name, text", [
    ("BulkError", "messages.bulkAdd(): 1 of 3 operations failed. Errors: ConstraintError: "
                  "Key already exists in the object store."),
    ("ConstraintError", "Key already exists in the object store."),
    ("DataCloneError", "could not be cloned"), ("AbortError", "aborted"),
    ("TimeoutError", "timed out"), ("DatabaseClosedError", "closed"),
    ("OpenFailedError", "open failed"), ("UnknownError", "internal error"),
    ("QuotaExceededError", "quota"), ("VersionError", "x"),
])
def test_no_store_error_shows_a_class_name(name: str, text: str) -> None:
    msg = explain_store_failure(StoreFailure(name, text))
    shown = f"{msg.title} {msg.detail} {msg.action}"
    for word in ("Error", "Dexie", "bulkAdd", "messages."):
        assert word not in shown, (name, shown)


def test_webllm_not_knowing_the_model_is_said_in_plain_words() -> None:
    text = ("Cannot find model record in appConfig for Llama-9-MLC. Please check if the model "
            "ID is correct and included in the model_list configuration.")
    msg = explain_engine_failure(EngineFailure("ModelNotFoundError", text))
    assert msg.title == "The model engine doesn't know this model."
    words = f"{msg.title} {msg.detail} {msg.action}"
    for raw in ("ModelNotFoundError", "appConfig", "model_list", "Llama-9-MLC"):
        assert raw not in words
    assert "Reload the page" in msg.action
