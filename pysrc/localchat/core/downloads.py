"""The per-model download lifecycle, in one place: states, events, the transition table,
what each state shows, and what is persisted.

    (absent) ─request→ Queued ─start→ Downloading ─complete→ Ready      (downloaded for later)
                                          └──────needed──→ Compiling ─loaded→ Ready
    Ready ─needed→ Compiling            (opened or sent to while not on the GPU)
    Queued/Downloading/Compiling ─fail→ Failed;  Queued/Downloading ─cancel→ Canceled
    Compiling ─stop→ Ready              (a start canceled or overtaken: the files are complete)
    Failed/Canceled ─request→ Queued    (Retry, Resume: only missing files are fetched)
    Ready/Failed/Canceled ─remove→ (absent)

"Not downloaded" is the absence of an item. `transition()` is the only way a state
changes: a move the table does not list raises `IllegalTransition`. Progress, retries
and errors are fields of the item, not extra states. Pure data and pure functions; the
queue and the engine switch in core/models.py drive the events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from .catalog import CATALOG, ModelSpec, model_for_key
from .errors import UserMessage
from .eta import format_eta
from .gpu import GpuReport

__all__ = [
    "MB",
    "RECORD_VERSION",
    "TRANSITIONS",
    "DownloadEvent",
    "DownloadItem",
    "DownloadState",
    "IllegalTransition",
    "ModelFit",
    "device_binding_mb",
    "format_bytes",
    "item_from_record",
    "item_to_record",
    "model_fit",
    "new_item",
    "ordinal",
    "progress_words",
    "queue_order",
    "queue_positions",
    "transition",
]

RECORD_VERSION = 1
MB = 1024 * 1024


class DownloadState(Enum):
    """Where a model is in its lifecycle (absent: not downloaded)."""

    QUEUED = "queued"
    """Waiting for the download before it (one download runs at a time)."""
    DOWNLOADING = "downloading"
    """Its files are being fetched into the cache; nothing touches the GPU."""
    COMPILING = "compiling"
    """Its files are all stored and it is being loaded onto the GPU, because it is needed now."""
    READY = "ready"
    """Every file is stored: it can start without a request."""
    FAILED = "failed"
    """The last attempt failed (to download, or to start); `error` says why."""
    CANCELED = "canceled"
    """The user canceled the download; complete files are kept, so Resume continues."""

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def active(self) -> bool:
        """Waiting for or holding the downloader or the GPU."""
        return self in (DownloadState.QUEUED, DownloadState.DOWNLOADING,
                        DownloadState.COMPILING)


class DownloadEvent(Enum):
    """What can happen to a model's lifecycle."""

    REQUEST = "request"
    """Download, Retry or Resume was asked for."""
    START = "start"
    """The downloader took it from the queue."""
    COMPLETE = "complete"
    """Every file is stored and nothing needs the model now."""
    NEEDED = "needed"
    """Every file is stored and the active conversation needs it on the GPU now."""
    LOADED = "loaded"
    """The chat engine has it loaded."""
    FAIL = "fail"
    """The download or the start failed for good (automatic retries are over)."""
    CANCEL = "cancel"
    """The user canceled the download."""
    STOP = "stop"
    """A start was canceled or overtaken by another model; the files stay complete."""
    REMOVE = "remove"
    """Its files were removed from the device."""


S, E = DownloadState, DownloadEvent

TRANSITIONS: dict[tuple[DownloadState | None, DownloadEvent], DownloadState | None] = {
    (None, E.REQUEST): S.QUEUED,
    (S.FAILED, E.REQUEST): S.QUEUED,
    (S.CANCELED, E.REQUEST): S.QUEUED,
    (S.QUEUED, E.START): S.DOWNLOADING,
    (S.DOWNLOADING, E.COMPLETE): S.READY,
    (S.DOWNLOADING, E.NEEDED): S.COMPILING,
    (S.READY, E.NEEDED): S.COMPILING,
    (S.COMPILING, E.LOADED): S.READY,
    (S.COMPILING, E.STOP): S.READY,
    (S.QUEUED, E.FAIL): S.FAILED,
    (S.DOWNLOADING, E.FAIL): S.FAILED,
    (S.COMPILING, E.FAIL): S.FAILED,
    (S.QUEUED, E.CANCEL): S.CANCELED,
    (S.DOWNLOADING, E.CANCEL): S.CANCELED,
    (S.READY, E.REMOVE): None,
    (S.FAILED, E.REMOVE): None,
    (S.CANCELED, E.REMOVE): None,
}
"""Every legal move; `None` is "absent" (not downloaded)."""

del S, E


class IllegalTransition(ValueError):
    """A lifecycle move the table does not allow (a bug in the caller)."""


