"""The per-model download lifecycle (core/downloads.py): states, words, fit, records."""

from __future__ import annotations

from typing import Any

import pytest

from localchat.core.catalog import CATALOG, model_for_key
from localchat.core.downloads import (
    RECORD_VERSION,
    TRANSITIONS,
    DownloadEvent,
    DownloadItem,
    DownloadState,
    IllegalTransition,
    ModelFit,
    device_binding_mb,
    format_bytes,
    item_from_record,
    item_to_record,
    model_fit,
    new_item,
    ordinal,
    progress_words,
    queue_order,
    queue_positions,
    transition,
)
from localchat.core.errors import UserMessage
from localchat.core.gpu import GpuReport

MB = 1024 * 1024
GB = 1024 * MB
SMART_F32 = "Llama-3.2-3B-Instruct-q4f32_1-MLC"
SMART_F16 = "Llama-3.2-3B-Instruct-q4f16_1-MLC"
QUICK_F16 = "Llama-3.2-1B-Instruct-q4f16_1-MLC"
GENIUS_F32 = "Llama-3.1-8B-Instruct-q4f32_1-MLC"
PROBLEM = UserMessage("Can't reach the model host.", "Check your connection.",
                      "Check the connection and try again.")
S = DownloadState
E = DownloadEvent


def spec(key: str) -> Any:
    found = model_for_key(key)
    assert found is not None
    return found


# --- states ------------------------------------------------------------------------------------


def test_state_labels() -> None:
    assert [s.label for s in S] == ["Queued", "Downloading", "Compiling", "Ready", "Failed",
                                    "Canceled"]


def test_only_waiting_and_loading_states_are_active() -> None:
    assert {s for s in S if s.active} == {S.QUEUED, S.DOWNLOADING, S.COMPILING}


# --- fraction ------------------------------------------------------------------------------


@pytest.mark.parametrize("state, expected", [
    (S.QUEUED, 0.25),
    (S.DOWNLOADING, 0.25),
    (S.COMPILING, 0.6),
    (S.READY, 1.0),
    (S.FAILED, 0.25),
    (S.CANCELED, 0.25),
])
def test_fraction_per_state(state: DownloadState, expected: float) -> None:
    item = DownloadItem("smart", SMART_F32, state, bytes_total=400 * MB, bytes_done=100 * MB,
                        compile_fraction=0.6)
    assert item.fraction == pytest.approx(expected)


def test_fraction_without_a_known_size_is_zero_and_never_above_one() -> None:
    assert DownloadItem("smart", SMART_F32, S.DOWNLOADING, bytes_done=5 * MB).fraction == 0.0
    over = DownloadItem("smart", SMART_F32, S.DOWNLOADING, bytes_total=10, bytes_done=11)
    assert over.fraction == 1.0
    assert DownloadItem("smart", SMART_F32, S.READY).fraction == 1.0


def test_moved_keeps_everything_else() -> None:
    item = DownloadItem("smart", SMART_F32, S.QUEUED, requested_at=7, bytes_total=3)
    moved = item.moved(E.START, retry=2)
    assert (moved.state, moved.retry, moved.requested_at, moved.bytes_total) == \
        (S.DOWNLOADING, 2, 7, 3)
    assert item.state is S.QUEUED  # frozen: a new item


def test_moved_refuses_what_the_table_forbids() -> None:
    item = DownloadItem("smart", SMART_F32, S.READY)
    with pytest.raises(IllegalTransition, match="CANCEL is not allowed from READY"):
        item.moved(E.CANCEL)
    with pytest.raises(IllegalTransition):
        item.moved(E.REMOVE)  # removing drops the item instead
    with pytest.raises(IllegalTransition):
        item.updated(state=S.QUEUED)
    assert item.updated(bytes_done=5).bytes_done == 5


# --- the transition table ----------------------------------------------------------------------

