"""Download speed and time-left estimates from progress samples.

WebLLM reports bytes done only through its progress text, once per finished shard, and
shards that were already cached count instantly, so "bytes / elapsed" is wrong after a
resume. The estimator measures the rate over a sliding window of recent samples instead, after
skipping the initial burst of cached shards (reports faster than `burst_rate`), so a
speed change settles within one window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["EtaEstimator", "format_eta"]


@dataclass
class EtaEstimator:
    window: float = 3.0
    """Seconds of recent samples the rate is measured over (a speed change settles
    within about this long)."""
    min_elapsed: float = 1.0
    """Seconds of real transfer needed before an estimate is given."""
    min_reports: int = 5
    """Reports the rate is measured over at least: WebLLM downloads in 4 parallel lanes
    whose shards finish in bursts, so a short window would see one burst or a gap."""
    burst_rate: float = 2e9
    """Bytes/s above which the first reports are taken as cached shards counting at once."""

    def __post_init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()
        self._transferring = False

    def reset(self) -> None:
        self._samples.clear()
        self._transferring = False

    def add(self, seconds: float, bytes_done: float) -> None:
        """Record that `bytes_done` bytes were done at time `seconds` (monotonic)."""
        samples = self._samples
        if samples and bytes_done < samples[-1][1]:
            self.reset()  # a new attempt started over
        if not self._transferring and samples:
            t0, b0 = samples[-1]
            dt = seconds - t0
            if dt <= 1e-3 or (bytes_done - b0) / dt > self.burst_rate:
                samples.clear()  # still in the burst of cached shards: move the start
            else:
                self._transferring = True
        samples.append((seconds, bytes_done))
        while len(samples) > self.min_reports and samples[1][0] <= seconds - self.window:
            samples.popleft()

    @property
    def rate(self) -> float | None:
        """Bytes per second over the recent window, once enough has been observed."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 - t0 < self.min_elapsed:
            return None
        return (b1 - b0) / (t1 - t0)

    def seconds_left(self, bytes_total: float, now: float | None = None) -> float | None:
        """Time left. With `now` it also counts down between reports, and a report that is
        late lowers the rate: if one report's worth of bytes has not arrived in the time
        since the last report, the speed is at most that much per that time."""
        rate = self.rate
        if rate is None or rate <= 0:
            return None
        (_, b0), (t1, b1) = self._samples[0], self._samples[-1]
        elapsed = max(0.0, now - t1) if now is not None else 0.0
        step = (b1 - b0) / max(1, len(self._samples) - 1)  # bytes per report, on average
        if elapsed > 0 and step > 0 and step / elapsed < rate:
            rate = step / elapsed
        in_flight = min(step, rate * elapsed)
        return max(0.0, (bytes_total - b1 - in_flight) / rate)


def format_eta(seconds: float | None) -> str:
    """ "about 2 min left", "about 40 s left", "estimating…"."""
    if seconds is None:
        return "estimating…"
    if seconds < 5:
        return "a few seconds left"
    if seconds < 60:
        return f"about {int(round(seconds / 5) * 5)} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"about {hours} h {rest} min left" if rest else f"about {hours} h left"
