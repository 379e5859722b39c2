"""Views: pure functions from a slice of AppState to HTML text, one per page region.

Everything user- or model-written is escaped here (raw HTML is shown as text, never
run). Views emit actions through `data-action` attributes; the page adapter listens
once per region root and dispatches them. No view touches the DOM or the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from ..core.catalog import CATALOG, model_for_key, spec_for_model_id
from ..core.conversation import (
    CONTINUABLE,
    FINISHED,
    NOT_TEXT,
    Conversation,
    Message,
    MessageStatus,
    Role,
)
from ..core.downloads import (
    DownloadItem,
    DownloadState,
    ModelFit,
    format_bytes,
    model_fit,
    progress_words,
    queue_order,
    queue_positions,
)
from ..core.errors import UserMessage
from ..core.settings import EngineChoice, EngineKind
from ..core.state import AppState, StorageInfo
from . import heavy

__all__ = [
    "SHORTCUTS",
    "SIDEBAR_ITEM_PX",
    "THREAD_WINDOW",
    "composer_status",
    "context_note",
    "conversation_items",
    "deleted_elsewhere_html",
    "engine_label",
    "message_html",
    "model_label",
    "notices_html",
    "perf_html",
    "record_note",
    "shortcuts_html",
    "thread_html",
    "thread_notes",
]

Markdown = Callable[[str], str]
"""Renders Markdown to safe HTML."""

THREAD_WINDOW = 200
"""Messages rendered when a conversation opens; earlier ones on request."""


def model_label(model_id: str | None, simulated: bool) -> str:
    """A model's user-facing name, labelled when it is the simulated engine."""
    spec = spec_for_model_id(model_id) if model_id else None
    name = spec.label if spec else (model_id or "Unknown model")
    return f"{name} (simulated)" if simulated else name


SIDEBAR_ITEM_PX = 40
"""Height of one sidebar item (web/css/app.css sets the same): the list is virtual."""


def conversation_item(c: Conversation, active_id: str | None, position: int = 0,
                      size: int = 0) -> str:
    current = ' aria-current="page"' if c.id == active_id else ""
    title = escape(c.title)
    cid = escape(c.id)
    css = "conversation current" if c.id == active_id else "conversation"
    place = f' aria-posinset="{position}" aria-setsize="{size}"' if size else ""
    return (f'<li class="{css}" data-id="{cid}"{place}>'
            f'<a href="#/chat/{cid}"{current}>{title}</a>'
            '<span class="item-actions">'
            f'<button type="button" class="icon-button small" data-action="rename" '
            f'aria-label="Rename “{title}”" title="Rename">✎</button>'
            f'<button type="button" class="icon-button small" data-action="export" '
            f'aria-label="Export “{title}”" title="Export as JSON">⤓</button>'
            f'<button type="button" class="icon-button small" data-action="export-markdown" '
            f'aria-label="Save “{title}” as Markdown" title="Save as Markdown">¶</button>'
            f'<button type="button" class="icon-button small" data-action="delete" '
            f'aria-label="Delete “{title}”" title="Delete">×</button>'
            "</span></li>")


SHORTCUTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Mod", "Shift", "O"), "New chat"),
    (("Shift", "Esc"), "Focus the message box"),
    (("Esc",), "Stop the reply being written"),
    (("Mod", "Shift", "S"), "Show or hide the conversations"),
    (("?",), "Show this list (when not typing)"),
)
"""The app-wide keyboard shortcuts (adapters/page.py handles them): keys, then what they
do. "Mod" is Ctrl, or ⌘ on a Mac. There is no search shortcut: there is no search yet."""


def shortcuts_html(mac: bool) -> str:
    """The rows of the keyboard shortcuts list (a <dl>)."""
    names = {"Mod": "⌘" if mac else "Ctrl"}
    rows = []
    for keys, what in SHORTCUTS:
        shown = "+".join(f"<kbd>{escape(names.get(k, k))}</kbd>" for k in keys)
        rows.append(f"<dt>{shown}</dt><dd>{escape(what)}</dd>")
    return "".join(rows)


