"""parse_engine_query: which engine the URL asks for, and the simulated engine's knobs."""

from __future__ import annotations

import random
from urllib.parse import parse_qs

import pytest

from localchat.core.settings import EngineKind, SimKnobs, parse_engine_query, query_params


@pytest.mark.parametrize("query", ["", "?", "?lang=en", "engine=webllm", "?engine=WebLLM",
                                   "?engine=", "?engine=webllm&sim_mbps=fast"])
def test_the_real_engine_is_the_default(query: str) -> None:
    choice = parse_engine_query(query)
    assert choice.kind is EngineKind.WEBLLM
    assert choice.sim is None
    assert choice.problems == ()
    assert not choice.simulated


def test_engine_sim_without_knobs_uses_the_defaults() -> None:
    choice = parse_engine_query("?engine=sim")
    assert choice.kind is EngineKind.SIM
    assert choice.simulated
    assert choice.sim == SimKnobs()
    assert choice.sim.mbps == 50.0
    assert choice.sim.gpu == "f16"
    assert choice.problems == ()


def test_engine_name_is_case_and_space_insensitive() -> None:
    assert parse_engine_query("?engine=%20SIM%20").kind is EngineKind.SIM


def test_every_knob_is_read() -> None:
    choice = parse_engine_query(
        "?engine=sim&sim_mbps=40&sim_scale=0.5&sim_fail=smart@40,quick@10"
        "&sim_fail_always=genius@0&sim_compile_s=0&sim_tps=12.5&sim_gpu=nof16")
    assert choice.problems == ()
    assert choice.sim == SimKnobs(mbps=40.0, scale=0.5, fail=(("smart", 40.0), ("quick", 10.0)),
                                  fail_always=(("genius", 0.0),), compile_s=0.0, tps=12.5,
                                  gpu="nof16")


def test_the_last_repeated_parameter_wins() -> None:
    assert parse_engine_query("?engine=sim&sim_mbps=10&sim_mbps=20").sim.mbps == 20.0


@pytest.mark.parametrize("param, field, default", [
    ("sim_mbps=fast", "mbps", 50.0),
    ("sim_mbps=0", "mbps", 50.0),
    ("sim_mbps=-5", "mbps", 50.0),
    ("sim_mbps=nan", "mbps", 50.0),
    ("sim_scale=0", "scale", 1.0),
    ("sim_scale=1.5", "scale", 1.0),
    ("sim_compile_s=-1", "compile_s", 2.0),
    ("sim_tps=", "tps", 30.0),
    ("sim_tps=-0.1", "tps", 30.0),
])
def test_bad_numbers_are_reported_and_defaulted(param: str, field: str, default: float) -> None:
    choice = parse_engine_query(f"?engine=sim&{param}")
    assert choice.kind is EngineKind.SIM
    assert getattr(choice.sim, field) == default
    assert len(choice.problems) == 1
    name, _, raw = param.partition("=")
    assert choice.problems[0].startswith(f"{name}={raw!r} is ")
    assert choice.problems[0].endswith(f"using {default:g}.")


def test_a_non_number_says_so() -> None:
    (problem,) = parse_engine_query("?engine=sim&sim_mbps=fast").problems
    assert problem == "sim_mbps='fast' is not a number; using 50."


def test_an_out_of_range_number_says_so() -> None:
    (problem,) = parse_engine_query("?engine=sim&sim_scale=2").problems
    assert problem == "sim_scale='2' is out of range; using 1."


def test_zero_is_allowed_for_compile_time_and_speed_limit_but_not_bandwidth() -> None:
    choice = parse_engine_query("?engine=sim&sim_compile_s=0&sim_tps=0&sim_mbps=0")
    assert choice.sim.compile_s == 0.0
    assert choice.sim.tps == 0.0
    assert choice.sim.mbps == 50.0
    assert [p.split("=")[0] for p in choice.problems] == ["sim_mbps"]


def test_bad_failure_specs_are_ignored_one_by_one() -> None:
    choice = parse_engine_query(
        "?engine=sim&sim_fail=smart@40,bogus@10,smart,quick@140,genius@x,quick@5")
    assert choice.sim.fail == (("smart", 40.0), ("quick", 5.0))
    assert len(choice.problems) == 4
    assert all(p.startswith("sim_fail: ") and p.endswith("should look like smart@40; ignored.")
               for p in choice.problems)
    assert "'bogus@10'" in choice.problems[0]


def test_unknown_gpu_falls_back_to_f16_and_keeps_other_knobs() -> None:
    choice = parse_engine_query("?engine=sim&sim_gpu=rtx&sim_mbps=12")
    assert choice.sim.gpu == "f16"
    assert choice.sim.mbps == 12.0
    assert choice.problems == (
        "sim_gpu='rtx' is not one of f16, nof16, low, fallback, none; using f16.",)


@pytest.mark.parametrize("gpu", ["f16", "nof16", "low", "none"])
def test_known_gpus_are_kept(gpu: str) -> None:
    assert parse_engine_query(f"?engine=sim&sim_gpu={gpu}").sim.gpu == gpu


@pytest.mark.parametrize("query, requested", [("?engine=llamacpp", "llamacpp"),
                                              ("?engine=Simulated&sim_mbps=3", "Simulated")])
def test_unknown_engine_is_invalid(query: str, requested: str) -> None:
    choice = parse_engine_query(query)
    assert choice.kind is EngineKind.INVALID
    assert choice.requested == requested
    assert choice.sim is None
    assert not choice.simulated


QUERY_CASES = [
    "", "?", "?a=1", "a=1&b=2", "?a=1&a=2", "a", "a=", "=x", "&&a=1&", "a=b=c",
    "msg=hello+world", "q=%41%42c", "q=%e2%9c%93", "q=%E2%9C", "q=100%", "q=%zz%4",
    "q=%2B+%25", "sim_fail=smart%4050&x=%C3%A9t%C3%A9", "k%20ey=v%20al", "q=%-1", "q=% 1",
]


@pytest.mark.parametrize("query", QUERY_CASES)
def test_query_params_decodes_like_parse_qs(query: str) -> None:
    expected = {k: v[-1] for k, v in parse_qs(query.lstrip("?"), keep_blank_values=True).items()}
    assert query_params(query) == expected


def test_query_params_agrees_with_parse_qs_on_random_queries() -> None:
    rng = random.Random(7)
    alphabet = "ab=&%+2fFz9é "
    for _ in range(3000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        expected = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        assert query_params(query) == expected, query
