"""Views: user- and model-written text is escaped; messages are labelled."""

from __future__ import annotations

import re
from dataclasses import replace

from localchat.core.conversation import (
    Conversation,
    Message,
    MessageStatus,
    Role,
    message_from_record,
)
from localchat.core.downloads import DownloadItem, DownloadState
from localchat.core.errors import UserMessage
from localchat.core.gpu import GpuReport, slow_gpu_warning
from localchat.core.settings import EngineChoice, EngineKind
from localchat.core.state import AppState, EngineStatus
from localchat.ui.views import (
    SHORTCUTS,
    ModelRow,
    composer_status,
    context_note,
    conversation_items,
    download_row_html,
    downloads_badge,
    downloads_button_html,
    edit_form_html,
    failure_toast_text,
    message_html,
    model_banner_html,
    model_button_text,
    model_label,
    model_option_cost,
    model_option_text,
    model_rows,
    notices_html,
    shortcuts_html,
    thread_html,
)
from tests.unit.html_probe import active_content, elements, text

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SMART_F32 = "Llama-3.2-3B-Instruct-q4f32_1-MLC"


def _user(content: str, mid: str = "u1") -> Message:
    return Message(mid, "c1", Role.USER, content, None, 1)


def _assistant(content: str, status: MessageStatus = MessageStatus.DONE,
               model: str | None = SMART_F32, error: str | None = None,
               mid: str = "a1") -> Message:
    return Message(mid, "c1", Role.ASSISTANT, content, model, 2, status, error)


def _only(html: str, tag: str, **attrs: str) -> dict[str, str | None]:
    found = [e.attrs for e in elements(html, tag)
             if all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]
    assert len(found) == 1, found
    return found[0]


# --- the conversation list ---------------------------------------------------------------


def test_titles_in_the_list_are_escaped() -> None:
    html = conversation_items((Conversation("c1", EVIL, "smart", 1, 1),), None, loaded=True)
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert active_content(html) == []
    assert _only(html, "a")["href"] == "#/chat/c1"
    assert text(html).startswith(EVIL)
    assert _only(html, "button", data_action="rename")["aria-label"] == f"Rename “{EVIL}”"


def test_an_odd_id_cannot_break_out_of_its_attributes() -> None:
    cid = 'x" onmouseover="alert(1)'
    html = conversation_items((Conversation(cid, "T", "smart", 1, 1),), cid, loaded=True)
    assert active_content(html) == []
    assert _only(html, "li")["data-id"] == cid
    assert _only(html, "a")["href"] == f"#/chat/{cid}"


def test_only_the_active_conversation_is_current() -> None:
    chats = (Conversation("a", "A", "smart", 1, 2), Conversation("b", "B", "smart", 1, 1))
    html = conversation_items(chats, "b", loaded=True)
    assert [(a["href"], a.get("aria-current")) for a in (e.attrs for e in elements(html, "a"))] \
        == [("#/chat/a", None), ("#/chat/b", "page")]


def test_list_placeholders_and_window() -> None:
    chats = tuple(Conversation(f"c{i}", f"Chat {i}", "smart", 1, 1) for i in range(5))
    assert "Loading conversations" in conversation_items(chats, None, loaded=False)
    assert "No conversations yet" in conversation_items((), None, loaded=True)
    window = conversation_items(chats, None, loaded=True, start=1, end=3)
    links = [e.attrs["href"] for e in elements(window, "a")]
    assert links == ["#/chat/c1", "#/chat/c2"]
    spacers = [e.attrs["data-height"] for e in elements(window, "li")
               if e.attrs.get("class") == "spacer"]
    assert spacers == ["40", "80"]  # px, by app.css (no style attribute: the CSP refuses it)
    items = [e.attrs for e in elements(window, "li") if e.attrs.get("data-id")]
    assert [(i["aria-posinset"], i["aria-setsize"]) for i in items] == [("2", "5"), ("3", "5")]


# --- messages ---------------------------------------------------------------------------


