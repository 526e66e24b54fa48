"""Every recipe in configs/ loads into the typed config (as litgpt's test_config_hub does): a typo in
a key or a value that the config refuses fails here, not half-way into a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import config as C

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes():
    assert CONFIGS, "configs/ holds no *.yaml recipe"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_recipe_loads(path):
    cfg = C.load_config_file(path, C.PretrainConfig)
    assert isinstance(cfg, C.PretrainConfig)
    assert C.from_dict(C.PretrainConfig, C.to_dict(cfg)) == cfg  # round-trips: nothing dropped on the way


def test_mini_recipe_is_the_mini_preset():
    path = next((p for p in CONFIGS if p.name == "mini.yaml"), None)
    assert path is not None, "configs/mini.yaml is shipped"
    assert C.load_config_file(path, C.PretrainConfig) == C.preset("mini")


def test_two_minute_recipe_is_the_tiny_preset_with_a_budget():
    path = next((p for p in CONFIGS if p.name == "recipe-2m.yaml"), None)
    assert path is not None, "configs/recipe-2m.yaml is shipped"
    cfg = C.load_config_file(path, C.PretrainConfig)
    assert cfg.train.time_budget == "2m"
    cfg.train.time_budget = None
    assert cfg == C.preset("tiny")


def test_default_model_recipe_is_the_shipped_model():
    """configs/default-model.yaml is how assets/default-model was made: same shape and attention."""
    import json

    from workbench.model import _layer_types

    path = next((p for p in CONFIGS if p.name == "default-model.yaml"), None)
    assert path is not None, "configs/default-model.yaml is shipped"
    cfg = C.load_config_file(path, C.PretrainConfig)
    shipped = json.loads((path.parents[1] / "assets" / "default-model" / "config.json").read_text())
    layers, hidden, heads, intermediate = cfg.model.resolved()
    assert (shipped["num_hidden_layers"], shipped["hidden_size"], shipped["num_attention_heads"],
            shipped["intermediate_size"]) == (layers, hidden, heads, intermediate)
    assert shipped["layer_types"] == _layer_types(cfg.model, layers)
    assert shipped["vocab_size"] == cfg.tokenizer.vocab_size