def conversation_items(conversations: tuple[Conversation, ...], active_id: str | None,
                       loaded: bool, start: int = 0, end: int | None = None) -> str:
    """The sidebar list, or the window [start, end) of it between two spacers that stand
    for the items not rendered (so the scrollbar and scroll position stay true)."""
    if not loaded:
        return '<li class="sidebar-placeholder">Loading conversations…</li>'
    if not conversations:
        return ('<li class="sidebar-placeholder">No conversations yet. '
                "Your chats will appear here.</li>")
    total = len(conversations)
    end = total if end is None else min(end, total)
    start = max(0, min(start, end))
    items = []
    if start:
        items.append(f'<li class="spacer" aria-hidden="true" '
                     f'data-height="{start * SIDEBAR_ITEM_PX}"></li>')
    windowed = start > 0 or end < total
    items.extend(conversation_item(c, active_id, start + i + 1, total if windowed else 0)
                 for i, c in enumerate(conversations[start:end]))
    if end < total:
        items.append(f'<li class="spacer" aria-hidden="true" '
                     f'data-height="{(total - end) * SIDEBAR_ITEM_PX}"></li>')
    return "".join(items)


def message_html(m: Message, simulated: bool, markdown: Markdown | None = None,
                 last: bool = False) -> str:
    role = m.role.value
    classes = f"message {role}"
    if m.status is MessageStatus.STREAMING:
        classes += " streaming"
    author = {Role.USER: "You", Role.ASSISTANT: "Assistant"}.get(m.role, "Unknown sender")
    parts = [f'<article class="{classes}" data-message-id="{escape(m.id)}" '
             f'aria-label="{author}">']
    if (m.role is Role.ASSISTANT and markdown is not None and m.content
            and NOT_TEXT not in m.problems
            and m.status in FINISHED):
        parts.append(f'<div class="bubble markdown">{markdown(m.content)}</div>')
    elif m.role is Role.ASSISTANT and m.status is MessageStatus.ERROR and not m.content:
        pass
    elif m.status is not MessageStatus.STREAMING and heavy.is_heavy(m.content):
        # In pieces the browser lays out only when they are on screen.
        parts.append(f'<div class="bubble">{heavy.plain_html(m.content)}</div>')
    else:
        parts.append(f'<div class="bubble">{escape(m.content)}</div>')
    if m.role is Role.ASSISTANT:
        meta = [model_label(m.model, simulated)]
        if m.status is MessageStatus.STOPPED:
            meta.append("stopped")
        elif m.status is MessageStatus.INTERRUPTED:
            meta.append("interrupted")
        elif m.status is MessageStatus.CUT:
            meta.append("stopped at the length limit")
        parts.append(f'<div class="meta">{escape(" · ".join(meta))}')
        if last and m.status in CONTINUABLE:
            parts.append(' <button type="button" class="link-button" '
                         'data-action="continue">Continue</button>')
        if m.status in FINISHED:
            # Any reply (the later ones go with it); hidden while a reply streams.
            parts.append(' <button type="button" class="link-button" '
                         'data-action="regenerate">Regenerate</button>')
        parts.append("</div>")
    if m.role is Role.USER and not m.problems and m.status is MessageStatus.DONE:
        # Hidden while a reply streams (the thread's "replying" class): css/app.css.
        parts.append('<div class="meta user-actions"><button type="button" '
                     'class="link-button edit-message" data-action="edit-message">'
                     "Edit</button></div>")
    if m.status is MessageStatus.ERROR and m.error:
        retry = (' <button type="button" class="link-button" data-action="regenerate">'
                 "Retry</button>") if last else ""
        parts.append(f'<p class="error" role="alert">{escape(m.error)}{retry}</p>')
    if m.problems:
        parts.append(f'<p class="record-note">{escape(record_note(m.problems))}</p>')
    parts.append("</article>")
    return "".join(parts)