def test_a_user_message_is_labelled_you_and_escaped() -> None:
    html = message_html(_user(EVIL), simulated=False)
    article = _only(html, "article")
    assert article["aria-label"] == "You"
    assert article["class"] == "message user"
    assert "<script" not in html
    assert active_content(html) == []
    assert text(html) == EVIL + "Edit"
    # Its one action: Edit (the thread hides it while a reply streams).
    assert [b.attrs["data-action"] for b in elements(html, "button")] == ["edit-message"]


def test_only_a_plain_finished_message_of_yours_offers_edit() -> None:
    damaged = message_from_record({"id": "m1", "conversationId": "c1", "role": "user",
                                   "content": "no date"})
    assert damaged is not None
    for m in (_assistant("Hi"), damaged, replace(_user("x"), status=MessageStatus.ERROR)):
        assert "edit-message" not in message_html(m, simulated=False, last=True)


def test_the_edit_form_holds_the_text_escaped_with_named_controls() -> None:
    html = edit_form_html(replace(_user(EVIL), id='m"1'))
    assert "<script" not in html and active_content(html) == []
    assert _only(html, "textarea")["id"] == 'edit-m"1'
    assert _only(html, "label")["for"] == 'edit-m"1'
    assert text(html).startswith("Edit message" + EVIL)
    assert [b.attrs.get("type") for b in elements(html, "button")] == ["submit", "button"]
    assert "Send edit" in text(html) and "Cancel edit" in text(html)


def test_user_messages_are_never_rendered_as_markdown() -> None:
    html = message_html(_user("**bold**"), False, markdown=lambda s: "<b>rendered</b>")
    assert "rendered" not in html
    assert text(html) == "**bold**Edit"


def test_an_assistant_message_is_labelled_and_shows_its_model() -> None:
    html = message_html(_assistant("Hi <b>there</b>"), simulated=False)
    assert _only(html, "article")["aria-label"] == "Assistant"
    assert _only(html, "div", **{"class": "meta"}) is not None
    assert text(html) == "Hi <b>there</b>Smart Regenerate"
    assert elements(html, "b") == []


def test_the_simulated_engine_is_named_in_the_model_label() -> None:
    html = message_html(_assistant("Hi"), simulated=True)
    assert "Smart (simulated)" in text(html)
    assert model_label(SMART_F32, simulated=True) == "Smart (simulated)"


def test_unknown_and_missing_models_are_labelled_safely() -> None:
    html = message_html(_assistant("Hi", model="<i>new-model</i>"), simulated=False)
    assert elements(html, "i") == []
    assert text(html).endswith("<i>new-model</i> Regenerate")
    assert model_label(None, simulated=False) == "Unknown model"


def test_a_stopped_reply_says_so() -> None:
    html = message_html(_assistant("Partial", MessageStatus.STOPPED), simulated=False)
    assert text(html) == "PartialSmart · stopped Regenerate"


def test_finished_replies_use_the_markdown_renderer() -> None:
    seen: list[str] = []

    def markdown(source: str) -> str:
        seen.append(source)
        return "<p>rendered</p>"

    done = message_html(_assistant("**hi**"), False, markdown=markdown)
    streaming = message_html(_assistant("**hi", MessageStatus.STREAMING), False,
                             markdown=markdown)
    assert "<p>rendered</p>" in done
    assert seen == ["**hi**"]
    assert "streaming" in _only(streaming, "article")["class"]
    assert text(streaming).startswith("**hi")


def test_a_failed_reply_shows_its_error_escaped_with_retry_when_last() -> None:
    failed = _assistant("", MessageStatus.ERROR, error="GPU <b>lost</b>")
    html = message_html(failed, simulated=False, last=True)
    alert = _only(html, "p", role="alert")
    assert alert["class"] == "error"
    assert elements(html, "b") == []
    assert "GPU <b>lost</b>" in text(html)
    assert _only(html, "button", data_action="regenerate") is not None
    assert not any(e.attrs.get("class") == "bubble" for e in elements(html))
    assert elements(message_html(failed, simulated=False, last=False), "button") == []


