"""The composition root: the only module that knows every piece, and wires them.

`main()` reads the engine choice from the URL, waits for the JS bridges that boot.js
loaded, probes the GPU, opens the store, builds the chat service and the page, takes
the composer over from boot.js (sending a message held while Python was starting) and
marks the page ready (`<body data-ready="true">`, event `localchat:ready`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import js  # type: ignore[import-not-found]

from .adapters.browser import BrowserClock, probe_gpu, site_base
from .adapters.dexie_store import DexieStore
from .adapters.engine_client import WorkerEngine
from .adapters.ffi import create_proxy, js_object
from .adapters.page import Page
from .core.chat import ChatService
from .core.conversation import Conversation, new_id
from .core.errors import EngineFailure, StoreFailure, UserMessage
from .core.gpu import GpuReport, explain_gpu
from .core.routes import conversation_route, parse_route
from .core.settings import EngineChoice, EngineKind, parse_engine_query
from .core.state import AppState, EngineStatus, StateBox

__all__ = ["main"]


class App:
    """Holds the running pieces and the tasks they start (so none is garbage-collected)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.proxies: list[Any] = []

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            js.console.error(f"LocalChat: {task.exception()!r}")

    async def run(self) -> None:
        search = str(js.location.search)
        choice = parse_engine_query(search)
        box = StateBox(AppState(engine_choice=choice))
        try:
            bridges = await js.window.localchat.bridges
        except Exception:  # boot.js has already shown which file failed
            return
        gpu = await probe_gpu(bridges.engine, search)
        engine = None
        if choice.kind is not EngineKind.INVALID and gpu.usable:
            engine = WorkerEngine(bridges.engine, choice, search, site_base())
        service = ChatService(box, DexieStore(bridges.db), engine, BrowserClock())
        box.update(gpu=gpu, engine=EngineStatus(error=self._why_no_engine(choice, gpu)))

        page = Page(js.document, on_send=lambda text: self.spawn(service.send(text)),
                    on_stop=lambda: self.spawn(service.stop()))
        page.render(None, box.state)
        box.subscribe(page.render)
        service.on_stream(page.stream)
        box.subscribe(self._follow_route)

        await service.start()
        await service.open(parse_route(str(js.location.hash)))
        on_hash = create_proxy(
            lambda *_: self.spawn(service.open(parse_route(str(js.location.hash)))))
        js.window.addEventListener("hashchange", on_hash)
        self.proxies.append(on_hash)
        self._expose_self_test(bridges, choice, search, service)

        held = bool(js.window.localchat.boot.takeOver())
        page.mark_ready()
        if held:
            page.send_current()

    @staticmethod
    def _why_no_engine(choice: EngineChoice, gpu: GpuReport) -> UserMessage | None:
        if choice.kind is EngineKind.INVALID:
            return UserMessage("No model engine is running.",
                               f"The address asks for an unknown engine ({choice.requested}).",
                               "Remove engine= from the address, or use engine=sim.")
        return explain_gpu(gpu)

    def _follow_route(self, old: AppState, new: AppState) -> None:
        """A new conversation created by sending moves the URL to its route."""
        if new.active_id != old.active_id and new.active_id is not None:
            target = conversation_route(new.active_id)
            if str(js.location.hash) != target:
                js.location.hash = target

    def _expose_self_test(self, bridges: Any, choice: Any, search: str,
                          service: ChatService) -> None:
        """`await localchat.selfTest()` checks that bridge failures reach Python.

        A support and test aid: it stores and removes one scratch conversation, and
        asks a throwaway engine worker for a model that does not exist.
        """

        async def self_test() -> Any:
            results: dict[str, str] = {}
            store = service.store
            scratch = Conversation(f"selftest-{new_id()}", "Self-test", "smart", 0, 0)
            try:
                await store.add_conversation(scratch)
                await store.add_conversation(scratch)
                results["store"] = "no error"
            except StoreFailure as failure:
                results["store"] = failure.name
            finally:
                await bridges.db.deleteConversation(scratch.id)
            kind = "sim" if choice.kind is EngineKind.SIM else "webllm"
            handle = bridges.engine.createEngine(js_object({"kind": kind, "search": search}))
            try:
                await WorkerEngine.call_reload(handle, "no-such-model")
                results["engine"] = "no error"
            except EngineFailure as failure:
                results["engine"] = failure.name
            finally:
                handle.terminate()
            return js_object(results)

        proxy = create_proxy(lambda: asyncio.ensure_future(self_test()))
        self.proxies.append(proxy)
        js.window.localchat.selfTest = proxy


async def main() -> None:
    await App().run()