def edit_form_html(m: Message) -> str:
    """The editor that replaces a message of yours while you edit it."""
    field = f"edit-{escape(m.id)}"
    return (f'<form class="edit-form" data-edit-id="{escape(m.id)}">'
            f'<label class="visually-hidden" for="{field}">Edit message</label>'
            f'<textarea id="{field}" class="edit-text" rows="3">{escape(m.content)}</textarea>'
            '<p class="edit-hint muted">Sending replaces the replies after this message.</p>'
            '<div class="edit-actions">'
            '<button type="submit" class="primary-button">Send edit</button>'
            '<button type="button" class="header-button" data-action="cancel-edit">'
            "Cancel edit</button></div></form>")


def record_note(problems: tuple[str, ...]) -> str:
    """The discreet note under a damaged message: "This message has no date." """
    listed = ", ".join(problems[:-1]) + (" and " if len(problems) > 1 else "") + problems[-1]
    return f"This message {listed}. It is shown as stored."


EMPTY = ('<div class="empty-state"><h2>Private chat, on your device</h2>'
         "<p>Models run in your browser with WebGPU. Nothing you type leaves this computer.</p>"
         "</div>")


def thread_html(state: AppState, markdown: Markdown | None = None,
                window: int = THREAD_WINDOW) -> str:
    """The thread: the newest `window` messages, with a button for earlier ones."""
    if state.not_found_id is not None and state.not_found_id == state.deleted_elsewhere_id:
        return deleted_elsewhere_html(state.unsent_text)
    if state.not_found_id is not None:
        return ('<div class="empty-state not-found" role="alert"><h2>Conversation not found</h2>'
                "<p>It may have been deleted, or the link is from another browser.</p>"
                '<p><a href="#/chat">Start a new chat</a></p></div>')
    if not state.messages:
        return thread_notes(state) + EMPTY
    simulated = state.engine_choice.simulated
    shown = state.messages[-window:] if window else state.messages
    hidden = len(state.messages) - len(shown)
    out = [thread_notes(state)]
    if hidden:
        out.append('<p class="earlier"><button type="button" class="link-button" '
                   f'data-action="show-earlier">Show {hidden:,} earlier messages</button></p>')
    last_index = len(shown) - 1
    out.extend(message_html(m, simulated, markdown, i == last_index)
               for i, m in enumerate(shown))
    return "".join(out)


def deleted_elsewhere_html(unsent: str | None) -> str:
    """The open chat was deleted in another tab; a message typed for it can become a new
    chat."""
    out = ['<div class="empty-state not-found" role="alert">'
           "<h2>This chat was deleted in another tab.</h2>"]
    if unsent:
        out.append("<p>Your message wasn’t sent, and nothing was saved into the deleted "
                   "chat:</p>"
                   f'<blockquote class="unsent">{escape(unsent)}</blockquote>'
                   '<p><button type="button" data-action="keep-as-new-chat">'
                   "Keep as new chat</button> "
                   '<button type="button" class="link-button" data-action="discard-unsent">'
                   "Discard</button></p>")
    else:
        out.append("<p>Your other chats are unchanged.</p>")
    out.append('<p><a href="#/chat">Start a new chat</a></p></div>')
    return "".join(out)


def thread_notes(state: AppState) -> str:
    """Notes about the open conversation's stored record (damaged fields, unknown model)."""
    conversation = state.active
    if conversation is None:
        return ""
    notes = []
    if model_for_key(conversation.model) is None:
        notes.append(f"This chat was saved with a model this version doesn't know "
                     f"(“{conversation.model}”). New replies use Smart; the stored chat "
                     "is unchanged.")
    if conversation.problems:
        notes.append("Parts of this chat's stored record are missing or odd ("
                     + ", ".join(conversation.problems)
                     + "). It is shown as best it can be; nothing was changed.")
    if not notes:
        return ""
    items = "".join(f"<p>{escape(n)}</p>" for n in notes)
    return f'<div class="thread-note" role="note">{items}</div>'


def context_note(dropped: int, shortened: bool = False) -> str:
    """The discreet note on what the last prompt left out ("" when nothing)."""
    parts = []
    if shortened:
        parts.append("Your last message is longer than the model's context window: only "
                     "its end was read. Send long text in parts.")
    if dropped > 0:
        subject = ("The earliest message" if dropped == 1
                   else f"The {dropped} earliest messages")
        verb = "was" if dropped == 1 else "were"
        parts.append(f"{subject} of this chat {verb} left out of the last reply to fit the "
                     "model's context window.")
    return " ".join(parts)


