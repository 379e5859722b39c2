"""The per-model download lifecycle: states, what is shown, and what is persisted.

    Queued → Downloading → Compiling → Ready;   Failed and Canceled end an attempt.

"Not downloaded" is the absence of an item (or of its files in the cache). Pure data
and pure functions: the coordinator in core/models.py drives the transitions.
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
    "RECORD_VERSION",
    "DownloadItem",
    "DownloadState",
    "ModelFit",
    "format_bytes",
    "item_from_record",
    "item_to_record",
    "model_fit",
    "progress_words",
]

RECORD_VERSION = 1
MB = 1024 * 1024


class DownloadState(Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    COMPILING = "compiling"
    READY = "ready"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def active(self) -> bool:
        """Waiting for or holding the loader."""
        return self in (DownloadState.QUEUED, DownloadState.DOWNLOADING,
                        DownloadState.COMPILING)


@dataclass(frozen=True)
class DownloadItem:
    key: str
    model_id: str
    state: DownloadState
    requested_at: int = 0
    """Epoch ms of the request: the queue runs in this order."""
    bytes_total: int | None = None
    bytes_done: int = 0
    compile_fraction: float = 0.0
    eta_seconds: float | None = None
    retry: int = 0
    """Automatic retries of this attempt so far (shown as "Retrying (n/3)…")."""
    error: UserMessage | None = None
    cached: bool = False
    """The model's files were all in the cache when this attempt started."""

    @property
    def fraction(self) -> float:
        if self.state is DownloadState.COMPILING:
            return self.compile_fraction
        if self.state is DownloadState.READY:
            return 1.0
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        return 0.0

    def with_state(self, state: DownloadState, **changes: Any) -> DownloadItem:
        return replace(self, state=state, **changes)


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


def progress_words(item: DownloadItem, max_retries: int) -> str:
    """What the Download Manager says under the state word."""
    if item.state is DownloadState.DOWNLOADING:
        percent = round(item.fraction * 100)
        done = format_bytes(item.bytes_done)
        total = format_bytes(item.bytes_total)
        retry = f" · Retrying ({item.retry}/{max_retries})…" if item.retry else ""
        return f"{percent}% · {done} of {total} · {format_eta(item.eta_seconds)}{retry}"
    if item.state is DownloadState.COMPILING:
        return f"Preparing the model for your GPU… {round(item.compile_fraction * 100)}%"
    if item.state is DownloadState.QUEUED:
        return "Waiting for the download before it"
    if item.state is DownloadState.FAILED and item.error is not None:
        return f"{item.error.title} {item.error.detail}"
    if item.state is DownloadState.CANCELED:
        return "Canceled. Downloaded parts are kept, so starting again resumes."
    return ""


@dataclass(frozen=True)
class ModelFit:
    usable: bool
    reason: str = ""


def model_fit(spec: ModelSpec, gpu: GpuReport | None) -> ModelFit:
    """Whether this device can run the model, and why not in plain words."""
    if gpu is None:
        return ModelFit(True)
    if not gpu.usable:
        return ModelFit(False, "WebGPU isn't available in this browser.")
    if gpu.low_resource and not spec.low_resource:
        return ModelFit(False, f"{spec.label} needs a more powerful GPU than this device has.")
    if gpu.max_binding_mb and gpu.max_binding_mb < spec.min_binding_mb:
        return ModelFit(False, f"{spec.label} needs GPU buffers of {spec.min_binding_mb:g} MB; "
                               f"this GPU allows {gpu.max_binding_mb:g} MB.")
    return ModelFit(True)


def item_to_record(item: DownloadItem) -> dict[str, Any]:
    """What is persisted (enough to restore the queue after a reload)."""
    record: dict[str, Any] = {"key": item.key, "modelId": item.model_id,
                              "state": item.state.value, "requestedAt": item.requested_at,
                              "version": RECORD_VERSION}
    if item.bytes_total is not None:
        record["bytesTotal"] = item.bytes_total
    if item.error is not None:
        record["error"] = {"title": item.error.title, "detail": item.error.detail,
                           "action": item.error.action}
    return record


def item_from_record(record: dict[str, Any]) -> DownloadItem | None:
    """Decode a stored item; None for one this version can't use (never raises).

    Items interrupted mid-download come back Queued, so the queue resumes; records from
    other versions or for unknown models are ignored (and left as they are).
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
    if state in (DownloadState.DOWNLOADING, DownloadState.COMPILING):
        state = DownloadState.QUEUED
    requested = _finite(record.get("requestedAt"))
    total = _finite(record.get("bytesTotal"))
    error = record.get("error")
    problem = None
    if isinstance(error, dict):
        problem = UserMessage(str(error.get("title", "The download failed.")),
                              str(error.get("detail", "")), str(error.get("action", "Retry.")))
    return DownloadItem(
        key, str(model_id), state,
        requested_at=int(requested) if requested is not None else 0,
        bytes_total=int(total) if total is not None and total > 0 else None,
        error=problem if state is DownloadState.FAILED else None)


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def catalog_keys() -> tuple[str, ...]:
    return tuple(spec.key for spec in CATALOG)
