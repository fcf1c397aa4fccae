"""A run of images of 2 or 4 channels (grey + alpha, RGBA), as a vaekit that took such arrays trained
it (its config.json, checkpoint and model file agreeing), or a config.json edited to claim them:
`sample`, `report`, `serve` and `load_run` refuse it in one sentence naming its config.json, never
a matplotlib traceback or an explorer that calls every upload unreadable. The run is trained here
by `fit` on a dataset made in Python, with the rule of 1 or 3 channels lifted for its training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.data.dataset import Dataset, Split
from vaekit.errors import CheckpointError
from vaekit.runs.load import load_run
from vaekit.serve.app import make_server


def planes_run(out: Path, c: int) -> Path:
    """A tiny MLP VAE trained for one epoch on 20 random images of c x 8 x 8, 1 thread."""
    from vaekit.train.fit import fit

    gen = torch.Generator().manual_seed(c)
    images = torch.randint(0, 256, (20, c, 8, 8), dtype=torch.uint8, generator=gen)
    ds = Dataset(f"planes{c}", Split(images[:16]), Split(images[16:18]), Split(images[18:]))
    config = TrainConfig()
    config.data.name = f"planes{c}"
    config.model.hidden, config.model.latent = [8], 2
    config.train.epochs, config.train.batch_size, config.train.threads = 1, 8, 1
    with pytest.MonkeyPatch.context() as mp:  # the rule lifted: an earlier vaekit's run
        mp.setattr("vaekit.config.sections.IMAGE_CHANNELS", (0, 1, 2, 3, 4))
        fit(config, out, show_bar=False, log=lambda _m: None, dataset=ds)
    return out


@pytest.fixture(scope="module", params=[2, 4])
def old_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    c = request.param
    return planes_run(tmp_path_factory.mktemp("planes") / f"run{c}", c), c


def refused_sentence(err: str, run: Path, c: int) -> None:
    """The last line of stderr: one sentence naming the run's config.json, its channels, 1 or 3."""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1].split(": error: ", 1)[1]
    assert "\n" not in last and last.endswith(".") and last.count(". ") == 0, last
    for words in (str(run / "config.json"), f"{c} channels", "grey (1 channel)", "RGB (3 channels)"):
        assert words in last, last


def test_the_run_was_trained_on_its_planes(old_run) -> None:
    """The run is what the commands below are refused: config.json records c x 8 x 8 images."""
    run, c = old_run
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["image_shape"] == [c, 8, 8]
    assert (run / "model.safetensors").is_file()


@pytest.mark.parametrize("command", [["sample", "-n", "4", "--out", "{tmp}/s.png"], ["report"],
                                     ["eval"]])
def test_commands_refuse_a_run_of_two_or_four_channels(old_run, command, tmp_path, capsys) -> None:
    run, c = old_run
    args = [a.format(tmp=tmp_path) for a in command]
    status = main([args[0], str(run), *args[1:]])
    refused_sentence(capsys.readouterr().err, run, c)
    assert status == 2
    assert not (tmp_path / "s.png").exists() and not (run / "report.html").exists()


def test_serve_and_load_run_refuse_it(old_run) -> None:
    run, c = old_run
    with pytest.raises(CheckpointError, match=f"{c} channels"):
        load_run(run)
    with pytest.raises(CheckpointError, match=f"{c} channels") as info:
        server = make_server(run, "127.0.0.1", 0)
        server.server_close()
    assert str(run / "config.json") in str(info.value)


def test_an_edited_config_claiming_four_channels_is_named(run: Path, tmp_path, capsys) -> None:
    """A grey run whose config.json says [4, 8, 8]: the sentence says what is wrong with it (no
    image of 4 channels), not only that it differs from the model file's."""
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["model"]["image_shape"][0] = 4
    path.write_text(json.dumps(config))
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 2
    refused_sentence(capsys.readouterr().err, run, 4)


def test_fit_refuses_a_dataset_of_two_channels(tmp_path) -> None:
    """`fit` on a Dataset made in Python (no reader between): refused before a file is written."""
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="2 channels"):
        images = torch.zeros((20, 2, 8, 8), dtype=torch.uint8)
        ds = Dataset("planes", Split(images[:16]), Split(images[16:18]), Split(images[18:]))
        config = TrainConfig()
        config.data.name, config.train.epochs, config.train.threads = "planes", 1, 1
        from vaekit.train.fit import fit

        fit(config, tmp_path / "run", show_bar=False, log=lambda _m: None, dataset=ds)
    assert not (tmp_path / "run").exists()