LEGAL = {
    (None, E.REQUEST): S.QUEUED,
    (S.QUEUED, E.START): S.DOWNLOADING,
    (S.QUEUED, E.FAIL): S.FAILED,
    (S.QUEUED, E.CANCEL): S.CANCELED,
    (S.DOWNLOADING, E.COMPLETE): S.READY,
    (S.DOWNLOADING, E.NEEDED): S.COMPILING,
    (S.DOWNLOADING, E.FAIL): S.FAILED,
    (S.DOWNLOADING, E.CANCEL): S.CANCELED,
    (S.COMPILING, E.LOADED): S.READY,
    (S.COMPILING, E.STOP): S.READY,
    (S.COMPILING, E.FAIL): S.FAILED,
    (S.READY, E.NEEDED): S.COMPILING,
    (S.READY, E.REMOVE): None,
    (S.FAILED, E.REQUEST): S.QUEUED,
    (S.FAILED, E.REMOVE): None,
    (S.CANCELED, E.REQUEST): S.QUEUED,
    (S.CANCELED, E.REMOVE): None,
}
"""Written out by hand from DESIGN.md, so the table in the code is checked against it."""


@pytest.mark.parametrize("state", [None, *S], ids=lambda s: s.name if s else "absent")
@pytest.mark.parametrize("event", list(E), ids=lambda e: e.name)
def test_every_pair_of_state_and_event(state: DownloadState | None,
                                       event: DownloadEvent) -> None:
    if (state, event) in LEGAL:
        assert transition(state, event) is LEGAL[(state, event)]
    else:
        with pytest.raises(IllegalTransition):
            transition(state, event)


def test_the_table_is_exactly_the_designed_one() -> None:
    assert TRANSITIONS == LEGAL


def test_every_state_can_be_reached_and_left() -> None:
    targets = {t for t in TRANSITIONS.values()}
    sources = {s for s, _ in TRANSITIONS}
    assert targets == sources == {None, *S}


def test_compiling_is_reached_only_when_the_files_are_complete() -> None:
    into = {source for (source, _), target in TRANSITIONS.items() if target is S.COMPILING}
    assert into == {S.DOWNLOADING, S.READY}  # never from Queued: a download comes first


def test_new_item_is_a_first_request() -> None:
    item = new_item("quick", QUICK_F16, 99, bytes_total=5)
    assert (item.state, item.requested_at, item.bytes_total) == (S.QUEUED, 99, 5)


# --- format_bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize("n, approximate, words", [
    (None, False, "size unknown"),
    (2048, False, "2 KB"),
    (300 * 1024, False, "300 KB"),
    (MB, False, "1 MB"),
    (712 * MB, False, "712 MB"),
    (712 * MB, True, "≈ 712 MB"),
    (999 * MB, False, "999 MB"),
    (1000 * MB, False, "1.0 GB"),
    (1740 * MB, True, "≈ 1.7 GB"),
    (int(4.5 * GB), False, "4.5 GB"),
])
def test_format_bytes(n: int | None, approximate: bool, words: str) -> None:
    assert format_bytes(n, approximate) == words


def test_format_bytes_never_says_less_than_one_kilobyte_for_a_few_bytes() -> None:
    assert format_bytes(10) == "1 KB"


def test_format_bytes_of_nothing_is_zero() -> None:
    assert format_bytes(0).startswith("0 ")


# --- progress_words --------------------------------------------------------------------------


def downloading(**changes: Any) -> DownloadItem:
    base: dict[str, Any] = {"bytes_total": 1740 * MB, "bytes_done": 870 * MB,
                            "eta_seconds": 40.0}
    base.update(changes)
    return DownloadItem("smart", SMART_F32, S.DOWNLOADING, **base)


def test_progress_words_while_downloading() -> None:
    assert progress_words(downloading(), 3) == "50% · 870 MB of 1.7 GB · about 40 s left"


