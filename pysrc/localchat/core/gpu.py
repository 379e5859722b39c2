"""What the GPU probe found, and what it means for the user and for model choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import UserMessage

__all__ = ["GpuReport", "explain_gpu", "gpu_report_from_probe", "slow_gpu_warning"]


@dataclass(frozen=True)
class GpuReport:
    usable: bool
    reason: str
    """"ok", "no-webgpu", "no-adapter" or "limits"."""
    f16: bool
    low_resource: bool
    vendor: str = ""
    description: str = ""
    simulated: bool = False
    max_binding_mb: float = 0.0
    """WebGPU's maxStorageBufferBindingSize in MiB (0: unknown)."""
    fallback: bool = False
    """A software adapter (SwiftShader, `isFallbackAdapter`): models run, very slowly."""


def gpu_report_from_probe(raw: dict[str, Any]) -> GpuReport:
    """Build a report from the JS probe's plain object (missing fields mean 'no')."""
    return GpuReport(
        usable=bool(raw.get("usable", False)),
        reason=str(raw.get("reason", "no-adapter")),
        f16=bool(raw.get("f16", False)),
        low_resource=bool(raw.get("lowResource", False)),
        vendor=str(raw.get("vendor", "") or ""),
        description=str(raw.get("description", "") or ""),
        simulated=bool(raw.get("simulated", False)),
        max_binding_mb=_mib(raw.get("maxStorageBufferBindingSize")),
        fallback=bool(raw.get("fallback", False)),
    )


def slow_gpu_warning(report: GpuReport | None) -> str:
    """The warning shown before any download on a software-only GPU ("" elsewhere)."""
    if report is None or not report.usable or not report.fallback:
        return ""
    name = "SwiftShader" if "swiftshader" in report.description.lower() or \
        "swiftshader" in report.vendor.lower() else "a software renderer"
    return (f"This browser's WebGPU runs on the processor ({name}), not on a graphics "
            "card: replies will be very slow. For usable speed, open LocalChat in Chrome or "
            "Edge on a computer with a GPU and hardware acceleration on.")


def _mib(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / (1024 * 1024)
    return 0.0


_BROWSERS = ("Use Chrome or Edge 113 or newer on a computer with a GPU. On Linux, "
             "WebGPU may need chrome://flags/#enable-unsafe-webgpu and "
             "chrome://flags/#enable-vulkan.")


def explain_gpu(report: GpuReport) -> UserMessage | None:
    """A plain-words notice when models can't run here, else None."""
    saved = "Your saved conversations are still here to read."
    if report.usable:
        return None
    if report.reason == "no-webgpu":
        return UserMessage("This browser can't run models: WebGPU is not available.",
                           f"LocalChat runs models on your GPU through WebGPU. {saved}",
                           _BROWSERS)
    if report.reason == "limits":
        return UserMessage("This GPU is too limited to run the models.",
                           f"Its WebGPU limits are below what the models need. {saved}",
                           "Try another computer or browser with a more capable GPU.")
    return UserMessage("No usable GPU was found.",
                       f"WebGPU is present but offered no GPU adapter. {saved}",
                       "Update your graphics drivers and browser, check that hardware "
                       "acceleration is on in the browser settings, then reload. " + _BROWSERS)
