"""The model catalog: keys, variants, lookups."""

from __future__ import annotations

import pytest

from localchat.core.catalog import (
    CATALOG,
    DEFAULT_MODEL_KEY,
    ModelSpec,
    model_for_key,
    spec_for_model_id,
)


def test_the_three_models_in_order() -> None:
    assert [(s.key, s.label) for s in CATALOG] == [("quick", "Quick"), ("smart", "Smart"),
                                                   ("genius", "Genius")]


def test_the_default_model_is_in_the_catalog() -> None:
    assert DEFAULT_MODEL_KEY == "smart"
    spec = model_for_key(DEFAULT_MODEL_KEY)
    assert spec is not None
    assert spec.label == "Smart"


@pytest.mark.parametrize("key", ["", "Smart", "gpt-4", "SMART", " quick"])
def test_unknown_keys_have_no_spec(key: str) -> None:
    assert model_for_key(key) is None


def test_model_ids_are_unique_and_name_their_quantisation() -> None:
    ids = [i for s in CATALOG for i in (s.f16_id, s.f32_id)]
    assert len(set(ids)) == 6
    for spec in CATALOG:
        assert "q4f16_1" in spec.f16_id
        assert "q4f32_1" in spec.f32_id
        assert spec.f16_id.endswith("-MLC")


def test_model_id_picks_the_variant_for_the_gpu() -> None:
    smart = model_for_key("smart")
    assert smart.model_id(f16=True) == "Llama-3.2-3B-Instruct-q4f16_1-MLC"
    assert smart.model_id(f16=False) == "Llama-3.2-3B-Instruct-q4f32_1-MLC"


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.key)
def test_both_variants_map_back_to_their_spec(spec: ModelSpec) -> None:
    assert spec_for_model_id(spec.f16_id) is spec
    assert spec_for_model_id(spec.f32_id) is spec


@pytest.mark.parametrize("model_id", ["", "smart", "Llama-3.2-3B-Instruct-q4f16_1",
                                      "Qwen2.5-7B-Instruct-q4f16_1-MLC"])
def test_unknown_model_ids_have_no_spec(model_id: str) -> None:
    assert spec_for_model_id(model_id) is None


def test_f32_variants_need_more_memory_and_download() -> None:
    for spec in CATALOG:
        assert spec.vram_mb(f16=False) > spec.vram_mb(f16=True) > 0
        assert spec.download_mb(f16=False) > spec.download_mb(f16=True) > 0


def test_models_grow_with_their_tier() -> None:
    quick, smart, genius = CATALOG
    assert quick.vram_mb(True) < smart.vram_mb(True) < genius.vram_mb(True)
    assert quick.download_mb(True) < smart.download_mb(True) < genius.download_mb(True)


def test_only_genius_needs_a_strong_gpu() -> None:
    assert [s.low_resource for s in CATALOG] == [True, True, False]
    assert [s.min_binding_mb for s in CATALOG] == [128, 128, 256]
    assert all(s.context_window == 4096 for s in CATALOG)


def test_sim_app_config_points_every_variant_at_the_simulated_host() -> None:
    from localchat.core.catalog import CATALOG, sim_app_config

    config = sim_app_config("http://127.0.0.1:8000/", 0.002)
    records = {r["model_id"]: r for r in config["model_list"]}
    assert set(records) == {m for s in CATALOG for m in (s.f16_id, s.f32_id)}
    smart = records["Llama-3.2-3B-Instruct-q4f16_1-MLC"]
    assert smart["model"] == ("http://127.0.0.1:8000/sim-host/0.002/"
                              "Llama-3.2-3B-Instruct-q4f16_1-MLC")
    assert smart["overrides"] == {"context_window_size": 4096}
