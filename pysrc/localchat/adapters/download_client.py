"""The download worker's client: core.downloader's FileTransport over web/js/download-bridge.js.

One `WorkerTransport` per page. Every bridge call resolves with plain outcome objects (it
never rejects), which are converted here: a failed fetch becomes `FetchFailure`. The
progress callback of a fetch is a proxy owned here and destroyed when the fetch is over;
cancelling the awaiting task aborts the request in the worker.

Example::

    transport = WorkerTransport(bridges.downloads, headers=None)
    fetched = await transport.fetch(FileRequest(url, "webllm/model", FileCheck.BYTES), print)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from ..core.downloader import (
    FailureKind,
    FetchedFile,
    FetchFailure,
    FileCheck,
    FileRequest,
    ModelSource,
    clean_model_url,
)
from ..core.errors import EngineFailure
from ..ports import BytesCallback
from .ffi import create_once_callable, create_proxy, js_object, py_value

__all__ = ["WorkerTransport"]

_KINDS = {kind.value: kind for kind in FailureKind}


class WorkerTransport:
    """ports.FileTransport through the download worker (see the module docstring)."""

    def __init__(self, bridge: Any, *, headers: dict[str, str] | None = None,
                 stall_ms: int = 30_000,
                 sim_quota: Callable[[FileRequest], dict[str, Any] | None] | None = None,
                 on_crash: Callable[[str], None] | None = None) -> None:
        self._crash_proxy = create_proxy(lambda message, *_: self._crashed(str(message)))
        options = js_object({"headers": headers or {}, "stallMs": stall_ms})
        options.onCrash = self._crash_proxy
        self._handle = bridge.createDownloader(options)
        self._ids = itertools.count(1)
        self._sim_quota = sim_quota
        self._on_crash = on_crash

    def _crashed(self, message: str) -> None:
        if self._on_crash is not None:
            self._on_crash(message)

    async def fetch(self, request: FileRequest, on_bytes: BytesCallback) -> FetchedFile:
        request_id = f"f{next(self._ids)}"
        payload: dict[str, Any] = {
            "id": request_id, "url": request.url, "cache": request.cache,
            "check": request.check.value, "size": request.size, "resume": request.resume}
        if self._sim_quota is not None:
            quota = self._sim_quota(request)
            if quota is not None:
                payload["simQuota"] = quota
        progress = create_proxy(
            lambda received, expected, *_: on_bytes(
                int(received), int(expected) if isinstance(expected, (int, float)) else None))
        promise = self._handle.fetchFile(js_object(payload), progress)
        try:
            outcome = py_value(await promise)
        except asyncio.CancelledError:
            # The worker may still report bytes until it has aborted: free the callback
            # only once the request is over (its promise always resolves).
            self._handle.cancel(request_id)
            promise.then(create_once_callable(lambda *_: progress.destroy()))
            raise
        progress.destroy()
        if not isinstance(outcome, dict):
            raise FetchFailure(FailureKind.ABORTED, detail="no answer from the download worker",
                               url=request.url)
        if outcome.get("ok"):
            data = outcome.get("data")
            return FetchedFile(int(outcome.get("size") or 0),
                               data if isinstance(data, dict) else None)
        status = outcome.get("status")
        retry_after = outcome.get("retryAfter")
        raise FetchFailure(
            _KINDS.get(str(outcome.get("kind")), FailureKind.UNREACHABLE),
            status=int(status) if isinstance(status, (int, float)) else None,
            retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
            kept=int(outcome.get("kept") or 0), detail=str(outcome.get("detail") or ""),
            url=request.url)

    async def stored(self, files: Sequence[tuple[str, str]]) -> dict[str, int]:
        entries = [{"cache": cache, "url": url} for cache, url in files]
        found = py_value(await self._handle.stored(js_object(entries)))
        if not isinstance(found, dict):
            return {}
        return {str(url): int(size) for url, size in found.items()
                if isinstance(size, (int, float))}

    async def read_stored(self, cache: str, url: str,
                          check: FileCheck) -> dict[str, Any] | None:
        data = py_value(await self._handle.readStored(cache, url, check.value))
        return data if isinstance(data, dict) else None

    async def peek(self, url: str, check: FileCheck) -> dict[str, Any] | None:
        data = py_value(await self._handle.peek(url, check.value))
        return data if isinstance(data, dict) else None

    async def remove(self, files: Sequence[tuple[str, str]],
                     prefixes: Sequence[tuple[str, str]] = ()) -> None:
        entries: list[dict[str, str]] = [{"cache": c, "url": u} for c, u in files]
        entries += [{"cache": c, "prefix": p} for c, p in prefixes]
        await self._handle.remove(js_object(entries))

    async def model_source(self, model_id: str, app_config: Any) -> ModelSource:
        """Where WebLLM would fetch the model from (its record in app_config or in
        WebLLM's prebuilt list); EngineFailure("ModelNotFoundError") if there is none."""
        record = py_value(await self._handle.modelRecord(model_id, app_config))
        if not isinstance(record, dict) or record.get("error") or not record.get("model"):
            detail = record.get("error") if isinstance(record, dict) else None
            raise EngineFailure("ModelNotFoundError", str(detail or f"No record for {model_id}."))
        base = str(record.get("base") or clean_model_url(str(record["model"])))
        return ModelSource(model_id, base, str(record.get("model_lib") or ""))
