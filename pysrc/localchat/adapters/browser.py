"""Browser facts and small services for the composition root: clock, probe, page URL."""

from __future__ import annotations

from typing import Any

import js  # type: ignore[import-not-found]

from ..core.gpu import GpuReport, gpu_report_from_probe
from .ffi import py_value

__all__ = ["BrowserClock", "probe_gpu", "site_base"]


class BrowserClock:
    def now_ms(self) -> int:
        return int(js.Date.now())


async def probe_gpu(engine_bridge: Any, search: str) -> GpuReport:
    """The bridge's probe never rejects; it answers from sim_gpu under engine=sim."""
    raw = py_value(await engine_bridge.probeGpu(search))
    return gpu_report_from_probe(raw if isinstance(raw, dict) else {})


def site_base() -> str:
    """The site's base URL (origin + folder of index.html), ending with '/'."""
    href = str(js.location.origin) + str(js.location.pathname)
    return href.rsplit("/", 1)[0] + "/"
