"""The chat engine client: WebLLM's WebWorkerMLCEngine through web/js/engine-bridge.js.

Implements ports.ModelEngine for both the real WebLLM worker and the simulated one (same
worker protocol), and ports.ModelRuntime (engines, where model files come from, the
site's storage). Callbacks handed to JS are proxies owned here and destroyed when the
call they serve is over (the progress and crash callbacks live as long as the engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.catalog import sim_app_config
from ..core.downloader import ModelSource
from ..core.errors import EngineFailure
from ..core.settings import EngineChoice, EngineKind
from ..ports import ChatResult, CrashCallback, DeltaCallback, ProgressCallback
from .download_client import WorkerTransport
from .ffi import call, create_proxy, js_object

__all__ = ["WorkerEngine", "WorkerRuntime"]


class WorkerEngine:
    """One engine worker (ports.ModelEngine)."""

    def __init__(self, bridge: Any, choice: EngineChoice, search: str, site_base: str,
                 on_crash: CrashCallback | None = None) -> None:
        kind = "sim" if choice.kind is EngineKind.SIM else "webllm"
        options: dict[str, Any] = {"kind": kind, "search": search}
        if choice.sim is not None:
            options["appConfig"] = sim_app_config(site_base, choice.sim.scale)
        self._progress: ProgressCallback | None = None
        self._on_progress = create_proxy(self._forward_progress)
        self._crash = on_crash
        self._on_crash = create_proxy(self._forward_crash)
        js_options = js_object(options)
        js_options.onProgress = self._on_progress
        js_options.onCrash = self._on_crash
        self._handle = bridge.createEngine(js_options)
        self._loaded: str | None = None

    @property
    def loaded_model(self) -> str | None:
        return self._loaded

    def _forward_crash(self, message: Any, *_: Any) -> None:
        self._loaded = None
        if self._crash is not None:
            self._crash(str(message))

    def _forward_progress(self, report: Any, *_: Any) -> None:
        if self._progress is not None:
            self._progress(float(report.progress), str(report.text))

    async def load(self, model_id: str, on_progress: ProgressCallback) -> None:
        self._progress = on_progress
        try:
            self._loaded = None
            await call(self._handle.reload(model_id, 0), EngineFailure)
            self._loaded = model_id
        finally:
            self._progress = None

    async def chat(self, messages: Sequence[dict[str, str]],
                   on_delta: DeltaCallback) -> ChatResult:
        delta_proxy = create_proxy(lambda text, *_: on_delta(str(text)))
        try:
            options = js_object({})
            options.onDelta = delta_proxy
            result = await call(self._handle.chat(js_object(list(messages)), options),
                                EngineFailure)
        finally:
            delta_proxy.destroy()
        return ChatResult(str(result.get("content", "")), str(result.get("finishReason", "stop")),
                          result.get("usage"))

    @staticmethod
    async def call_reload(handle: Any, model_id: str, timeout_ms: int = 30_000) -> None:
        """Ask a bare engine handle to load a model (used by the self-test)."""
        await call(handle.reload(model_id, timeout_ms), EngineFailure)

    async def interrupt(self) -> None:
        await call(self._handle.interrupt(), EngineFailure)

    def terminate(self) -> None:
        """Stop the worker at once; pending calls reject with EngineTerminated."""
        self._handle.terminate()
        self._loaded = None
        self._crash = None
        for proxy in (self._on_progress, self._on_crash):
            if proxy is not None:
                proxy.destroy()
        self._on_progress = self._on_crash = None


class WorkerRuntime:
    """Makes engine workers, finds model records, reads the storage (ports.ModelRuntime)."""

    def __init__(self, bridge: Any, transport: WorkerTransport, choice: EngineChoice,
                 search: str, site_base: str) -> None:
        self._bridge = bridge
        self._transport = transport
        self._choice = choice
        self._search = search
        self._site_base = site_base
        self.app_config = (js_object(sim_app_config(site_base, choice.sim.scale))
                           if choice.sim is not None else None)
        """The appConfig every engine and cache check uses (None: WebLLM's prebuilt one)."""

    def new_engine(self, on_crash: CrashCallback) -> WorkerEngine:
        return WorkerEngine(self._bridge, self._choice, self._search, self._site_base, on_crash)

    async def model_source(self, model_id: str) -> ModelSource:
        return await self._transport.model_source(model_id, self.app_config)

    async def storage(self) -> tuple[int | None, int | None, bool | None]:
        raw = await call(self._bridge.storageEstimate(), EngineFailure)
        usage, quota, persisted = raw.get("usage"), raw.get("quota"), raw.get("persisted")
        return (int(usage) if isinstance(usage, (int, float)) else None,
                int(quota) if isinstance(quota, (int, float)) else None,
                bool(persisted) if isinstance(persisted, bool) else None)

    async def request_persistence(self) -> bool:
        return bool(await call(self._bridge.requestPersistence(), EngineFailure))