def test_progress_words_while_estimating() -> None:
    words = progress_words(downloading(eta_seconds=None, bytes_done=17 * MB), 3)
    assert words == "1% · 17 MB of 1.7 GB · estimating…"


@pytest.mark.parametrize("retry, max_retries, tail", [
    (1, 3, " · Retrying (1/3)…"),
    (3, 3, " · Retrying (3/3)…"),
    (2, 5, " · Retrying (2/5)…"),
])
def test_progress_words_show_the_retry_count(retry: int, max_retries: int, tail: str) -> None:
    words = progress_words(downloading(retry=retry, eta_seconds=None), max_retries)
    assert words == "50% · 870 MB of 1.7 GB · estimating…" + tail


def test_progress_words_for_the_other_states() -> None:
    compiling = DownloadItem("smart", SMART_F32, S.COMPILING, compile_fraction=0.426)
    assert progress_words(compiling, 3) == "Starting on your GPU… 43%"
    assert progress_words(DownloadItem("smart", SMART_F32, S.QUEUED), 3) == \
        "Waiting for the download before it"
    queued = DownloadItem("smart", SMART_F32, S.QUEUED, bytes_done=300 * MB,
                          bytes_total=1740 * MB)
    assert progress_words(queued, 3) == \
        "Waiting for the download before it · 300 MB of 1.7 GB kept"
    failed = DownloadItem("smart", SMART_F32, S.FAILED, error=PROBLEM)
    assert progress_words(failed, 3) == "Can't reach the model host. Check your connection."
    assert progress_words(DownloadItem("smart", SMART_F32, S.CANCELED), 3) == \
        "Canceled. Nothing was kept."
    kept = DownloadItem("genius", GENIUS_F32, S.CANCELED, bytes_done=int(1.2 * GB),
                        bytes_total=int(4.4 * GB))
    assert progress_words(kept, 3) == \
        "Canceled. 1.2 GB of 4.4 GB kept; Resume continues from there."
    assert progress_words(DownloadItem("smart", SMART_F32, S.READY), 3) == ""
    assert progress_words(DownloadItem("smart", SMART_F32, S.FAILED), 3) == ""


def test_progress_words_never_show_a_retry_outside_downloading() -> None:
    for state in (S.QUEUED, S.COMPILING, S.READY, S.CANCELED):
        item = DownloadItem("smart", SMART_F32, state, retry=2)
        assert "Retrying" not in progress_words(item, 3)


# --- model_fit ---------------------------------------------------------------------------------


def gpu(*, usable: bool = True, reason: str = "ok", f16: bool = True,
        low_resource: bool = False, max_binding_mb: float = 0.0) -> GpuReport:
    return GpuReport(usable=usable, reason=reason, f16=f16, low_resource=low_resource,
                     max_binding_mb=max_binding_mb)


def test_fit_without_a_gpu_report_yet_is_usable() -> None:
    assert all(model_fit(s, None) == ModelFit(True) for s in CATALOG)


def test_fit_without_webgpu() -> None:
    for s in CATALOG:
        fit = model_fit(s, gpu(usable=False, reason="no-webgpu", f16=False))
        assert fit == ModelFit(False, "WebGPU isn't available in this browser.")


def test_low_resource_device_runs_quick_and_smart_but_not_genius() -> None:
    device = gpu(low_resource=True, max_binding_mb=128)
    assert model_fit(spec("quick"), device).usable
    assert model_fit(spec("smart"), device).usable
    fit = model_fit(spec("genius"), device)
    assert fit == ModelFit(False, "Genius needs a more powerful GPU than this device has.")


@pytest.mark.parametrize("adapter_mb", [200.0, 512.0, 1023.0])
def test_webllm_gets_128_mb_below_a_1_gib_binding_so_genius_is_out(adapter_mb: float) -> None:
    # WebLLM asks its device for a 1 GiB binding and falls back to 128 MiB (lib:4792-4800):
    # an adapter offering 512 MiB gives the model only 128.
    device = gpu(max_binding_mb=adapter_mb)
    assert device_binding_mb(adapter_mb) == 128.0
    assert model_fit(spec("smart"), device).usable
    fit = model_fit(spec("genius"), device)
    assert not fit.usable
    assert fit.reason == "Genius needs GPU buffers of 256 MB; on this GPU WebLLM gets 128 MB."


