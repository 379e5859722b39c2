"""EtaEstimator and format_eta on download timelines shaped like LocalChat's downloader.

The downloader (core/downloader.py) fetches a model's files in four lanes that take the
next file from one queue, and reports the bytes of the whole model as they arrive, at
most every 0.2 s, and whenever a file ends; files already stored count at once, in the
first report. `download()` simulates that: the bandwidth is shared equally by the lanes
still busy. The estimator is fed the way ModelService feeds it (bytes done, the moment
the report arrives).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence

import pytest

from localchat.core.eta import EtaEstimator, format_eta

MB = 1024 * 1024
EVERY = 0.2

Report = tuple[float, int]
"""(seconds since the download started, bytes of the model done)."""


def download(sizes: Sequence[int], rate: Callable[[float], float], *,
             stored: Collection[int] = (), step: float = 0.01,
             every: float = EVERY) -> tuple[list[Report], int]:
    """The downloader's reports for files of `sizes` bytes at `rate(t)` bytes/s."""
    queue = [i for i in range(len(sizes)) if i not in stored]
    done = sum(sizes[i] for i in stored)
    lanes: list[list[float]] = []  # [bytes left, bytes received] per busy lane
    reports: list[Report] = [(0.0, done)]
    last = 0.0

    def fill() -> None:
        while len(lanes) < 4 and queue:
            lanes.append([float(sizes[queue.pop(0)]), 0.0])

    fill()
    t = 0.0
    while lanes:
        per_lane = rate(t) * step / len(lanes)
        t += step
        finished = False
        for lane in list(lanes):
            take = min(per_lane, lane[0])
            lane[0] -= take
            lane[1] += take
            if lane[0] <= 0:
                done += round(lane[1])
                lanes.remove(lane)
                finished = True
        fill()
        flight = sum(lane[1] for lane in lanes)
        if finished or t - last >= every:
            last = t
            reports.append((t, done + round(flight)))
    return reports, sum(sizes)


def feed(reports: Sequence[Report], total: int,
         eta: EtaEstimator | None = None) -> list[tuple[float, float, float | None]]:
    """(time, fraction done, estimate) after each report, as ModelService computes it."""
    eta = eta or EtaEstimator()
    out: list[tuple[float, float, float | None]] = []
    for at, done in reports:
        eta.add(at, done)
        out.append((at, done / total, eta.seconds_left(total, at)))
    return out


def shown(estimates: Sequence[tuple[float, float, float | None]]
          ) -> list[tuple[float, float, float | None]]:
    """The estimates a user can see: reports arriving together show only the last one."""
    return [e for k, e in enumerate(estimates)
            if k + 1 == len(estimates) or estimates[k + 1][0] - e[0] >= 0.05]


def steady(mb_per_s: float) -> Callable[[float], float]:
    return lambda _t: mb_per_s * MB


def varied_shards(count: int, seed: int = 7) -> list[int]:
    """Shard sizes like MLC's (records packed up to ~32 MB, so most are 26–33 MB)."""
    rnd = random.Random(seed)
    return [int(rnd.uniform(26, 33) * MB) for _ in range(count)]


def misses(estimates: Sequence[tuple[float, float, float | None]], end: float, *,
           after_fraction: float = 0.10, after_time: float = 0.0, slack_s: float = 3.0,
           tolerance: float = 0.2) -> list[tuple[float, float | None, float]]:
    """Shown estimates further than `tolerance` (and `slack_s`) from the true time left."""
    wrong = []
    for at, fraction, left in shown(estimates):
        true_left = end - at
        if fraction < after_fraction or at < after_time or true_left <= 0:
            continue
        if left is None or abs(left - true_left) > max(tolerance * true_left, slack_s):
            wrong.append((round(at, 2), None if left is None else round(left, 1),
                          round(true_left, 1)))
    return wrong


# --- the simulation itself -------------------------------------------------------------------


# --- steady speed ----------------------------------------------------------------------------


def test_steady_speed_with_equal_shards_is_estimated_within_20_percent() -> None:
    reports, total = download([32 * MB] * 48, steady(10))
    estimates = feed(reports, total)
    end = reports[-1][0]
    assert end == pytest.approx(48 * 32 / 10, abs=0.2)
    checked = [e for e in shown(estimates) if e[1] >= 0.1 and e[0] < end]
    assert len(checked) >= 8
    assert misses(estimates, end) == []


def test_steady_speed_with_real_shard_sizes_is_estimated_within_20_percent() -> None:
    # Once WebLLM's per-shard reports (bursts every ~13 s) were all there was; counting
    # bytes as they arrive makes the estimate right from the first seconds.
    sizes = [9 * MB, 5 * MB, *varied_shards(48)]  # tokenizer and library first
    reports, total = download(sizes, steady(10))
    estimates = feed(reports, total)
    assert misses(estimates, reports[-1][0]) == []
    assert misses(estimates, reports[-1][0], after_fraction=0.02, tolerance=0.1) == []


def test_estimate_counts_down_between_reports() -> None:
    eta = EtaEstimator()
    eta.add(0.0, 0)
    eta.add(2.0, 20 * MB)  # 10 MB/s, 80 MB to go: 8 s
    assert eta.seconds_left(100 * MB) == pytest.approx(8.0)
    assert eta.seconds_left(100 * MB, now=3.0) == pytest.approx(7.0)  # on time: counts down


