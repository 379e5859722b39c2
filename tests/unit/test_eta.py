"""EtaEstimator and format_eta on download timelines shaped like WebLLM 0.2.86's.

WebLLM splits the shard list into four contiguous quarters and downloads them in four
parallel loops, one shard at a time per loop, reporting "Fetching param cache[i/n]: XMB
fetched. Y% completed, Z secs elapsed. …" after each shard (shards already in the cache
are skipped in a millisecond or so, and reported all the same). `download()` simulates
that: the bandwidth is shared equally by the loops still busy. Each report's text is
built exactly as WebLLM builds it and read back with parse_progress, and the estimator
is fed the way ModelService feeds it (bytes = parsed fraction × exact total, time = the
moment the report arrives).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Sequence

import pytest

from localchat.core.eta import EtaEstimator, format_eta
from localchat.core.progress import LoadPhase, parse_progress

MB = 1024 * 1024
TAIL = (" It can take a while when we first visit this page to populate the cache."
        " Later refreshes will become faster.")

Report = tuple[float, str, float]
"""(arrival in seconds since the load started, text, WebLLM's progress value)."""


def fetch_text(k: int, n: int, fetched: int, total: int, seconds: float) -> str:
    """WebLLM 0.2.86's text for the k-th finished shard of n."""
    return (f"Fetching param cache[{k}/{n}]: {math.ceil(fetched / MB)}MB fetched. "
            f"{math.floor(fetched * 100 / total)}% completed, "
            f"{math.ceil(seconds)} secs elapsed.{TAIL}")


def download(sizes: Sequence[int], rate: Callable[[float], float], *,
             cached: Collection[int] = (), cached_s: float = 0.001,
             step: float = 0.01) -> tuple[list[Report], int]:
    """WebLLM's Fetching reports for shards of `sizes` bytes at `rate(t)` bytes/s."""
    n = len(sizes)
    quarter = n // 4
    lanes = [list(range(0, quarter)), list(range(quarter, 2 * quarter)),
             list(range(2 * quarter, 3 * quarter)), list(range(3 * quarter, n))]
    current: list[int | None] = [None] * 4
    left = [0.0] * 4
    finished: list[tuple[float, int]] = []
    cached_seen = 0

    def next_shard(lane: int, t: float) -> None:
        nonlocal cached_seen
        while lanes[lane]:
            i = lanes[lane].pop(0)
            if i in cached:
                cached_seen += 1
                finished.append((t + cached_s * cached_seen, sizes[i]))
                continue
            current[lane], left[lane] = i, float(sizes[i])
            return
        current[lane] = None

    for lane in range(4):
        next_shard(lane, 0.0)
    t = 0.0
    while any(c is not None for c in current):
        busy = [lane for lane in range(4) if current[lane] is not None]
        per_lane = rate(t) / len(busy)
        t += step
        for lane in busy:
            left[lane] -= per_lane * step
            if left[lane] <= 0:
                shard = current[lane]
                assert shard is not None
                overshoot = -left[lane]
                finished.append((t - overshoot / per_lane, sizes[shard]))
                next_shard(lane, t - overshoot / per_lane)
                if current[lane] is not None:
                    left[lane] -= overshoot  # the rest of the step went to the next shard
    finished.sort()
    total = sum(sizes)
    reports: list[Report] = []
    fetched = 0
    for k, (at, nbytes) in enumerate(finished, 1):
        fetched += nbytes
        reports.append((at, fetch_text(k, n, fetched, total, at), fetched / total))
    return reports, total


def feed(reports: Sequence[Report], total: int,
         eta: EtaEstimator | None = None) -> list[tuple[float, float, float | None]]:
    """(time, fraction done, estimate) after each report, as ModelService computes it."""
    eta = eta or EtaEstimator()
    out: list[tuple[float, float, float | None]] = []
    for at, text, progress in reports:
        report = parse_progress(text, progress)
        assert report.phase is LoadPhase.DOWNLOADING
        eta.add(at, report.fraction * total)
        out.append((at, report.fraction, eta.seconds_left(total, at)))
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


def test_simulated_reports_are_webllm_texts_that_parse() -> None:
    reports, total = download([32 * MB] * 8, steady(10))
    assert len(reports) == 8
    first = parse_progress(reports[0][1], reports[0][2])
    assert reports[0][1].startswith("Fetching param cache[1/8]: 32MB fetched. 12% completed, ")
    assert reports[0][1].endswith("secs elapsed." + TAIL)
    assert first.phase is LoadPhase.DOWNLOADING
    assert (first.shard, first.shards, first.megabytes) == (1, 8, 32)
    last = parse_progress(reports[-1][1], reports[-1][2])
    assert (last.shard, last.megabytes, last.fraction) == (8, 256, 1.0)
    # Four lanes sharing 10 MB/s: 32 MB shards finish in bursts of four every 12.8 s.
    assert [round(at, 1) for at, _, _ in reports] == [12.8] * 4 + [25.6] * 4
    assert total == 256 * MB


# --- steady speed ----------------------------------------------------------------------------


def test_steady_speed_in_lockstep_bursts_is_estimated_within_20_percent() -> None:
    reports, total = download([32 * MB] * 48, steady(10))
    estimates = feed(reports, total)
    end = reports[-1][0]
    assert end == pytest.approx(48 * 32 / 10, abs=0.05)
    checked = [e for e in shown(estimates) if e[1] >= 0.1 and e[0] < end]
    assert len(checked) >= 8
    assert misses(estimates, end) == []


@pytest.mark.xfail(strict=True, reason=(
    "BUG (open): EtaEstimator measures the rate over the last 5 reports or 3 s, but "
    "WebLLM's 4 lanes report "
    "in bursts about every 13 s at 10 MB/s; with real (unequal) shard sizes the window "
    "holds either part of one burst (far too fast) or one shard across a gap (far too "
    "slow): at 12 s it shows 22 s left for 127 s, at 21 s 'about 7 min' for 2 min, at "
    "71 s 23 s for 68 s — never settling within 20%"))
def test_steady_speed_with_real_shard_sizes_is_estimated_within_20_percent() -> None:
    reports, total = download(varied_shards(48), steady(10))
    estimates = feed(reports, total)
    assert misses(estimates, reports[-1][0]) == []


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
def test_resumed_download_is_never_wildly_optimistic(mb_per_s: float) -> None:
    # The first 5 shards of each lane's quarter were cached by an earlier attempt: they
    # are reported within milliseconds, so "MB fetched / secs elapsed" would be far too
    # fast. On a fast connection the first downloaded shards follow within the rate window.
    cached = {i for i in range(60) if i % 15 < 5}
    reports, total = download([32 * MB] * 60, steady(mb_per_s), cached=cached)
    assert all(at < 0.1 for at, _, _ in reports[:20])
    assert reports[20][0] > 12.8 * 10 / mb_per_s - 0.1
    naive = parse_progress(reports[20][1], reports[20][2])
    assert naive.megabytes is not None and naive.seconds is not None
    assert naive.megabytes / naive.seconds > 2 * mb_per_s  # what the text alone suggests
    estimates = feed(reports, total)
    end = reports[-1][0]
    # While only cached shards have been reported there is nothing to measure.
    assert [left for _, _, left in estimates[:20]] == [None] * 20
    assert any(left is not None for _, _, left in estimates)
    for at, _fraction, left in shown(estimates):
        if left is not None and end - at > 0:
            assert left >= 0.5 * (end - at), (at, left, end - at)
    assert misses(estimates, end, after_fraction=0.5, slack_s=30 / mb_per_s) == []


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


@pytest.mark.parametrize("before, after", [(10, 2), (2, 10)])
def test_a_speed_change_settles_within_5_seconds(before: float, after: float) -> None:
    change = 20.0
    # Small shards, so reports come several times a second and the change can be seen.
    reports, total = download([1 * MB] * 300,
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


def test_a_speed_change_in_lockstep_bursts_is_right_at_the_next_burst() -> None:
    reports, total = download([32 * MB] * 48, lambda t: (10 if t < 40 else 2) * MB)
    estimates = feed(reports, total)
    end = reports[-1][0]
    assert misses(estimates, end, after_time=45.0) == []


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


def test_first_webllm_burst_gives_no_estimate() -> None:
    reports, total = download([32 * MB] * 48, steady(10))
    estimates = feed(reports[:4], total)  # the first four shards, all at 12.8 s
    assert [left for _, _, left in estimates] == [None] * 4


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
