"""The composition root: the only module that knows every piece, and wires them.

`main()` reads the engine choice from the URL, waits for the JS bridges that boot.js
loaded, probes the GPU, opens the store, builds the chat service and the page, takes
the composer over from boot.js (sending a message held while Python was starting) and
marks the page ready (`<body data-ready="true">`, event `localchat:ready`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]

from .adapters.browser import BrowserClock, probe_gpu, site_base
from .adapters.dexie_store import DexieStore
from .adapters.download_client import WorkerTransport
from .adapters.engine_client import WorkerEngine, WorkerRuntime
from .adapters.ffi import create_proxy, js_object
from .adapters.model_panel import ModelPanel
from .adapters.page import Page
from .adapters.popover import Popovers
from .adapters.tab_link import BrowserTabLink
from .adapters.tab_sync import BrowserReplyLocks, connect_tabs
from .core.catalog import CATALOG, model_for_key
from .core.chat import ChatService, Models, check_message
from .core.conversation import Conversation, new_id
from .core.downloader import Downloader, FileRequest, RetryPolicy
from .core.downloads import DownloadState
from .core.errors import EngineFailure, StoreFailure, UserMessage
from .core.flows import Flows
from .core.gpu import GpuReport, explain_gpu
from .core.models import ModelService
from .core.routes import conversation_route, parse_route
from .core.settings import (
    EngineChoice,
    EngineKind,
    parse_engine_query,
    query_params,
    sim_host_header,
)
from .core.state import AppState, EngineStatus, StateBox
from .core.switches import SwitchNotices
from .core.tabs import ModelHub, RemoteModels

__all__ = ["main"]


class App:
    """Holds the running pieces and the tasks they start (so none is garbage-collected)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.proxies: list[Any] = []
        self.service: ChatService
        self.page: Page
        self.flows: Flows
        self.panel: ModelPanel
        self.models: Models | None = None
        self.link: BrowserTabLink | None = None
        self.hub: ModelHub | None = None
        self._make_models: Callable[[], ModelService] | None = None
        self.switch_notices = SwitchNotices()

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
        # Until the stored downloads are read, the model controls say "Checking…".
        box = StateBox(AppState(engine_choice=choice, models_checking=True))
        try:
            bridges = await js.window.localchat.bridges
        except Exception:  # boot.js has already shown which file failed
            return
        gpu = await probe_gpu(bridges.engine, search)
        store = DexieStore(bridges.db)
        clock = BrowserClock()
        box.update(gpu=gpu, engine=EngineStatus(error=self._why_no_engine(choice, gpu)))
        models: Models | None = None
        if choice.kind is not EngineKind.INVALID and gpu.usable:
            # One tab owns the downloads and the engine; the others use the owner's.
            self._make_models = lambda: self._model_service(box, bridges, store, choice,
                                                            search, clock)
            link = self.link = await BrowserTabLink.connect(
                bridges.tabs, "sim" if choice.kind is EngineKind.SIM else "webllm")
            js.document.body.dataset.tab = "owner" if link.owner else "follower"
            if link.owner:
                models = self._own_models()
            else:
                models = RemoteModels(box, link, RetryPolicy().max_retries)
                models.on_switch = self._switched
        self.models = models
        if models is None:
            box.update(models_checking=False)  # nothing to check: no model can run here
        service = ChatService(box, store, models, clock, BrowserReplyLocks(bridges.db))
        self._watch_store_closed(service)

        self.service = service
        popovers = Popovers(js.document)  # the one owner of showing and hiding popovers
        page = self.page = Page(js.document, self, popovers)
        self.flows = Flows(service, page, self.spawn, now_ms=lambda: int(time.time() * 1000),
                           today=lambda: time.strftime("%Y-%m-%d"))
        page.render(None, box.state)
        box.subscribe(page.render)
        panel = self.panel = ModelPanel(js.document, self,
                                        models.max_retries if models else 0, popovers,
                                        page.keep_thread_end)
        panel.render(None, box.state)
        box.subscribe(panel.render)
        service.on_stream(page.stream)
        box.subscribe(self._follow_route)

        _sync, tab_proxies = connect_tabs(bridges.db, service, self.spawn)  # other tabs' changes
        self.proxies.extend(tab_proxies)
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
        if models is not None:
            self.spawn(self._start_models(models))
        self.spawn(self._install_markdown())

    def _watch_store_closed(self, service: ChatService) -> None:
        """A newer LocalChat in another tab took the database (db-bridge.js closed this
        tab's connection; boot.js says so, with a Reload button): stop writing, so that
        using the tab until it is reloaded gives no failures, only the one notice."""
        def closed(*_: Any) -> None:
            service.persist = False

        proxy = create_proxy(closed)
        js.document.addEventListener("localchat:store-closed", proxy)
        self.proxies.append(proxy)

    @staticmethod
    def _model_service(box: StateBox, bridges: Any, store: DexieStore, choice: EngineChoice,
                       search: str, clock: BrowserClock) -> ModelService:
        """The download worker, the downloader, the engine runtime and the queue."""
        headers = None
        sim_quota = None
        if choice.sim is not None:
            headers = {"X-LocalChat-Sim": sim_host_header(choice.sim, _sim_session())}
            if choice.sim.quota:
                sim_quota = _sim_quota(dict(choice.sim.quota))
        transport = WorkerTransport(
            bridges.downloads, headers=headers, sim_quota=sim_quota,
            stall_ms=int(_query_seconds(search, "download_stall_s", 30.0, 600) * 1000))
        runtime = WorkerRuntime(bridges.engine, transport, choice, search, site_base())
        policy = RetryPolicy(backoff_s=_query_seconds(search, "retry_backoff_s", 1.0))
        downloader = Downloader(transport, sleep=asyncio.sleep, monotonic=time.monotonic,
                                policy=policy)
        return ModelService(box, runtime, store, downloader, now_ms=clock.now_ms)

    def _own_models(self) -> ModelService:
        """This tab's own ModelService, serving the other tabs through the hub."""
        assert self._make_models is not None and self.link is not None
        models = self._make_models()
        self.hub = ModelHub(models, self.link)
        self.hub.on_switch = self._switched
        return models

    async def _start_models(self, models: Models) -> None:
        """After boot (it imports WebLLM on this thread): restore the queue, find cached
        models, and load the open chat's model if it is downloaded. A tab that does not
        own the models mirrors the owner's, and takes over when the owner closes."""
        if isinstance(models, RemoteModels):
            # Also when the owner closes before it ever answered (start() returns then).
            self.spawn(self._take_over(models))
        try:
            await models.start()
        finally:
            if self.service.box.state.models_checking:
                self.service.box.update(models_checking=False)
        if self.hub is not None and self.models is models:
            self.hub.announce()
        self.service._load_requested()
        js.document.body.dataset.models = "ready"

    async def _take_over(self, remote: RemoteModels) -> None:
        assert self.link is not None
        await self.link.owned()
        models = self._own_models()
        self.models = self.service.models = models
        remote.close()
        await models.start(adopt=False)  # resumes the queue from the stored records
        assert self.hub is not None
        self.hub.announce()
        self.service._load_requested()
        js.document.body.dataset.tab = "owner"
        js.document.body.dataset.models = "ready"

    def _switched(self, key: str) -> None:
        """The engine answers with `key` now: told only when this tab's user asked for it
        (not on every load or chat switch)."""
        if not self.switch_notices.worth_announcing(key,
                                                    self.service.box.state.requested_model_key):
            return
        spec = model_for_key(key)
        label = spec.label if spec else key
        self.panel.confirm_switch()
        self.page.toast(f"Now using {label}.")

    async def _install_markdown(self) -> None:
        """Markdown rendering, installed offline from the vendored wheels after boot."""
        from .adapters.packages import import_sliced, install_vendored_wheels

        try:
            await install_vendored_wheels(site_base(), ("markdown_it_py-", "mdurl-"))
            # One module per task (and urllib.parse among them, before ui.markdown needs it).
            await import_sliced("markdown_it")
        except Exception as error:  # the app keeps showing replies as plain text
            js.console.warn(f"LocalChat: Markdown rendering is unavailable: {error!r}")
            return
        from .ui.markdown import MarkdownRenderer
        renderer = MarkdownRenderer.create()
        if renderer is not None:
            self.page.set_markdown(renderer.render)
            js.document.body.dataset.markdown = "ready"

    # --- ModelActions (called by the model panel) ----------------------------------

    def choose_model(self, key: str) -> None:
        self.switch_notices.asked(key)
        conversation_id = self.service.choose_model(key)  # the selector updates now
        if conversation_id is not None:
            self.spawn(self.service.save_model(conversation_id, key))
        if self.models is None:
            return
        item = self.models.item(key)
        loaded = self.service.box.state.engine.loaded_model == self.models.model_id(key)
        if not loaded and (item is None or item.state is not DownloadState.READY):
            self.panel.toggle_manager(True, focus=False)

    def download(self, key: str) -> None:
        if self.models is None:
            return
        self.switch_notices.asked(key)
        self.models.request(key)
        self.panel.toggle_manager(True, focus=False)

    def retry_download(self, key: str) -> None:
        if self.models is not None:
            self.switch_notices.asked(key)
            self.models.request(key)

    def cancel_download(self, key: str) -> None:
        self.spawn(self.flows.cancel_download(key))

    def delete_model(self, key: str) -> None:
        self.spawn(self.flows.remove_model(key))

    # --- Actions (called by the page) ---------------------------------------------

    def check(self, text: str) -> UserMessage | None:
        return check_message(text)

    def send(self, text: str) -> None:
        self.spawn(self.service.send(text))

    def stop(self) -> None:
        self.spawn(self.service.stop())

    def regenerate(self, message_id: str | None = None) -> None:
        self.spawn(self.service.regenerate(message_id))

    def edit_and_resend(self, message_id: str, text: str) -> None:
        self.spawn(self.service.edit_and_resend(message_id, text))

    def continue_reply(self) -> None:
        self.spawn(self.service.continue_reply())

    def keep_as_new_chat(self) -> None:
        self.spawn(self.service.keep_as_new_chat())

    def discard_unsent(self) -> None:
        self.service.discard_unsent()

    def rename(self, conversation_id: str, title: str) -> None:
        self.spawn(self.service.rename(conversation_id, title))

    def delete(self, conversation_id: str) -> None:
        self.spawn(self.flows.delete(conversation_id))

    def export(self, conversation_id: str | None, markdown: bool = False) -> None:
        self.spawn(self.flows.export(conversation_id, markdown))

    def import_text(self, name: str, text: str) -> None:
        self.spawn(self.flows.import_text(name, text))

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