def test_a_late_report_lowers_the_speed_instead_of_reaching_zero() -> None:
    eta = EtaEstimator()
    eta.add(0.0, 0)
    eta.add(2.0, 20 * MB)  # 10 MB/s, one report per 20 MB
    # 28 s without a report: at most 20 MB per 28 s; 60 MB left after the one in flight.
    assert eta.seconds_left(100 * MB, now=30.0) == pytest.approx(60 / (20 / 28))


# --- resumed download ------------------------------------------------------------------------


@pytest.mark.parametrize("mb_per_s", [10, 100])
def test_resumed_download_counts_stored_files_but_not_as_speed(mb_per_s: float) -> None:
    stored = {i for i in range(60) if i % 3 == 0}
    reports, total = download(varied_shards(60), steady(mb_per_s), stored=stored)
    assert reports[0][0] == 0 and reports[0][1] > 0.3 * total  # shown at once
    estimates = feed(reports, total)
    end = reports[-1][0]
    for at, _fraction, left in shown(estimates):
        if left is not None and end - at > 0:
            assert left >= 0.8 * (end - at) - 1, (at, left, end - at)
    assert misses(estimates, end, after_time=1.5, slack_s=30 / mb_per_s) == []


def test_cached_burst_then_steady_transfer_gives_the_transfer_rate() -> None:
    eta = EtaEstimator()
    for k in range(1, 31):  # 30 cached shards of 32 MB, one every millisecond
        eta.add(k * 0.001, k * 32 * MB)
        assert eta.rate is None
    done = 30 * 32 * MB
    for second in range(1, 11):  # then 8 MB/s
        eta.add(0.03 + second, done + second * 8 * MB)
    assert eta.rate == pytest.approx(8 * MB, rel=0.01)


def test_a_new_attempt_starting_over_resets_the_measurement() -> None:
    eta = EtaEstimator()
    for second in range(6):
        eta.add(float(second), second * 10 * MB)
    assert eta.rate == pytest.approx(10 * MB)
    eta.add(6.0, 5 * MB)  # fewer bytes than before: a retry from scratch
    assert eta.rate is None
    assert eta.seconds_left(100 * MB) is None


# --- speed change ----------------------------------------------------------------------------


@pytest.mark.parametrize("before, after", [(10, 2), (2, 10), (40, 8)])
def test_a_speed_change_settles_within_5_seconds(before: float, after: float) -> None:
    change = 20.0
    # Real shard sizes: bytes are counted as they arrive, so a change shows at once.
    reports, total = download(varied_shards(30 if before < 40 else 60),
                              lambda t: (before if t < change else after) * MB)
    estimates = feed(reports, total)
    end = reports[-1][0]
    assert end > change + 15
    assert misses(estimates, end, after_fraction=0.0, after_time=change + 5.0,
                  slack_s=1.0) == []
    # …and it does move: right after the change the old speed still shows.
    just_after = [left for at, _, left in estimates if change < at < change + 0.5]
    assert just_after and just_after[0] is not None
    assert abs(just_after[0] - (end - change)) > 0.2 * (end - change)


# --- not enough data yet ---------------------------------------------------------------------


def test_no_estimate_before_enough_data() -> None:
    eta = EtaEstimator()
    assert eta.rate is None
    assert format_eta(eta.seconds_left(100 * MB)) == "estimating…"
    eta.add(0.0, 0)
    assert eta.seconds_left(100 * MB) is None
    eta.add(0.5, 5 * MB)  # half a second is too little to measure
    assert eta.seconds_left(100 * MB) is None
    assert format_eta(eta.seconds_left(100 * MB)) == "estimating…"
    eta.add(1.5, 15 * MB)
    assert eta.seconds_left(100 * MB) == pytest.approx(8.5)


def test_the_first_second_gives_no_estimate() -> None:
    reports, total = download(varied_shards(48), steady(10))
    early = [e for e in feed(reports, total) if e[0] < 0.9]
    assert early and [left for _, _, left in early] == [None] * len(early)


def test_a_stopped_transfer_gives_no_estimate() -> None:
    eta = EtaEstimator()
    eta.add(0.0, 10 * MB)
    eta.add(5.0, 10 * MB)
    assert eta.rate == 0
    assert eta.seconds_left(100 * MB) is None


# --- format_eta --------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, words", [
    (None, "estimating…"),
    (0.0, "a few seconds left"),
    (4.9, "a few seconds left"),
    (5.0, "about 5 s left"),
    (40.0, "about 40 s left"),
    (42.0, "about 40 s left"),
    (43.0, "about 45 s left"),
    (90.0, "about 2 min left"),
    (120.0, "about 2 min left"),
    (125.0, "about 2 min left"),
    (59 * 60.0, "about 59 min left"),
    (3600.0, "about 1 h left"),
    (2 * 3600 + 15 * 60.0, "about 2 h 15 min left"),
    (3 * 3600 + 20.0, "about 3 h left"),
])
def test_format_eta(seconds: float | None, words: str) -> None:
    assert format_eta(seconds) == words