def test_every_finished_reply_offers_regenerate_and_only_the_last_continue() -> None:
    for status in (MessageStatus.DONE, MessageStatus.STOPPED, MessageStatus.INTERRUPTED,
                   MessageStatus.CUT):
        reply = _assistant("Hi", status)
        assert "Regenerate" in message_html(reply, False, last=True)
        assert "Regenerate" in message_html(reply, False, last=False)
        continues = status is not MessageStatus.DONE
        assert ("Continue" in message_html(reply, False, last=True)) is continues
        assert "Continue" not in message_html(reply, False, last=False)
    streaming = _assistant("Hi", MessageStatus.STREAMING)
    assert "Regenerate" not in message_html(streaming, False, last=True)


def test_an_interrupted_reply_says_so_and_offers_continue_and_regenerate_when_last() -> None:
    interrupted = _assistant("Half a", MessageStatus.INTERRUPTED)
    html = message_html(interrupted, simulated=False, last=True)
    assert text(html) == "Half aSmart · interrupted Continue Regenerate"
    assert [b.attrs["data-action"] for b in elements(html, "button")] == [
        "continue", "regenerate"]
    earlier = message_html(interrupted, simulated=False, last=False)
    assert [b.attrs["data-action"] for b in elements(earlier, "button")] == ["regenerate"]
    assert "streaming" not in _only(html, "article")["class"]


def test_a_reply_cut_at_the_length_limit_says_so_and_is_formatted() -> None:
    cut = _assistant("**Half** a", MessageStatus.CUT)
    html = message_html(cut, simulated=False, markdown=lambda s: "<b>Half</b> a", last=True)
    assert text(html) == "Half aSmart · stopped at the length limit Continue Regenerate"


def test_a_damaged_message_is_shown_with_a_discreet_note() -> None:
    m = message_from_record({"id": "m1", "conversationId": "c1", "role": "user",
                             "content": "still here"})
    assert m is not None
    html = message_html(m, simulated=False)
    assert "still here" in text(html)
    assert text(html).endswith("This message has no date. It is shown as stored.")
    assert [e.attrs.get("class") for e in elements(html, "p")] == ["record-note"]


def test_a_message_of_an_unknown_sender_is_labelled_so_with_the_stored_role_escaped() -> None:
    m = message_from_record({"id": "m1", "conversationId": "c1", "role": EVIL,
                             "content": "hello", "createdAt": 1, "status": "weird"})
    assert m is not None
    html = message_html(m, simulated=False, markdown=lambda s: "<b>rendered</b>", last=True)
    assert _only(html, "article")["aria-label"] == "Unknown sender"
    assert elements(html, "script") == [] and elements(html, "button") == []
    assert EVIL in text(html) and "has an unknown status (“weird”)" in text(html)


def test_content_that_is_not_text_is_shown_as_plain_json_not_markdown() -> None:
    m = message_from_record({"id": "m1", "conversationId": "c1", "role": "assistant",
                             "content": {"text": "**x**"}, "createdAt": 1})
    assert m is not None
    html = message_html(m, simulated=False, markdown=lambda s: "<b>rendered</b>")
    assert "rendered" not in html
    assert '{"text": "**x**"}' in text(html)


def test_a_chat_deleted_in_another_tab_says_so_and_offers_the_unsent_text_as_new() -> None:
    gone = AppState(not_found_id="c1", deleted_elsewhere_id="c1")
    html = thread_html(gone)
    assert "This chat was deleted in another tab." in text(html)
    assert elements(html, "button") == []
    offered = thread_html(replace(gone, unsent_text=EVIL))
    assert EVIL in text(offered) and elements(offered, "script") == []
    assert [b.attrs["data-action"] for b in elements(offered, "button")] == [
        "keep-as-new-chat", "discard-unsent"]
    assert "Keep as new chat" in text(offered)
    # A link to a chat that never existed here still says "not found".
    assert "Conversation not found" in text(thread_html(AppState(not_found_id="c1")))


