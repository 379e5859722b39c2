"""WebLLM's load progress texts, parsed into phases.

WebLLM reports `{progress, timeElapsed, text}` with no phase and no byte counts; the
phase comes from the text's prefix (formats in shared/notes/webllm.md). Downloading is
the `Fetching param cache` phase; Compiling is `Loading model from cache` (weights to
the GPU) plus `Loading GPU shader modules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["LoadPhase", "LoadProgress", "parse_progress"]


class LoadPhase(Enum):
    """Where a model load is."""

    STARTING = "starting"
    """Config, library and tokenizer are being fetched ("Start to fetch params")."""
    DOWNLOADING = "downloading"
    """Weight shards are being fetched into the cache."""
    LOADING = "loading"
    """Weights are being copied from the cache to the GPU."""
    SHADERS = "shaders"
    """GPU shader modules are being compiled."""
    READY = "ready"
    """The model is loaded ("Finish loading on …")."""
    UNKNOWN = "unknown"
    """A text this version does not recognise (kept, not fatal)."""

    @property
    def compiling(self) -> bool:
        """Loading and shader compile are shown together as Compiling."""
        return self in (LoadPhase.LOADING, LoadPhase.SHADERS)


@dataclass(frozen=True)
class LoadProgress:
    phase: LoadPhase
    fraction: float
    """0..1 within the phase."""
    shard: int | None = None
    shards: int | None = None
    megabytes: int | None = None
    seconds: float | None = None
    text: str = ""


_FETCH = re.compile(r"^Fetching param cache\[(\d+)/(\d+)\]: (\d+)MB fetched\. (\d+)% completed, "
                    r"(\d+(?:\.\d+)?) secs elapsed")
_LOAD = re.compile(r"^Loading model from cache\[(\d+)/(\d+)\]: (\d+)MB loaded\. (\d+)% completed, "
                   r"(\d+(?:\.\d+)?) secs elapsed")
_SHADER = re.compile(r"^Loading GPU shader modules\[(\d+)/(\d+)\]: (\d+)% completed, "
                     r"(\d+(?:\.\d+)?) secs elapsed")


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def parse_progress(text: str, progress: float = 0.0) -> LoadProgress:
    """Classify one report. `progress` is WebLLM's own 0..1 value, used as a fallback."""
    if m := _FETCH.match(text):
        i, n, mb, _pct, secs = m.groups()
        return LoadProgress(LoadPhase.DOWNLOADING, _clamp(progress), int(i), int(n), int(mb),
                            float(secs), text)
    if m := _LOAD.match(text):
        i, n, mb, _pct, secs = m.groups()
        return LoadProgress(LoadPhase.LOADING, _clamp(int(i) / max(1, int(n))), int(i), int(n),
                            int(mb), float(secs), text)
    if m := _SHADER.match(text):
        k, n, _pct, secs = m.groups()
        return LoadProgress(LoadPhase.SHADERS, _clamp(int(k) / max(1, int(n))), int(k), int(n),
                            None, float(secs), text)
    if text.startswith("Start to fetch params"):
        return LoadProgress(LoadPhase.STARTING, 0.0, text=text)
    if text.startswith("Finish loading on"):
        return LoadProgress(LoadPhase.READY, 1.0, text=text)
    return LoadProgress(LoadPhase.UNKNOWN, _clamp(progress), text=text)
