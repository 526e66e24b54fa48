import argparse
import json

import pytest

from workbench import config as C
from workbench import flags


def test_presets_resolve_to_the_documented_sizes():
    assert C.ModelConfig(size="tiny").resolved() == (2, 128, 2, 512)
    assert C.ModelConfig(size="mini").resolved() == (4, 256, 4, 1024)
    assert C.ModelConfig(size="small").resolved() == (4, 512, 8, 2048)
    assert C.ModelConfig(size="medium").resolved() == (8, 512, 8, 2048)
    assert C.ModelConfig(size="base").resolved() == (12, 768, 12, 3072)
    assert C.ModelConfig(size="mini", layers=6).resolved()[0] == 6
    assert C.preset("small").model.size == "small"


def test_bad_values_are_refused_with_a_message():
    with pytest.raises(C.ConfigError, match="unknown preset"):
        C.preset("huge")
    with pytest.raises(C.ConfigError, match="not divisible"):
        C.ModelConfig(hidden=100, heads=3).resolved()
    with pytest.raises(C.ConfigError, match="--mlm-probability"):  # the message names the flag
        C.MaskingConfig(mlm_probability=1.5)
    with pytest.raises(C.ConfigError, match="objective must be"):
        C.from_dict(C.PretrainConfig, {"objective": "electra"})
    with pytest.raises(C.ConfigError, match="unknown TrainConfig keys: bogus"):
        C.from_dict(C.PretrainConfig, {"train": {"bogus": 1}})


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("2m30s", 150), ("45", 45)])
def test_parse_duration(text, seconds):
    assert C.parse_duration(text) == seconds


def test_parse_duration_rejects_garbage():
    with pytest.raises(C.ConfigError):
        C.parse_duration("ten minutes")


def test_flags_override_preset_and_file(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.002\n  seq_len: 64\nmasking:\n  mlm_probability: 0.3\n")
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser, C.PretrainConfig)
    args = parser.parse_args(["--seq-len", "32", "--masking-seed", "4", "--no-packing", "--data", "a.txt", "b.txt"])
    base = C.load_config_file(tmp_path / "c.yaml", base=C.preset("tiny"))
    cfg = C.from_dict(C.PretrainConfig, flags.overrides_from_args(args, C.PretrainConfig), base)
    assert cfg.model.size == "tiny"  # from the preset
    assert cfg.train.lr == 0.002 and cfg.masking.mlm_probability == 0.3  # from the file
    assert cfg.train.seq_len == 32 and cfg.masking.seed == 4 and cfg.train.packing is False  # from flags
    assert cfg.data.data == ["a.txt", "b.txt"]


def test_config_round_trips_through_json(tmp_path):
    cfg = C.preset("mini")
    cfg.train.time_budget = "2m"
    C.save_config(cfg, tmp_path / "config.json")
    assert C.load_config_file(tmp_path / "config.json") == cfg
    assert json.loads((tmp_path / "config.json").read_text())["model"]["size"] == "mini"


def test_a_preset_for_bert_takes_bert_s_learning_rate():
    from workbench import cli
    from workbench.app.launcher import form_config

    assert (C.preset("tiny").train.lr, C.preset("tiny").model.architecture) == (3e-3, "modernbert")
    bert = C.preset("tiny", "bert")
    assert (bert.train.lr, bert.model.architecture, bert.train.batch_size) == (1e-3, "bert", 16)
    assert C.preset("tiny", "preln").train.lr == 3e-3  # measured for post-LN BERT only
    assert C.preset("mini", "bert").train.lr == C.preset("mini").train.lr == 1e-3
    assert C.PRETRAIN_PRESETS["tiny"]["train"]["lr"] == 3e-3  # the table itself is not changed

    def lr(*argv):
        return cli._pretrain_config(cli.build_parser().parse_args(["pretrain", *argv])).train.lr

    assert lr("--preset", "tiny", "--architecture", "bert") == 1e-3
    assert lr("--preset", "tiny", "--architecture", "bert", "--lr", "0.002") == 2e-3  # a typed rate wins
    assert lr("--preset", "tiny") == 3e-3
    assert form_config("tiny", "bert", "2m", 0.15, "token", None).train.lr == 1e-3  # the app's launcher
    assert form_config("tiny", "modernbert", "2m", 0.15, "token", None).train.lr == 3e-3