def transition(state: DownloadState | None, event: DownloadEvent) -> DownloadState | None:
    """The state after `event`, or IllegalTransition."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        name = state.name if state is not None else "absent"
        raise IllegalTransition(f"{event.name} is not allowed from {name}") from None


@dataclass(frozen=True)
class DownloadItem:
    key: str
    model_id: str
    state: DownloadState
    requested_at: int = 0
    """Epoch ms of the request: the queue runs in this order."""
    bytes_total: int | None = None
    """All of the model's files, in bytes, once known (tensor-cache.json and the rest)."""
    bytes_done: int = 0
    """Bytes stored or received so far (stored files count at once on a resume)."""
    compile_fraction: float = 0.0
    eta_seconds: float | None = None
    retry: int = 0
    """Automatic retries in a row without progress (shown as "Retrying (n/3)…")."""
    retry_at_ms: int | None = None
    """Epoch ms when the pending automatic retry starts ("Retrying in 4 s"); not stored."""
    counting: bool = False
    """Just canceled: `bytes_done` still counts bytes in flight (a file cut mid-way is
    not kept) until the stored files are counted, so no kept figure is shown; not stored."""
    error: UserMessage | None = None
    failed_to_start: bool = False
    """Failed after every file was stored: the model couldn't start (not a download failure)."""

    @property
    def fraction(self) -> float:
        if self.state is DownloadState.COMPILING:
            return self.compile_fraction
        if self.state is DownloadState.READY:
            return 1.0
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        return 0.0

    def moved(self, event: DownloadEvent, **changes: Any) -> DownloadItem:
        """This item after a lifecycle event (IllegalTransition if the table forbids it)."""
        state = transition(self.state, event)
        if state is None:
            raise IllegalTransition(f"{event.name} removes the item; drop it instead")
        return replace(self, state=state, **changes)

    def updated(self, **changes: Any) -> DownloadItem:
        """The same state with other progress fields (never a state change)."""
        if "state" in changes:
            raise IllegalTransition("state changes go through moved()")
        return replace(self, **changes)


def new_item(key: str, model_id: str, requested_at: int, **changes: Any) -> DownloadItem:
    """A first request for a model that has no item (absent → Queued)."""
    state = transition(None, DownloadEvent.REQUEST)
    assert state is not None
    return DownloadItem(key, model_id, state, requested_at=requested_at, **changes)


def format_bytes(n: float | None, approximate: bool = False) -> str:
    if n is None:
        return "size unknown"
    if n <= 0:
        return "0 MB"
    prefix = "≈ " if approximate else ""
    if n >= 1000 * MB:
        return f"{prefix}{n / (1024 * MB):.1f} GB"
    if n >= MB:
        return f"{prefix}{round(n / MB)} MB"
    return f"{prefix}{max(1, round(n / 1024))} KB"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th… 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_positions(downloads: dict[str, DownloadItem]) -> dict[str, int]:
    """Each model's place in line for the downloader: the download running is 1st, the
    queued ones follow in the order the queue takes them (request time)."""
    keys = [s.key for s in CATALOG]
    running = [i for i in downloads.values() if i.state is DownloadState.DOWNLOADING]
    queued = sorted((i for i in downloads.values() if i.state is DownloadState.QUEUED),
                    key=lambda i: (i.requested_at, keys.index(i.key) if i.key in keys else 99))
    return {item.key: n for n, item in enumerate(running + queued, 1)}


def queue_order(downloads: dict[str, DownloadItem]) -> list[str]:
    """Every catalog key in the Download Manager's order: a model starting, then the
    download running and the queue in line, then the others in catalog order."""
    positions = queue_positions(downloads)
    starting = [k for k, i in downloads.items() if i.state is DownloadState.COMPILING]
    in_line = sorted(positions, key=positions.__getitem__)
    rest = [s.key for s in CATALOG if s.key not in positions and s.key not in starting]
    return [s.key for s in CATALOG if s.key in starting] + in_line + rest


def retry_words(item: DownloadItem, max_retries: int, now_ms: int | None) -> str:
    """" · Retrying in 4 s (1/3)" while an automatic retry waits, " · Retrying (1/3)…"."""
    if not item.retry:
        return ""
    if item.retry_at_ms is not None and now_ms is not None:
        seconds = math.ceil((item.retry_at_ms - now_ms) / 1000)
        if seconds > 0:
            return f" · Retrying in {seconds} s ({item.retry}/{max_retries})"
    return f" · Retrying ({item.retry}/{max_retries})…"


