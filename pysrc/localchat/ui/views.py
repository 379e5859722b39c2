"""Views: pure functions from a slice of AppState to HTML text, one per page region.

Everything user- or model-written is escaped here (raw HTML is shown as text, never
run). Views emit actions through `data-action` attributes; the page adapter listens
once per region root and dispatches them. No view touches the DOM or the state.
"""

from __future__ import annotations

from html import escape

from ..core.catalog import spec_for_model_id
from ..core.conversation import Conversation, Message, MessageStatus, Role
from ..core.errors import UserMessage
from ..core.progress import LoadPhase
from ..core.settings import EngineChoice, EngineKind
from ..core.state import AppState, EngineStatus

__all__ = [
    "composer_status",
    "conversation_items",
    "engine_label",
    "message_html",
    "model_label",
    "notices_html",
    "thread_html",
]


def model_label(model_id: str | None, simulated: bool) -> str:
    """A model's user-facing name, labelled when it is the simulated engine."""
    spec = spec_for_model_id(model_id) if model_id else None
    name = spec.label if spec else (model_id or "Unknown model")
    return f"{name} (simulated)" if simulated else name


def conversation_items(conversations: tuple[Conversation, ...], active_id: str | None,
                       loaded: bool) -> str:
    if not loaded:
        return '<li class="sidebar-placeholder">Loading conversations…</li>'
    if not conversations:
        return '<li class="sidebar-placeholder">No conversations yet.</li>'
    items = []
    for c in conversations:
        current = ' aria-current="page"' if c.id == active_id else ""
        items.append(f'<li><a href="#/chat/{escape(c.id)}"{current}>{escape(c.title)}</a></li>')
    return "".join(items)


def message_html(m: Message, simulated: bool) -> str:
    role = m.role.value
    classes = f"message {role}"
    if m.status is MessageStatus.STREAMING:
        classes += " streaming"
    parts = [f'<article class="{classes}" data-message-id="{escape(m.id)}" '
             f'aria-label="{"You" if m.role is Role.USER else "Assistant"}">']
    parts.append(f'<div class="bubble">{escape(m.content)}</div>')
    if m.role is Role.ASSISTANT:
        meta = [model_label(m.model, simulated)]
        if m.status is MessageStatus.STOPPED:
            meta.append("stopped")
        parts.append(f'<div class="meta">{escape(" · ".join(meta))}</div>')
    if m.status is MessageStatus.ERROR and m.error:
        parts.append(f'<p class="error" role="alert">{escape(m.error)}</p>')
    parts.append("</article>")
    return "".join(parts)


EMPTY = ('<div class="empty-state"><h2>Private chat, on your device</h2>'
         "<p>Models run in your browser with WebGPU. Nothing you type leaves this computer.</p>"
         "</div>")


def thread_html(state: AppState) -> str:
    if state.not_found_id is not None:
        return ('<div class="empty-state not-found" role="alert"><h2>Conversation not found</h2>'
                "<p>It may have been deleted, or the link is from another browser.</p>"
                '<p><a href="#/chat">Start a new chat</a></p></div>')
    if not state.messages:
        return EMPTY
    simulated = state.engine_choice.simulated
    return "".join(message_html(m, simulated) for m in state.messages)


def _notice(message: UserMessage, level: str = "error") -> str:
    return (f'<div class="notice notice-{level}" role="alert"><strong>{escape(message.title)}'
            f"</strong><p>{escape(message.detail)}</p><p>{escape(message.action)}</p></div>")


def notices_html(state: AppState, gpu_problem: UserMessage | None) -> str:
    out = []
    choice = state.engine_choice
    if choice.kind is EngineKind.INVALID:
        out.append(_notice(UserMessage(
            f"Unknown engine “{choice.requested}”.",
            "The address asks for an engine LocalChat doesn't have, so no model will run. "
            "Your saved conversations are still here.",
            "Remove engine= from the address for the real engine, or use engine=sim for "
            "the simulated one.")))
    if choice.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in choice.problems)
        out.append('<div class="notice notice-warning" role="alert"><strong>Some simulated '
                   f"engine settings were ignored.</strong><ul>{items}</ul></div>")
    if gpu_problem is not None:
        out.append(_notice(gpu_problem))
    if state.storage_error is not None:
        out.append(_notice(state.storage_error, "warning"))
    return "".join(out)


def composer_status(engine: EngineStatus, choice: EngineChoice, replying: bool) -> str:
    """The one-line status under the message box (plain text)."""
    if engine.loading_model is not None:
        name = model_label(engine.loading_model, choice.simulated)
        progress = engine.progress
        if progress is None or progress.phase is LoadPhase.STARTING:
            return f"Preparing {name}…"
        if progress.phase is LoadPhase.DOWNLOADING:
            size = f" ({progress.megabytes} MB)" if progress.megabytes is not None else ""
            return f"Downloading {name}… {round(progress.fraction * 100)}%{size}"
        if progress.phase.compiling:
            return f"Compiling {name}… {round(progress.fraction * 100)}%"
        return f"Loading {name}…"
    if replying:
        return "Replying…"
    return ""


def engine_label(choice: EngineChoice) -> str:
    return "Simulated engine" if choice.simulated else ""