@pytest.mark.parametrize("binding", [0.0, 1024.0, 2048.0])
def test_capable_gpu_runs_everything(binding: float) -> None:
    device = gpu(max_binding_mb=binding)
    assert all(model_fit(s, device) == ModelFit(True) for s in CATALOG)


# --- records -------------------------------------------------------------------------------


@pytest.mark.parametrize("item", [
    DownloadItem("smart", SMART_F32, S.READY, requested_at=1_700_000_000_123,
                 bytes_total=1740 * MB),
    DownloadItem("quick", QUICK_F16, S.QUEUED, requested_at=5),
    DownloadItem("genius", GENIUS_F32, S.CANCELED, requested_at=9, bytes_total=5 * GB),
    DownloadItem("smart", SMART_F16, S.FAILED, requested_at=3, error=PROBLEM),
])
def test_record_round_trip(item: DownloadItem) -> None:
    record = item_to_record(item)
    assert record["version"] == RECORD_VERSION
    assert record["key"] == item.key
    assert item_from_record(record) == item


def test_record_holds_only_what_a_reload_needs() -> None:
    item = DownloadItem("smart", SMART_F32, S.FAILED, requested_at=3, bytes_total=10,
                        bytes_done=4, compile_fraction=0.5, eta_seconds=9.0, retry=2,
                        error=PROBLEM, failed_to_start=True)
    assert item_to_record(item) == {
        "key": "smart", "modelId": SMART_F32, "state": "failed", "requestedAt": 3,
        "version": RECORD_VERSION, "bytesTotal": 10, "bytesDone": 4, "failedToStart": True,
        "error": {"title": PROBLEM.title, "detail": PROBLEM.detail, "action": PROBLEM.action}}
    unknown_size = item_to_record(DownloadItem("smart", SMART_F32, S.QUEUED))
    assert "bytesTotal" not in unknown_size
    assert "error" not in unknown_size


@pytest.mark.parametrize("state, back", [(S.DOWNLOADING, S.QUEUED), (S.COMPILING, S.READY)])
def test_interrupted_work_comes_back_queued_or_ready(state: DownloadState,
                                                    back: DownloadState) -> None:
    # A download resumes (with the bytes it had, shown at once); a start waits until the
    # model is needed again (its files are complete).
    item = DownloadItem("smart", SMART_F32, state, requested_at=42, bytes_total=1000,
                        bytes_done=600, compile_fraction=0.3, eta_seconds=12.0, retry=1)
    restored = item_from_record(item_to_record(item))
    assert restored == DownloadItem("smart", SMART_F32, back, requested_at=42,
                                    bytes_total=1000, bytes_done=600)


def test_a_failure_to_start_survives_a_reload() -> None:
    item = DownloadItem("smart", SMART_F32, S.FAILED, error=PROBLEM, failed_to_start=True)
    assert item_from_record(item_to_record(item)) == item
    odd = {**item_to_record(item), "failedToStart": "yes"}
    restored = item_from_record(odd)
    assert restored is not None and not restored.failed_to_start


def good_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"key": "smart", "modelId": SMART_F32, "state": "ready",
                              "requestedAt": 10, "version": RECORD_VERSION}
    record.update(changes)
    return record


def test_good_record_decodes() -> None:
    assert item_from_record(good_record()) == DownloadItem("smart", SMART_F32, S.READY,
                                                           requested_at=10)


