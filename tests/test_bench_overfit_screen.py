"""bench/overfit_screen.py: its --set overrides are parsed as the field's type, and a setting or
config that cannot be used is one usage error (exit 2) before anything trains."""

from __future__ import annotations

import pytest

from bench_modules import load_bench
from vaekit.config import TrainConfig
from vaekit.errors import ConfigError

screen = load_bench("overfit_screen")


def test_set_parses_each_value_as_its_field() -> None:
    config = TrainConfig()
    for setting in ("optim.name=adamw", "optim.weight_decay=0.3", "model.autoregressive=64",
                    "model.autoregressive_dropout=0.25", "model.gated=true"):
        config = screen.apply(config, setting)
    assert (config.optim.name, config.optim.weight_decay) == ("adamw", 0.3)
    assert config.model.autoregressive == 64 and isinstance(config.model.autoregressive, int)
    assert config.model.autoregressive_dropout == 0.25 and config.model.gated is True


@pytest.mark.parametrize("setting", ["optim.lr", "nosuch.key=1", "optim.nosuch=1", "model.latent=abc"])
def test_bad_setting_is_a_config_error(setting: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        screen.apply(TrainConfig(), setting)


@pytest.mark.parametrize("argv", [["--set", "model.latent=abc"], ["--set", "optim.lr=nan"],
                                  ["--set", "model.autoregressive_dropout=1"], ["--images", "0"],
                                  ["--config", "/nonexistent/c.toml"], ["--nll", "-1"],
                                  ["--nll-images", "0"]])
def test_bad_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        screen.main(argv + ["--budget", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    named = argv[1].split("=")[0]  # the key, the number or the path given
    assert ": error: " in err[-1] and named in err[-1], err