def test_message_ids_are_escaped_in_attributes() -> None:
    html = message_html(_user("x", mid='m"><script>'), simulated=False)
    assert elements(html, "script") == []
    assert _only(html, "article")["data-message-id"] == 'm"><script>'


# --- the thread and notices ---------------------------------------------------------------


def test_a_missing_conversation_shows_not_found() -> None:
    html = thread_html(AppState(not_found_id="gone"))
    assert "Conversation not found" in text(html)
    assert _only(html, "a")["href"] == "#/chat"


def test_the_thread_labels_each_message() -> None:
    chat = Conversation("c1", "T", "smart", 1, 1)
    state = AppState(conversations=(chat,), active_id="c1",
                     messages=(_user("Q"), _assistant("A")))
    labels = [e.attrs["aria-label"] for e in elements(thread_html(state), "article")]
    assert labels == ["You", "Assistant"]


def test_a_note_about_an_unknown_stored_model_is_escaped() -> None:
    chat = Conversation("c1", "T", "<img src=x onerror=alert(1)>", 1, 1)
    state = AppState(conversations=(chat,), active_id="c1", messages=(_user("Q"),))
    html = thread_html(state)
    assert active_content(html) == []
    assert "saved with a model this version doesn't know" in text(html)
    assert "(“<img src=x onerror=alert(1)>”)" in text(html)


def test_an_unknown_engine_name_in_the_address_is_escaped() -> None:
    state = AppState(engine_choice=EngineChoice(EngineKind.INVALID, requested=EVIL))
    html = notices_html(state, None)
    assert active_content(html) == []
    assert f"Unknown engine “{EVIL}”." in text(html)


def test_ignored_simulator_settings_are_listed_escaped() -> None:
    state = AppState(engine_choice=EngineChoice(EngineKind.SIM, problems=(EVIL, "second")))
    html = notices_html(state, None)
    assert active_content(html) == []
    assert [text(html).count(EVIL), len(elements(html, "li"))] == [1, 2]


def test_context_note_says_what_the_last_prompt_left_out() -> None:
    assert context_note(0) == ""
    assert context_note(1) == ("The earliest message of this chat was left out of the "
                                     "last reply to fit the model's context window.")
    assert context_note(3).startswith("The 3 earliest messages of this chat were left")
    both = context_note(2, shortened=True)
    assert both.startswith("Your last message is longer than the model's context window: "
                           "only its end was read.")
    assert "The 2 earliest messages" in both
    assert context_note(0, shortened=True).endswith("Send long text in parts.")


# --- models: what each lifecycle state offers and says ----------------------------------------

MB = 1024 * 1024
GENIUS_F32 = "Llama-3.1-8B-Instruct-q4f32_1-MLC"
COULDNT = UserMessage("Genius couldn't start.", "Genius needs about 6 GB of GPU memory.",
                      "Retry.")


def _genius_row(item: DownloadItem | None, **state: object) -> ModelRow:
    base = AppState(downloads={"genius": item} if item else {}, new_chat_model="genius")
    return next(r for r in model_rows(replace(base, **state)) if r.key == "genius")


def _actions(row: ModelRow) -> list[str]:
    return re.findall(r"<button[^>]*>([^<]*)</button>", download_row_html(row, 3))


def test_each_state_offers_its_actions() -> None:
    S = DownloadState
    assert _actions(_genius_row(None)) == ["Download"]
    assert _actions(_genius_row(DownloadItem("genius", GENIUS_F32, S.DOWNLOADING))) == ["Cancel"]
    assert _actions(_genius_row(DownloadItem("genius", GENIUS_F32, S.COMPILING))) == ["Cancel"]
    assert _actions(_genius_row(DownloadItem("genius", GENIUS_F32, S.READY))) == \
        ["Remove files"]
    nothing_kept = DownloadItem("genius", GENIUS_F32, S.CANCELED)
    assert _actions(_genius_row(nothing_kept)) == ["Download"]
    kept = DownloadItem("genius", GENIUS_F32, S.CANCELED, bytes_done=300 * MB,
                        bytes_total=4000 * MB)
    assert _actions(_genius_row(kept)) == ["Resume", "Remove files"]
    failed = DownloadItem("genius", GENIUS_F32, S.FAILED, error=COULDNT, failed_to_start=True)
    assert _actions(_genius_row(failed)) == ["Retry", "Remove files"]