@pytest.mark.parametrize("changes", [
    {"version": RECORD_VERSION + 1},
    {"version": 0},
    {"version": None},
    {"version": "1"},
    {"key": "turbo"},
    {"key": None},
    {"key": 3},
    {"modelId": "Llama-3.2-1B-Instruct-q4f32_1-MLC"},  # Quick's model under Smart's key
    {"modelId": "some-other-model"},
    {"modelId": None},
    {"state": "paused"},
    {"state": None},
    {"state": ["ready"]},
    {"state": {"value": "ready"}},
    {"state": "Ready"},
])
def test_unusable_records_are_ignored(changes: dict[str, Any]) -> None:
    assert item_from_record(good_record(**changes)) is None


def test_records_missing_fields_are_ignored_or_defaulted() -> None:
    for missing in ("key", "modelId", "state", "version"):
        record = good_record()
        del record[missing]
        assert item_from_record(record) is None, missing
    record = good_record()
    del record["requestedAt"]
    assert item_from_record(record) == DownloadItem("smart", SMART_F32, S.READY)
    assert item_from_record({}) is None


def test_odd_optional_fields_are_tolerated() -> None:
    item = item_from_record(good_record(requestedAt="yesterday", bytesTotal="big",
                                        error="oops", extra={"x": 1}))
    assert item == DownloadItem("smart", SMART_F32, S.READY)
    failed = item_from_record(good_record(state="failed", error={"title": 5}))
    assert failed is not None and failed.error == UserMessage("5", "", "Retry.")
    assert item_from_record(good_record(state="failed", error=None)) == \
        DownloadItem("smart", SMART_F32, S.FAILED, requested_at=10)
    # An error kept with a state other than Failed is dropped.
    ready = item_from_record(good_record(error={"title": "t", "detail": "d", "action": "a"}))
    assert ready is not None and ready.error is None
    assert item_from_record(good_record(requestedAt=12.7, bytesTotal=99.9)) == \
        DownloadItem("smart", SMART_F32, S.READY, requested_at=12, bytes_total=99)


@pytest.mark.parametrize("field, value", [
    ("requestedAt", float("inf")),
    ("requestedAt", float("nan")),
    ("bytesTotal", float("inf")),
    ("bytesTotal", float("-inf")),
])
def test_non_finite_numbers_never_raise(field: str, value: float) -> None:
    item = item_from_record(good_record(**{field: value}))
    assert item is None or item.key == "smart"


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]


def test_the_queue_is_listed_in_line_with_positions() -> None:
    S = DownloadState
    downloads = {
        "quick": DownloadItem("quick", "q", S.QUEUED, requested_at=30),
        "genius": DownloadItem("genius", "g", S.DOWNLOADING, requested_at=20),
        "smart": DownloadItem("smart", "s", S.QUEUED, requested_at=10),
    }
    assert queue_positions(downloads) == {"genius": 1, "smart": 2, "quick": 3}
    assert queue_order(downloads) == ["genius", "smart", "quick"]
    words = progress_words(downloads["quick"], 3, position=3)
    assert words == "3rd in line · waiting for the download before it"
    # A model starting comes first; models not in line keep the catalog's order.
    later = {"genius": DownloadItem("genius", "g", S.READY),
             "smart": DownloadItem("smart", "s", S.COMPILING)}
    assert queue_positions(later) == {}
    assert queue_order(later) == ["smart", "quick", "genius"]


def test_a_waiting_automatic_retry_counts_down() -> None:
    item = DownloadItem("smart", "s", DownloadState.DOWNLOADING, bytes_total=100 * MB,
                        bytes_done=40 * MB, retry=1, retry_at_ms=10_000)
    assert progress_words(item, 3, now_ms=6_200).endswith(" · Retrying in 4 s (1/3)")
    assert progress_words(item, 3, now_ms=9_500).endswith(" · Retrying in 1 s (1/3)")
    assert progress_words(item, 3, now_ms=10_000).endswith(" · Retrying (1/3)…")
    assert progress_words(item, 3).endswith(" · Retrying (1/3)…")
