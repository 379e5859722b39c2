"""The model catalog: the three models a conversation can ask for, and their variants.

A conversation stores a catalog key (`quick`, `smart`, `genius`); which WebLLM model id
runs it depends on the GPU: the q4f16 variant needs the `shader-f16` feature, the q4f32
variant does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL_KEY",
    "ModelSpec",
    "model_for_key",
    "sim_app_config",
    "spec_for_model_id",
]


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry."""

    key: str
    label: str
    f16_id: str
    f32_id: str
    vram_mb_f16: float
    vram_mb_f32: float
    context_window: int
    low_resource: bool
    download_mb_f16: float = 0.0
    """Approximate download size (shown with "≈" until tensor-cache.json is read)."""
    download_mb_f32: float = 0.0
    min_binding_mb: float = 128.0
    """Smallest maxStorageBufferBindingSize (MiB) its largest weight buffer fits in."""
    purpose: str = ""
    """What it is good for, in a few plain words (the selector shows it with its size)."""

    def model_id(self, f16: bool) -> str:
        """The WebLLM model id to load on a GPU with (or without) shader-f16."""
        return self.f16_id if f16 else self.f32_id

    def vram_mb(self, f16: bool) -> float:
        return self.vram_mb_f16 if f16 else self.vram_mb_f32

    def download_mb(self, f16: bool) -> float:
        return self.download_mb_f16 if f16 else self.download_mb_f32


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec("quick", "Quick", "Llama-3.2-1B-Instruct-q4f16_1-MLC",
              "Llama-3.2-1B-Instruct-q4f32_1-MLC", 879.04, 1128.82, 4096, True, 712, 1003, 128,
              "fastest, simple answers, runs on most GPUs"),
    ModelSpec("smart", "Smart", "Llama-3.2-3B-Instruct-q4f16_1-MLC",
              "Llama-3.2-3B-Instruct-q4f32_1-MLC", 2263.69, 2951.51, 4096, True, 1740, 2275, 128,
              "good answers for everyday chats"),
    ModelSpec("genius", "Genius", "Llama-3.1-8B-Instruct-q4f16_1-MLC",
              "Llama-3.1-8B-Instruct-q4f32_1-MLC", 5001.0, 6101.01, 4096, False, 4420, 5060, 256,
              "best answers, needs a strong GPU"),
)

DEFAULT_MODEL_KEY = "smart"

_BY_KEY = {spec.key: spec for spec in CATALOG}


def model_for_key(key: str) -> ModelSpec | None:
    """The catalog entry for a key, or None for a key this version does not know."""
    return _BY_KEY.get(key)


def spec_for_model_id(model_id: str) -> ModelSpec | None:
    """The catalog entry that owns a WebLLM model id (either variant)."""
    for spec in CATALOG:
        if model_id in (spec.f16_id, spec.f32_id):
            return spec
    return None


def sim_app_config(site_base: str, scale: float) -> dict[str, Any]:
    """WebLLM appConfig whose model records point at the simulated model host that the
    project's dev server provides (`<site>/sim-host/<scale>/<model id>`)."""
    records = []
    for spec in CATALOG:
        for f16 in (True, False):
            model_id = spec.model_id(f16)
            base = f"{site_base}sim-host/{scale:g}/{model_id}"
            records.append({
                "model": base,
                "model_id": model_id,
                "model_lib": f"{base}/resolve/main/model-webgpu.wasm",
                "vram_required_MB": spec.vram_mb(f16),
                "low_resource_required": spec.low_resource,
                "overrides": {"context_window_size": spec.context_window},
            })
    return {"model_list": records}