def test_a_model_that_couldnt_start_never_says_download_failed() -> None:
    failed = DownloadItem("genius", GENIUS_F32, DownloadState.FAILED, error=COULDNT,
                          failed_to_start=True)
    row = _genius_row(failed)
    assert model_button_text(row) == "Model: Genius (couldn't start)"
    assert model_option_text(row) == "Couldn't start"
    banner = text(model_banner_html(row, None, False))
    assert banner.startswith("This chat uses Genius, which couldn't start. Genius needs about")
    assert "download" not in banner.lower()
    broken = DownloadItem("genius", GENIUS_F32, DownloadState.FAILED,
                          error=UserMessage("The model host is having trouble.", "d", "a"))
    row = _genius_row(broken)
    assert model_button_text(row) == "Model: Genius (download failed)"
    assert "whose download failed. The model host is having trouble." in text(
        model_banner_html(row, None, False))


def test_a_start_shows_its_progress_in_the_selector() -> None:
    item = DownloadItem("genius", GENIUS_F32, DownloadState.COMPILING, compile_fraction=0.4)
    row = _genius_row(item)
    assert model_button_text(row) == "Model: Genius (starting 40%)"
    assert model_option_text(row) == "Starting 40%"


def test_the_composer_says_who_answers_while_the_wanted_model_downloads() -> None:
    item = DownloadItem("genius", GENIUS_F32, DownloadState.DOWNLOADING, bytes_total=10,
                        bytes_done=3)
    # The reply was credited to Smart (loaded); the streamed text is not in the state
    # until the reply ends, so nothing may be judged from its (empty) content.
    streaming = _assistant("", MessageStatus.STREAMING)
    state = AppState(downloads={"genius": item}, new_chat_model="genius", replying=True,
                     messages=(_user("hi"), streaming),
                     engine=EngineStatus(loaded_model=SMART_F32))
    assert composer_status(state) == "Smart is answering; Genius takes over when it's ready."
    # Not credited yet (nothing loaded): the reply waits for Genius itself.
    waiting = replace(state, engine=EngineStatus(),
                      messages=(_user("hi"), _assistant("", MessageStatus.STREAMING,
                                                        model=GENIUS_F32)))
    assert composer_status(waiting) == "Waiting for Genius to download… 30%"
    queued = replace(waiting, downloads={"genius": replace(item, state=DownloadState.QUEUED)})
    assert composer_status(queued) == "Waiting for Genius: queued behind another download…"
    # Before sending: who will answer, and until when.
    idle = replace(state, replying=False, messages=())
    assert composer_status(idle) == "Smart answers until Genius is ready."
    # Genius's download was canceled: Smart answers, and says why.
    canceled = replace(state, downloads={"genius": replace(item, state=DownloadState.CANCELED)})
    assert composer_status(canceled) == "Smart is answering, because Genius isn't ready."
    assert composer_status(replace(canceled, replying=False)) == ""


def test_the_composer_names_the_model_that_answers_its_own_chat() -> None:
    state = AppState(replying=True, engine=EngineStatus(loaded_model=SMART_F32),
                     messages=(_user("hi"), _assistant("", MessageStatus.STREAMING)))
    assert composer_status(state) == "Smart is answering…"
    assert composer_status(replace(state, replying=False)) == ""