def _rate(value: Any, unit: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return f"{value:,.1f} {unit}"
    return "—"


def perf_html(usage: dict[str, Any] | None) -> str:
    """The performance panel's body, from WebLLM's usage report of the last reply."""
    if not usage:
        return '<p class="muted">No reply yet. Send a message to see how fast it was.</p>'
    extra = usage.get("extra") or {}
    ttft = extra.get("time_to_first_token_s")
    rows = [
        ("Decode", _rate(extra.get("decode_tokens_per_s"), "tokens/s")),
        ("Prefill", _rate(extra.get("prefill_tokens_per_s"), "tokens/s")),
        ("Time to first token",
         f"{ttft * 1000:,.0f} ms" if isinstance(ttft, (int, float)) and ttft >= 0 else "—"),
        ("Tokens", f"{usage.get('prompt_tokens', '—')} in, "
                   f"{usage.get('completion_tokens', '—')} out"),
    ]
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="perf-stats">{body}</dl>'


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


def composer_status(state: AppState) -> str:
    """The one-line status under the message box (plain text): who answers now and what
    happens next, read from the state (the reply's credited model, the chat's model and
    its download), never a guess from what has streamed so far (streamed text is not in
    the state until the reply ends)."""
    key = state.requested_model_key
    item = state.downloads.get(key)
    spec = model_for_key(key)
    name = spec.label if spec else key
    active = item is not None and item.state.active
    loaded = spec_for_model_id(state.engine.loaded_model) if state.engine.loaded_model \
        else None
    if not state.replying:
        # The open conversation's model is being loaded onto the GPU (it was chosen,
        # opened, or its download just finished): say so, no reply needed.
        if item is not None and item.state is DownloadState.COMPILING:
            return f"Starting {name}… {round(item.fraction * 100)}%"
        if active and loaded is not None and loaded.key != key:
            return f"{loaded.label} answers until {name} is ready."
        return ""
    last = state.messages[-1] if state.messages else None
    streaming = last is not None and last.status is MessageStatus.STREAMING
    writer = spec_for_model_id(last.model) if streaming and last and last.model else None
    if writer is not None and writer.key != key:
        # The reply was credited to the model that is loaded: it answers, not the chat's.
        if active:
            return f"{writer.label} is answering; {name} takes over when it's ready."
        return f"{writer.label} is answering, because {name} isn't ready."
    if streaming and item is not None:
        # The reply waits for the chat's own model.
        if item.state is DownloadState.DOWNLOADING:
            return f"Waiting for {name} to download… {round(item.fraction * 100)}%"
        if item.state is DownloadState.COMPILING:
            return f"Starting {name}… {round(item.fraction * 100)}%"
        if item.state is DownloadState.QUEUED:
            return f"Waiting for {name}: queued behind another download…"
    if writer is not None:
        return f"{writer.label} is answering…"
    return "Replying…"


def engine_label(choice: EngineChoice) -> str:
    return "Simulated engine" if choice.simulated else ""


# --- models: the selector, the Download Manager, the banner ---------------------------

@dataclass(frozen=True)
class ModelRow:
    """One model as the selector and the Download Manager show it (built by the app)."""

    key: str
    label: str
    size: str
    item: DownloadItem | None
    fit: ModelFit
    loaded: bool
    requested: bool
    simulated: bool
    checking: bool = False
    """Its stored files and record are still being read (after boot): its state is not
    known yet, so nothing is claimed."""
    position: int | None = None
    """Its place in line for the downloader (1: downloading now), if it is in line."""

    @property
    def state_word(self) -> str:
        if not self.fit.usable:
            return "Unavailable"
        if self.checking:
            return "Checking…"
        if self.item is None:
            return "Not downloaded"
        return self.item.state.label

    @property
    def percent(self) -> int:
        return round(self.item.fraction * 100) if self.item else 0


def _row_name(row: ModelRow) -> str:
    return f"{row.label} (simulated)" if row.simulated else row.label


def model_option_text(row: ModelRow) -> str:
    """The state a selector option shows next to the model's name."""
    if not row.fit.usable:
        return f"Unavailable: {row.fit.reason}"
    if row.loaded:
        return "Ready · in use"
    if row.checking:
        return "Checking…"
    item = row.item
    if item is None:
        return "Not downloaded"  # its size is on the line below, with what it is for
    if item.state is DownloadState.DOWNLOADING:
        return f"Downloading {row.percent}%"
    if item.state is DownloadState.COMPILING:
        return f"Starting {row.percent}%"
    if item.state is DownloadState.CANCELED:
        if item.counting:
            return "Canceled"
        if item.bytes_done:
            return f"Canceled · {format_bytes(item.bytes_done)} of {row.size} kept"
        return f"Canceled · {row.size}"
    if item.state is DownloadState.FAILED:
        return "Couldn't start" if item.failed_to_start else "Download failed"
    return item.state.label


def option_name(row: ModelRow) -> str:
    """The name part of a selector option (plain text)."""
    return _row_name(row)


def model_option_cost(row: ModelRow) -> str:
    """What choosing the model costs and gives: "4.4 GB download · best answers, needs a
    strong GPU" (a stored model costs nothing more: only what it is good for)."""
    spec = model_for_key(row.key)
    purpose = spec.purpose if spec else ""
    item = row.item
    stored = row.loaded or (item is not None and (item.state in (
        DownloadState.READY, DownloadState.COMPILING) or item.failed_to_start))
    if stored or row.checking or not row.fit.usable:
        return purpose
    return " · ".join(p for p in (f"{row.size} download", purpose) if p)


def model_options_html(rows: list[ModelRow]) -> str:
    out = []
    for row in rows:
        disabled = ' aria-disabled="true"' if not row.fit.usable else ""
        out.append(
            f'<li role="option" id="model-option-{escape(row.key)}" data-key="{escape(row.key)}"'
            f' aria-selected="{"true" if row.requested else "false"}"{disabled} tabindex="-1">'
            f'<span class="option-name">{escape(option_name(row))}</span> '
            f'<span class="option-state">{escape(model_option_text(row))}</span> '
            f'<span class="option-cost">{escape(model_option_cost(row))}</span></li>')
    return "".join(out)


def model_button_text(row: ModelRow) -> str:
    """The selector button: "Model: Smart", with what is pending."""
    base = f"Model: {_row_name(row)}"
    if row.loaded:
        return base
    item = row.item
    if not row.fit.usable:
        return f"{base} (unavailable)"
    if row.checking:
        return f"{base} (checking…)"
    if item is None or item.state is DownloadState.CANCELED:
        return f"{base} (not downloaded)"
    if item.state is DownloadState.QUEUED:
        return f"{base} (queued)"
    if item.state is DownloadState.DOWNLOADING:
        return f"{base} (downloading {row.percent}%)"
    if item.state is DownloadState.COMPILING:
        return f"{base} (starting {row.percent}%)"
    if item.state is DownloadState.FAILED:
        return f"{base} (couldn't start)" if item.failed_to_start else f"{base} (download failed)"
    return base


def row_words(row: ModelRow, max_retries: int, now_ms: int | None = None) -> str:
    """A Download Manager row's detail line (plain text)."""
    if row.loaded:
        return "In use by this chat" if row.requested else "Loaded"
    if row.checking:
        return "Checking what is stored on this device…"
    if row.item is None:
        return ""
    return progress_words(row.item, max_retries, position=row.position, now_ms=now_ms)


def download_row_html(row: ModelRow, max_retries: int, now_ms: int | None = None) -> str:
    item = row.item
    word = row.state_word
    key = escape(row.key)
    name = escape(_row_name(row))
    parts = [f'<li class="download-row state-{escape(word.lower().replace(" ", "-"))}" '
             f'data-key="{key}" data-shape="{escape(download_row_shape(row))}">'
             f'<div class="row-head"><strong>{name}</strong> '
             f'<span class="state-word">{escape(word)}</span>'
             f'<span class="row-size">{escape(row.size)}</span></div>']
    if not row.fit.usable:
        parts.append(f'<p class="row-detail">{escape(row.fit.reason)}</p>')
    elif item is not None and item.state in (DownloadState.DOWNLOADING,
                                             DownloadState.COMPILING):
        parts.append(
            f'<div class="progress" role="progressbar" aria-label="{name} progress" '
            f'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{row.percent}" '
            f'data-eta-s="{eta_attr(item)}">'
            f'<div class="progress-fill" data-percent="{row.percent}"></div></div>')
    words = row_words(row, max_retries, now_ms)
    if words and row.fit.usable:
        role = ' role="alert"' if item is not None and item.state is DownloadState.FAILED \
            else ""
        parts.append(f'<p class="row-detail"{role}>{escape(words)}</p>')
    actions = []
    has_files = item is not None and (item.bytes_done > 0 or item.failed_to_start
                                      or item.state is DownloadState.READY)
    if row.checking:
        pass  # no action until its state is known
    elif row.fit.usable:
        if item is None:
            actions.append(("download", "Download"))
        elif item.state is DownloadState.CANCELED:
            actions.append(("download", "Resume" if item.bytes_done else "Download"))
        elif item.state.active:
            actions.append(("cancel", "Cancel"))
        elif item.state is DownloadState.FAILED:
            actions.append(("retry", "Retry"))
    if item is not None and not item.state.active and has_files and not row.checking:
        actions.append(("delete-model", "Remove files"))
    if actions:
        buttons = "".join(
            f'<button type="button" class="row-button" data-action="{a}" data-key="{key}" '
            f'aria-label="{escape(label)} {name}">{escape(label)}</button>'
            for a, label in actions)
        parts.append(f'<div class="row-actions">{buttons}</div>')
    parts.append("</li>")
    return "".join(parts)


def eta_attr(item: DownloadItem | None) -> str:
    """The raw time estimate (seconds) for tools; the words are what people read."""
    if item is None or item.eta_seconds is None:
        return ""
    return f"{item.eta_seconds:.2f}"


def download_row_shape(row: ModelRow) -> str:
    """What changes a row's structure (anything else is a progress update in place)."""
    item = row.item
    return "|".join([row.state_word, str(row.checking), str(row.fit.usable), str(row.loaded),
                     str(row.requested),
                     str(bool(item and item.retry)), item.error.title if item and item.error
                     else "", row.size, str(bool(item and item.bytes_done))])


def storage_html(storage: StorageInfo | None) -> str:
    if storage is None or storage.usage is None or storage.quota is None:
        return "Storage use is not known in this browser."
    kept = " Kept by the browser (persistent)." if storage.persisted else ""
    return (f"LocalChat uses {format_bytes(storage.usage)} of the "
            f"{format_bytes(storage.quota)} this browser allows it.{kept}")


def model_banner_html(row: ModelRow, alternative: ModelRow | None, first_visit: bool,
                      warning: str = "") -> str:
    """Shown above the composer when the chat's model isn't downloaded (`warning`: what
    to know before downloading, such as a software-only GPU)."""
    name = escape(_row_name(row))
    if not row.fit.usable:
        text = f"This chat uses {name}, which can't run on this device: {escape(row.fit.reason)}"
        download = ""
    elif first_visit:
        text = f"To start chatting, download {name} ({escape(row.size)}). It stays on this device."
        download = (f'<button type="button" class="primary-button" data-action="download" '
                    f'data-key="{escape(row.key)}">Download {name} ({escape(row.size)})</button>')
    elif row.item is not None and row.item.state is DownloadState.FAILED:
        error = row.item.error
        if row.item.failed_to_start:
            why = escape(error.detail) if error else ""
            text = f"This chat uses {name}, which couldn't start. {why}".strip()
        else:
            why = escape(f"{error.title} {error.detail}".strip()) if error else ""
            text = f"This chat uses {name}, whose download failed. {why}".strip()
        download = (f'<button type="button" class="row-button" data-action="retry" '
                    f'data-key="{escape(row.key)}">Retry</button>')
    else:
        text = f"This chat uses {name}, which isn't downloaded."
        label = "Resume download" if row.item is not None and row.item.bytes_done else "Download"
        download = (f'<button type="button" class="row-button" data-action="download" '
                    f'data-key="{escape(row.key)}">{label}</button>')
    use = ""
    if alternative is not None:
        use = (f'<button type="button" class="row-button" data-action="use-model" '
               f'data-key="{escape(alternative.key)}">Use {escape(_row_name(alternative))} '
               "instead</button>")
    note = f'<p class="banner-warning">{escape(warning)}</p>' if warning else ""
    return (f'<div class="model-banner" role="note"><p>{text}</p>{note}{download}{use}'
            "</div>")


@dataclass(frozen=True)
class DownloadsBadge:
    """What the header's Downloads button shows with the panel closed."""

    label: str
    """Its accessible name: "Downloads, Smart 42 %", "Downloads, Genius failed"."""
    percent: int | None
    """The active download's (or start's) progress; None: nothing is running."""
    failed: bool
    """Some model's last download or start failed."""


def downloads_badge(state: AppState) -> DownloadsBadge:
    items = [state.downloads[s.key] for s in CATALOG if s.key in state.downloads]
    active = next((i for i in items if i.state is DownloadState.DOWNLOADING), None) or \
        next((i for i in items if i.state is DownloadState.COMPILING), None)
    parts = ["Downloads"]
    percent = None
    if active is not None:
        percent = round(active.fraction * 100)
        doing = " starting" if active.state is DownloadState.COMPILING else ""
        parts.append(f"{_label(active.key)}{doing} {percent} %")
    failed = [i for i in items if i.state is DownloadState.FAILED]
    parts.extend(f"{_label(i.key)} {'couldn’t start' if i.failed_to_start else 'failed'}"
                 for i in failed)
    return DownloadsBadge(", ".join(parts), percent, bool(failed))


def downloads_button_html(badge: DownloadsBadge) -> str:
    """The Downloads button's content (its name is `badge.label`, in aria-label)."""
    out = ['<span class="downloads-word">Downloads</span>']
    if badge.percent is not None:
        out.append(f'<span class="downloads-ring" data-percent="{badge.percent}" '
                   f'aria-hidden="true"></span><span class="downloads-percent" '
                   f'aria-hidden="true">{badge.percent}%</span>')
    if badge.failed:
        out.append('<span class="downloads-failed" aria-hidden="true">!</span>')
    return "".join(out)


def _label(key: str) -> str:
    spec = model_for_key(key)
    return spec.label if spec else key


def failure_toast_text(item: DownloadItem) -> str:
    """The toast when a model's download (or start) failed: what and why."""
    name = _label(item.key)
    what = f"{name} couldn’t start." if item.failed_to_start else \
        f"{name}’s download failed."
    return f"{what} {item.error.title}" if item.error is not None else what


def model_rows(state: AppState) -> list[ModelRow]:
    """Every catalog model as the selector shows it (catalog order); the Download Manager
    lists them in `queue_order`."""
    f16 = bool(state.gpu and state.gpu.f16)
    requested = state.requested_model_key
    positions = queue_positions(state.downloads)
    rows = []
    for spec in CATALOG:
        exact = state.model_sizes.get(spec.key)
        size = format_bytes(exact) if exact else format_bytes(
            spec.download_mb(f16) * 1024 * 1024, approximate=True)
        rows.append(ModelRow(spec.key, spec.label, size, state.downloads.get(spec.key),
                             model_fit(spec, state.gpu),
                             state.engine.loaded_model == spec.model_id(f16),
                             spec.key == requested, state.engine_choice.simulated,
                             state.models_checking and spec.key not in state.downloads,
                             positions.get(spec.key)))
    return rows


def download_rows(rows: list[ModelRow], state: AppState) -> list[ModelRow]:
    """The rows in the Download Manager's order: what is starting or in line first, in
    queue order, then the rest."""
    by_key = {r.key: r for r in rows}
    return [by_key[k] for k in queue_order(state.downloads) if k in by_key]
