"""parse_progress on the exact load-progress texts of WebLLM 0.2.86."""

from __future__ import annotations

import pytest

from localchat.core.progress import LoadPhase, parse_progress

START = "Start to fetch params"
FETCH = ("Fetching param cache[3/22]: 120MB fetched. 13% completed, 4 secs elapsed. "
         "It can take a while when we first visit this page to populate the cache. "
         "Later refreshes will become faster.")
LOAD = "Loading model from cache[5/22]: 300MB loaded. 40% completed, 2 secs elapsed."
SHADERS = "Loading GPU shader modules[10/96]: 10% completed, 3 secs elapsed."
FINISH = "Finish loading on WebGPU - some gpu"


def test_start_is_the_starting_phase() -> None:
    report = parse_progress(START, 0.0)
    assert report.phase is LoadPhase.STARTING
    assert report.fraction == 0.0
    assert (report.shard, report.shards, report.megabytes, report.seconds) == (
        None, None, None, None)
    assert report.text == START


def test_fetching_is_downloading_with_shards_megabytes_and_seconds() -> None:
    report = parse_progress(FETCH, 0.13)
    assert report.phase is LoadPhase.DOWNLOADING
    assert report.fraction == pytest.approx(0.13)
    assert report.shard == 3
    assert report.shards == 22
    assert report.megabytes == 120
    assert report.seconds == 4.0
    assert report.text == FETCH
    assert not report.phase.compiling


@pytest.mark.parametrize("given, expected", [(1.7, 1.0), (-0.2, 0.0), (0.0, 0.0)])
def test_download_fraction_is_webllms_value_clamped(given: float, expected: float) -> None:
    assert parse_progress(FETCH, given).fraction == expected


def test_loading_from_cache_counts_shards_and_megabytes() -> None:
    report = parse_progress(LOAD, 0.4)
    assert report.phase is LoadPhase.LOADING
    assert report.fraction == pytest.approx(5 / 22)
    assert (report.shard, report.shards) == (5, 22)
    assert report.megabytes == 300
    assert report.seconds == 2.0
    assert report.phase.compiling


def test_shader_modules_count_modules_and_have_no_megabytes() -> None:
    report = parse_progress(SHADERS, 0.1)
    assert report.phase is LoadPhase.SHADERS
    assert report.fraction == pytest.approx(10 / 96)
    assert (report.shard, report.shards) == (10, 96)
    assert report.megabytes is None
    assert report.seconds == 3.0
    assert report.phase.compiling


def test_shader_count_of_zero_modules_does_not_divide_by_zero() -> None:
    report = parse_progress("Loading GPU shader modules[0/0]: 0% completed, 0 secs elapsed.")
    assert report.phase is LoadPhase.SHADERS
    assert report.fraction == 0.0


def test_fractional_seconds_are_read() -> None:
    text = "Loading model from cache[1/4]: 10MB loaded. 2% completed, 2.5 secs elapsed."
    assert parse_progress(text).seconds == 2.5


def test_finish_is_ready() -> None:
    report = parse_progress(FINISH, 0.7)
    assert report.phase is LoadPhase.READY
    assert report.fraction == 1.0
    assert report.text == FINISH
    assert not report.phase.compiling


@pytest.mark.parametrize("text", [
    "",
    "Something new in WebLLM 0.3",
    "Fetching param cache[3/22]: lots fetched.",
    "fetching param cache[3/22]: 120MB fetched. 13% completed, 4 secs elapsed.",
    " Start to fetch params",
])
def test_unknown_texts_are_kept_with_webllms_fraction(text: str) -> None:
    report = parse_progress(text, 0.25)
    assert report.phase is LoadPhase.UNKNOWN
    assert report.fraction == 0.25
    assert report.text == text
    assert report.shard is None


def test_unknown_text_fraction_is_clamped() -> None:
    assert parse_progress("??", 3.0).fraction == 1.0