def test_the_composer_says_the_chats_model_is_starting_without_a_reply_waiting() -> None:
    item = DownloadItem("genius", GENIUS_F32, DownloadState.COMPILING, compile_fraction=0.4)
    state = AppState(downloads={"genius": item}, new_chat_model="genius")
    assert composer_status(state) == "Starting Genius… 40%"
    waiting = replace(state, replying=True,
                      messages=(_user("hi"), _assistant("", MessageStatus.STREAMING,
                                                        model=GENIUS_F32)))
    assert composer_status(waiting) == "Starting Genius… 40%"
    # Another model starting (not the one this chat asks for) is not this chat's news.
    other = replace(state, new_chat_model="smart")
    assert composer_status(other) == ""
    ready = replace(state, downloads={"genius": replace(item, state=DownloadState.READY)})
    assert composer_status(ready) == ""


def test_while_the_stored_models_are_checked_nothing_false_is_claimed() -> None:
    row = _genius_row(None, models_checking=True)
    assert model_button_text(row) == "Model: Genius (checking…)"
    assert model_option_text(row) == "Checking…"
    assert _actions(row) == []
    assert "Checking what is stored" in text(download_row_html(row, 3))
    # An item already known (a request made while checking) shows its real state.
    queued = DownloadItem("genius", GENIUS_F32, DownloadState.QUEUED)
    assert model_button_text(_genius_row(queued, models_checking=True)) == \
        "Model: Genius (queued)"
    assert model_button_text(_genius_row(None)) == "Model: Genius (not downloaded)"


def test_the_downloads_button_names_the_running_download_and_failures() -> None:
    S = DownloadState
    assert downloads_badge(AppState()).label == "Downloads"
    running = DownloadItem("smart", "m", S.DOWNLOADING, bytes_total=100, bytes_done=42)
    failed = DownloadItem("genius", GENIUS_F32, S.FAILED,
                          error=UserMessage("The connection dropped.", "d", "a"))
    queued = DownloadItem("quick", "q", S.QUEUED)
    badge = downloads_badge(AppState(downloads={"genius": failed, "smart": running,
                                                "quick": queued}))
    assert badge.label == "Downloads, Smart 42 %, Genius failed"
    assert (badge.percent, badge.failed) == (42, True)
    html = downloads_button_html(badge)
    assert 'data-percent="42"' in html and "downloads-failed" in html
    assert failure_toast_text(failed) == "Genius’s download failed. The connection dropped."
    starting = DownloadItem("smart", "m", S.COMPILING, compile_fraction=0.5)
    assert downloads_badge(AppState(downloads={"smart": starting})).label == \
        "Downloads, Smart starting 50 %"


def test_options_show_the_download_size_and_what_each_model_is_good_for() -> None:
    row = _genius_row(None, model_sizes={"genius": 4420 * MB})
    assert model_option_cost(row) == "4.3 GB download · best answers, needs a strong GPU"
    ready = _genius_row(DownloadItem("genius", GENIUS_F32, DownloadState.READY))
    assert model_option_cost(ready) == "best answers, needs a strong GPU"
    kept = DownloadItem("genius", GENIUS_F32, DownloadState.CANCELED, bytes_done=MB)
    assert model_option_cost(_genius_row(kept)).startswith("≈ 4.9 GB download · best")


def test_a_software_only_gpu_is_named_with_its_warning_before_any_download() -> None:
    soft = GpuReport(usable=True, reason="ok", f16=False, low_resource=False,
                     description="SwiftShader device (Subzero)", fallback=True)
    warning = slow_gpu_warning(soft)
    assert "SwiftShader" in warning and "very slow" in warning
    assert slow_gpu_warning(replace(soft, fallback=False)) == ""
    row = _genius_row(None, gpu=soft)
    assert warning in text(model_banner_html(row, None, True, warning))


def test_the_shortcuts_list_names_the_platform_key() -> None:
    pc, mac = shortcuts_html(mac=False), shortcuts_html(mac=True)
    assert "<dt><kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>O</kbd></dt><dd>New chat</dd>" in pc
    assert "<kbd>⌘</kbd>+<kbd>Shift</kbd>+<kbd>S</kbd>" in mac and "Ctrl" not in mac
    assert pc.count("<dt>") == len(SHORTCUTS)
    assert "search" not in pc.lower()  # no search field, so no search shortcut
