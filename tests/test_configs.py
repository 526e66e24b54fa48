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
