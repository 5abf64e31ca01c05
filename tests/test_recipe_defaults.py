"""The measured recipe is the default, the flags that lost are gone, and files written before still load."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from ganlstm.cli import cli
from ganlstm.config import READER_WARMUP, ForecasterConfig, ForecastTrainConfig, GanConfig, from_dict, to_dict
from ganlstm.errors import GanlstmError
from ganlstm.train.forecaster import auto_reader_warmup


def test_the_recipe_is_the_default_config():
    g, m, t = GanConfig(), ForecasterConfig(), ForecastTrainConfig()
    assert (g.nz, g.latent_grid, g.ngf, g.ndf, g.encoder) == (512, 4, 32, 32, 32)
    assert (m.latent_cap, m.hidden, m.cell, m.feedback) == (1.0, (32, 32), "convlstm", "pixels")
    assert (t.alpha, t.gdl_weight, t.ema) == (0.8, 6.0, 0.999)
    assert t.reader_warmup is None and READER_WARMUP == 3000  # resolved per run: 3000, at most 60 % of it


def test_the_reader_warm_up_is_the_recipe_and_never_the_whole_run():
    assert auto_reader_warmup("gan_lstm", 5400) == 3000
    assert auto_reader_warmup("gan_lstm", 1000) == 600
    assert auto_reader_warmup("gan_lstm", float("inf")) == 3000
    assert auto_reader_warmup("convlstm", 5400) == 0


@pytest.mark.parametrize("flag", ["--anchor-loss", "--freeze-reader", "--separate-reader", "--refine-steps", "--refine-decay",
                                  "--refine-lr", "--early-weight", "--latent-weight"])
def test_a_removed_flag_is_gone(flag):
    for command in ("train-encoder", "train-baseline"):
        result = CliRunner().invoke(cli, [command, flag, "1", "--help"])
        assert result.exit_code == 2 and "No such option" in result.output, (command, flag, result.output)
        assert flag not in CliRunner().invoke(cli, [command, "--help"]).output


def test_configs_written_before_the_removal_still_load_when_the_options_were_off():
    old = {**to_dict(ForecasterConfig()), "separate_reader": False, "refine_steps": 0, "refine_lr": 0.1, "refine_decay": 0.7}
    assert from_dict(ForecasterConfig, old) == ForecasterConfig()
    old_train = {**to_dict(ForecastTrainConfig()), "early_weight": 0.0, "latent_weight": 0.0, "freeze_reader": False, "anchor_loss": False}
    assert from_dict(ForecastTrainConfig, old_train).model == ForecasterConfig()


def test_a_model_trained_with_a_removed_option_is_refused_by_name():
    with pytest.raises(GanlstmError, match=r"trained with refine_steps=50, an option ganlstm removed"):
        from_dict(ForecasterConfig, {**to_dict(ForecasterConfig()), "refine_steps": 50}, where="old.pt: config.model")
    with pytest.raises(GanlstmError, match=r"freeze_reader=True"):
        from_dict(ForecastTrainConfig, {**to_dict(ForecastTrainConfig()), "freeze_reader": True})
