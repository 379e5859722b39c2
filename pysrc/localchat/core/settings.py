"""Which engine the page runs, from its URL query (`?engine=sim&sim_mbps=40`).

The real WebLLM engine is the default; the simulated engine runs only when asked for
with `engine=sim`. Knob values that don't parse are reported, and their defaults used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

__all__ = ["EngineChoice", "EngineKind", "SimKnobs", "parse_engine_query", "query_params",
           "sim_host_header"]

_HEX = frozenset("0123456789abcdefABCDEF")


def _unquote(text: str) -> str:
    """Form-decode one query component: `+` is a space, `%XX` a byte (UTF-8 text)."""
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    first, *rest = text.split("%")
    raw = bytearray(first.encode())
    for part in rest:
        if len(part) >= 2 and part[0] in _HEX and part[1] in _HEX:
            raw.append(int(part[:2], 16))
            raw += part[2:].encode()
        else:
            raw += b"%" + part.encode()
    return raw.decode("utf-8", "replace")


def query_params(query: str) -> dict[str, str]:
    """A URL query string as a dict (the last value of a repeated name wins; a name
    without `=` has the value ""). Same decoding as `urllib.parse.parse_qs`, whose import
    (with `ipaddress`) costs ~30 ms of the page's boot."""
    params: dict[str, str] = {}
    for field in query.lstrip("?").split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        params[_unquote(name)] = _unquote(value)
    return params


class EngineKind(Enum):
    """Which engine answers."""

    WEBLLM = "webllm"
    """WebLLM on the real GPU (the default)."""
    SIM = "sim"
    """The simulated engine: same worker protocol, GPU work simulated."""
    INVALID = "invalid"
    """The URL named an engine that does not exist; nothing is started."""


GPU_CHOICES = ("f16", "nof16", "low", "fallback", "none")


@dataclass(frozen=True)
class SimKnobs:
    """The simulated engine's knobs (documented in README.md)."""

    mbps: float = 50.0
    scale: float = 1.0
    fail: tuple[tuple[str, float], ...] = ()
    fail_always: tuple[tuple[str, float], ...] = ()
    compile_s: float = 2.0
    tps: float = 30.0
    gpu: str = "f16"
    quota: tuple[tuple[str, float], ...] = ()
    """sim_quota: storage runs out at that percent of the model's download."""


@dataclass(frozen=True)
class EngineChoice:
    kind: EngineKind
    sim: SimKnobs | None = None
    problems: tuple[str, ...] = ()
    """Plain-words notes about parameters that were ignored."""
    requested: str = ""

    @property
    def simulated(self) -> bool:
        return self.kind is EngineKind.SIM


def _number(raw: str, name: str, default: float, minimum: float, problems: list[str],
            maximum: float | None = None, allow_equal_min: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a number; using {default:g}.")
        return default
    too_low = value < minimum if allow_equal_min else value <= minimum
    if too_low or (maximum is not None and value > maximum) or value != value:
        problems.append(f"{name}={raw!r} is out of range; using {default:g}.")
        return default
    return value


def _failures(raw: str, name: str, problems: list[str]) -> tuple[tuple[str, float], ...]:
    out = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        model, _, percent = part.partition("@")
        try:
            value = float(percent)
        except ValueError:
            problems.append(f"{name}: {part!r} should look like smart@40; ignored.")
            continue
        if model not in ("quick", "smart", "genius") or not 0 <= value <= 100:
            problems.append(f"{name}: {part!r} should look like smart@40; ignored.")
            continue
        out.append((model, value))
    return tuple(out)


def parse_engine_query(query: str) -> EngineChoice:
    """Read the engine and the simulated engine's knobs from a URL query string."""
    params = query_params(query)
    engine = params.get("engine", "").strip().lower()
    if engine in ("", "webllm"):
        return EngineChoice(EngineKind.WEBLLM)
    if engine != "sim":
        return EngineChoice(EngineKind.INVALID, requested=params.get("engine", ""))
    problems: list[str] = []
    defaults = SimKnobs()
    knobs = SimKnobs(
        mbps=_number(params["sim_mbps"], "sim_mbps", defaults.mbps, 0, problems)
        if "sim_mbps" in params else defaults.mbps,
        scale=_number(params["sim_scale"], "sim_scale", defaults.scale, 0, problems, 1.0)
        if "sim_scale" in params else defaults.scale,
        fail=_failures(params.get("sim_fail", ""), "sim_fail", problems),
        fail_always=_failures(params.get("sim_fail_always", ""), "sim_fail_always", problems),
        compile_s=_number(params["sim_compile_s"], "sim_compile_s", defaults.compile_s, 0,
                          problems, allow_equal_min=True)
        if "sim_compile_s" in params else defaults.compile_s,
        tps=_number(params["sim_tps"], "sim_tps", defaults.tps, 0, problems,
                    allow_equal_min=True)
        if "sim_tps" in params else defaults.tps,
        gpu=params.get("sim_gpu", defaults.gpu),
        quota=_failures(params.get("sim_quota", ""), "sim_quota", problems),
    )
    if knobs.gpu not in GPU_CHOICES:
        problems.append(f"sim_gpu={knobs.gpu!r} is not one of {', '.join(GPU_CHOICES)}; "
                        "using f16.")
        knobs = replace(knobs, gpu="f16")
    return EngineChoice(EngineKind.SIM, knobs, tuple(problems))


def sim_host_header(knobs: SimKnobs, session: str) -> str:
    """The X-LocalChat-Sim header that tells the dev server's simulated model host how to
    behave (speed and failures: tools/modelhost.py). `session` makes a `sim_fail` fail
    once per browser profile rather than once per server."""
    def failures(pairs: tuple[tuple[str, float], ...]) -> str:
        return ",".join(f"{key}@{percent:g}" for key, percent in pairs)

    parts = [f"mbps={knobs.mbps:g}"]
    if knobs.fail:
        parts.append(f"fail={failures(knobs.fail)}")
    if knobs.fail_always:
        parts.append(f"fail_always={failures(knobs.fail_always)}")
    parts.append(f"session={session}")
    return "; ".join(parts)