def _query_seconds(search: str, name: str, default: float, limit: float = 60) -> float:
    """A small number of seconds from the query string (tests shorten retry waits)."""
    raw = query_params(search).get(name, "")
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if 0 <= value <= limit else default


def _sim_session() -> str:
    """This browser profile's token for the simulated host (a `sim_fail` fails once per
    profile, like the simulated engine's failures always did)."""
    try:
        token = js.localStorage.getItem("localchat-sim-session")
        if not token:
            token = new_id()
            js.localStorage.setItem("localchat-sim-session", token)
        return str(token)
    except Exception:  # storage blocked: a token for this page only
        return new_id()


def _sim_quota(percents: dict[str, float]) -> Callable[[FileRequest], dict[str, Any] | None]:
    """sim_quota: the simulated storage limit of each request (the worker enforces it)."""
    def limit(request: FileRequest) -> dict[str, Any] | None:
        spec = next((s for s in CATALOG
                     if f"/{s.f16_id}/" in request.group or f"/{s.f32_id}/" in request.group),
                    None)
        percent = percents.get(spec.key) if spec is not None else None
        if percent is None or not request.group_total:
            return None
        return {"prefix": request.group, "limit": int(request.group_total * percent / 100)}

    return limit


async def main() -> None:
    await App().run()
