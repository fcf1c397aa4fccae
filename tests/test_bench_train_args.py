"""bench/contention.py and bench/distributed_speed.py time `vaekit train` on the demo's config for a
few epochs: the command each runs must pass the train command's checks of its settings (a warm-up
or a patience the few epochs leave doing nothing is refused before anything trains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_modules import load_bench
from vaekit.cli import build_parser
from vaekit.commands import train

ROOT = Path(__file__).resolve().parents[1]


def _config_of(args: list[str], monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.chdir(ROOT)
    config, _ = train.build_config(build_parser().parse_args(args))
    return config


@pytest.mark.parametrize("epochs", [1, 4])  # 4: contention's default --epochs
def test_the_contention_command_is_one_train_accepts(epochs: int, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench("contention")
    config = "configs/fashion-mnist-mlp.toml"  # its default --config
    args = bench.train_args(config, tmp_path / "images.npy", epochs, 1, tmp_path / "run")
    assert _config_of(args, monkeypatch).train.epochs == epochs  # type: ignore[attr-defined]


def test_the_distributed_speed_command_is_one_train_accepts(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench("distributed_speed")
    assert _config_of(bench.train_args(1, tmp_path / "run"), monkeypatch).train.epochs == 1  # type: ignore[attr-defined]