def progress_words(item: DownloadItem, max_retries: int, label: str = "", *,
                   position: int | None = None, now_ms: int | None = None) -> str:
    """What the Download Manager says under the state word (`position`: its place in
    line, see `queue_positions`; `now_ms`: the time, for a retry's countdown)."""
    if item.state is DownloadState.DOWNLOADING:
        percent = round(item.fraction * 100)
        done = format_bytes(item.bytes_done)
        total = format_bytes(item.bytes_total)
        retry = retry_words(item, max_retries, now_ms)
        return f"{percent}% · {done} of {total} · {format_eta(item.eta_seconds)}{retry}"
    if item.state is DownloadState.COMPILING:
        return f"Starting on your GPU… {round(item.compile_fraction * 100)}%"
    if item.state is DownloadState.QUEUED:
        waiting = f"{ordinal(position)} in line · waiting for the download before it" \
            if position else "Waiting for the download before it"
        if item.bytes_done:
            return (f"{waiting} · {format_bytes(item.bytes_done)} of "
                    f"{format_bytes(item.bytes_total)} kept")
        return waiting
    if item.state is DownloadState.FAILED and item.error is not None:
        return f"{item.error.title} {item.error.detail}"
    if item.state is DownloadState.CANCELED:
        if item.counting:
            return "Canceled. Counting what was kept…"
        if item.bytes_done:
            return (f"Canceled. {format_bytes(item.bytes_done)} of "
                    f"{format_bytes(item.bytes_total)} kept; Resume continues from there.")
        return "Canceled. Nothing was kept."
    return ""


@dataclass(frozen=True)
class ModelFit:
    usable: bool
    reason: str = ""


WEBLLM_BINDING_MB = 1024.0
"""The storage-buffer binding WebLLM asks its device for (lib:4792-4800)…"""
WEBLLM_FALLBACK_BINDING_MB = 128.0
"""…and what it settles for when the adapter can't give that."""


def device_binding_mb(adapter_binding_mb: float) -> float:
    """The maxStorageBufferBindingSize WebLLM's device really gets on this adapter."""
    if adapter_binding_mb >= WEBLLM_BINDING_MB:
        return WEBLLM_BINDING_MB
    return WEBLLM_FALLBACK_BINDING_MB


def model_fit(spec: ModelSpec, gpu: GpuReport | None) -> ModelFit:
    """Whether this device can run the model, and why not in plain words."""
    if gpu is None:
        return ModelFit(True)
    if not gpu.usable:
        return ModelFit(False, "WebGPU isn't available in this browser.")
    if gpu.low_resource and not spec.low_resource:
        return ModelFit(False, f"{spec.label} needs a more powerful GPU than this device has.")
    if gpu.max_binding_mb:
        binding = device_binding_mb(gpu.max_binding_mb)
        if binding < spec.min_binding_mb:
            return ModelFit(False, f"{spec.label} needs GPU buffers of {spec.min_binding_mb:g} "
                                   f"MB; on this GPU WebLLM gets {binding:g} MB.")
    return ModelFit(True)


def item_to_record(item: DownloadItem) -> dict[str, Any]:
    """What is persisted (enough to restore the queue and its progress after a reload)."""
    record: dict[str, Any] = {"key": item.key, "modelId": item.model_id,
                              "state": item.state.value, "requestedAt": item.requested_at,
                              "version": RECORD_VERSION}
    if item.bytes_total is not None:
        record["bytesTotal"] = item.bytes_total
    if item.bytes_done:
        record["bytesDone"] = item.bytes_done
    if item.error is not None:
        record["error"] = {"title": item.error.title, "detail": item.error.detail,
                           "action": item.error.action}
    if item.failed_to_start:
        record["failedToStart"] = True
    return record


def item_from_record(record: dict[str, Any]) -> DownloadItem | None:
    """Decode a stored item; None for one this version can't use (never raises).

    Items interrupted mid-download come back Queued, so the queue resumes; an item
    interrupted while starting comes back Ready (its files are complete; it starts again
    when it is needed). Records from other versions or for unknown models are ignored
    (and left as they are).
    """
    key = record.get("key")
    if not isinstance(key, str):
        return None
    spec = model_for_key(key)
    if spec is None or record.get("version") != RECORD_VERSION:
        return None
    try:
        state = DownloadState(record.get("state"))
    except ValueError:
        return None
    model_id = record.get("modelId")
    if model_id not in (spec.f16_id, spec.f32_id):
        return None
    if state is DownloadState.DOWNLOADING:
        state = DownloadState.QUEUED
    elif state is DownloadState.COMPILING:
        state = DownloadState.READY
    requested = _finite(record.get("requestedAt"))
    total = _finite(record.get("bytesTotal"))
    done = _finite(record.get("bytesDone"))
    error = record.get("error")
    problem = None
    if isinstance(error, dict):
        problem = UserMessage(str(error.get("title", "The download failed.")),
                              str(error.get("detail", "")), str(error.get("action", "Retry.")))
    failed = state is DownloadState.FAILED
    return DownloadItem(
        key, str(model_id), state,
        requested_at=int(requested) if requested is not None else 0,
        bytes_total=int(total) if total is not None and total > 0 else None,
        bytes_done=int(done) if done is not None and done > 0 else 0,
        error=problem if failed else None,
        failed_to_start=failed and record.get("failedToStart") is True)


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def catalog_keys() -> tuple[str, ...]:
    return tuple(spec.key for spec in CATALOG)
