"""metrics.jsonl read on its own: which last line is a cut one (dropped) and which an edit
(refused), and the laws a row holds by how it is computed, held where no checkpoint records the
rows (a run whose checkpoints were deleted): rows of real tiny runs of every kind pass, rows that
break a law are refused in one sentence naming the file, the line and the fields."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli_refusal import cli_bad
from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError

ROW = '{"epoch": 1, "val_neg_elbo": 3.5}\n'


@pytest.mark.parametrize("tail", ['{"epoch": 2, "val_ne', "\x00" * 40, "\x00" * 40 + "\n", " \x00\x00 \n\n"],
                         ids=["cut", "nul", "nul-newline", "nul-spaces"])
def test_a_cut_last_line_or_nul_bytes_are_dropped(tmp_path: Path, tail: str) -> None:
    """A row cut by a kill has no newline (rows are appended whole with theirs); a power loss can
    leave NUL bytes where the file grew: neither is a row, and both go when a resume rewrites."""
    (tmp_path / runs.METRICS).write_text(ROW + tail)
    assert runs.read_metrics(tmp_path) == [json.loads(ROW)]
    runs.truncate_metrics(tmp_path, 1)
    assert (tmp_path / runs.METRICS).read_text() == ROW


@pytest.mark.parametrize("tail", ["not json\n", '{"epoch": 2, "val_ne\n', "{oops\r\n", "\x00{\n"])
def test_a_last_line_that_ends_with_its_newline_and_is_not_json_is_refused(tmp_path: Path, tail: str) -> None:
    """A last line that is whole (its newline written after it) and not JSON was edited: refused,
    naming the file and the line, as any other line is, by the readers and by a resume's rewrite."""
    path = tmp_path / runs.METRICS
    path.write_bytes((ROW + tail).encode())
    for read in (runs.read_metrics, lambda run: runs.truncate_metrics(run, 1)):
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: line 2 is not JSON"):
            read(tmp_path)
    assert path.read_bytes() == (ROW + tail).encode()


# ----------------------------------------------------------------------------- the laws of a row


KINDS: dict[str, dict[str, Any]] = {  # what each run's config differs in, by what its rows hold
    "vae": {},
    "iwae": {"train": {"objective": "iwae", "samples": 3}},
    "beta and free bits": {"train": {"beta": 4.0, "free_bits": 0.5}},
    "score estimator": {"train": {"estimator": "score"}},
    "bf16 autocast": {"train": {"precision": "bf16", "engine": "autograd"}},
    "vamp prior": {"model": {"prior": "vamp", "pseudo_inputs": 10}},
    "two stochastic layers": {"model": {"stochastic_layers": 2}},
    "gaussian": {"model": {"likelihood": "gaussian"}},
}


def _vae_run(path: Path, settings: dict[str, Any]) -> Path:
    from vaekit.config import TrainConfig
    from vaekit.train.fit import fit

    config = TrainConfig()
    config.data.name, config.model.hidden, config.model.latent = "digits", [16], 2
    config.train.epochs, config.train.batch_size, config.train.threads = 2, 64, 1
    for section, values in settings.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    fit(config, path, show_bar=False, log=lambda _m: None)
    return path


def _classifier_run(path: Path) -> Path:
    assert main(["classify", "--data", "digits", "--epochs", "2", "--preset", "dense", "--threads", "1",
                 "--label-smoothing", "0.1", "--no-progress", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The run of a kind (trained once per module), its checkpoints deleted: nothing but the rows'
    own laws holds them."""
    done: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in done:
            path = tmp_path_factory.mktemp("rows") / kind.replace(" ", "-")
            done[kind] = _classifier_run(path) if kind == "classifier" else _vae_run(path, KINDS[kind])
            for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):
                (done[kind] / name).unlink()
        return done[kind]
    return make


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]


def _write(run: Path, rows: list[dict[str, Any]]) -> None:
    (run / runs.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("kind", [*KINDS, "classifier"])
def test_the_rows_of_an_honest_run_of_every_kind_hold(made: Callable[[str], Path], kind: str) -> None:
    run = made(kind)
    assert runs.read_metrics(run) == _rows(run)
    fields = {"classifier": {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}}.get(
        kind, {"train_neg_elbo", "train_recon", "train_kl", "val_neg_elbo", "val_recon", "val_kl"})
    assert fields <= set(_rows(run)[-1]), _rows(run)[-1]  # the laws below are about these


@pytest.mark.parametrize("field", ["val_neg_elbo", "train_neg_elbo", "val_kl", "train_recon"])
def test_a_row_that_does_not_add_up_is_refused(made: Callable[[str], Path], tmp_path: Path, capsys: Any,
                                              one_sentence: Any, field: str) -> None:
    """One number of a row moved by 1 nat: -ELBO is no longer recon + KL, in any part."""
    run = _copy(made("vae"), tmp_path)
    rows = _rows(run)
    rows[1][field] += 1.0
    _write(run, rows)
    part = field.split("_")[0]
    with pytest.raises(CheckpointError) as caught:
        runs.read_metrics(run)
    message = str(caught.value)
    assert message.startswith(f"{run / runs.METRICS}: line 2: {part}_neg_elbo is "), message
    assert f"{part}_recon + {part}_kl" in message, message
    err = cli_bad(capsys, one_sentence, ["report", str(run), "--k", "2"], str(run / runs.METRICS))
    assert "line 2" in err


def test_a_row_that_adds_up_in_float32_is_kept(made: Callable[[str], Path], tmp_path: Path) -> None:
    """The tolerance is float32's: -ELBO summed from recon and KL in float32 (numpy's, one rounding
    each), or off by 16 float32 ulps, is still the run's row; off by 2^-10 of it is not."""
    run = _copy(made("vae"), tmp_path)
    rows = _rows(run)
    recon, kl = np.float32(rows[0]["val_recon"]), np.float32(rows[0]["val_kl"])
    rows[0]["val_neg_elbo"] = float(recon + kl)
    rows[1]["val_neg_elbo"] = float(np.float32(rows[1]["val_neg_elbo"]) * np.float32(1 + 16 * 2.0**-24))
    _write(run, rows)
    assert runs.read_metrics(run) == rows
    rows[1]["val_neg_elbo"] *= 1 + 2.0**-10
    _write(run, rows)
    with pytest.raises(CheckpointError, match="line 2: val_neg_elbo"):
        runs.read_metrics(run)


@pytest.mark.parametrize("kind", ["vae", "bf16 autocast", "vamp prior", "two stochastic layers"])
def test_a_kl_below_0_is_refused_where_it_is_the_closed_form(made: Callable[[str], Path], tmp_path: Path,
                                                            kind: str) -> None:
    """KL = -0.1 nats with -ELBO = recon + KL: no closed-form KL (N(0, I) prior, one layer) is below
    0; a Monte-Carlo one (a VampPrior, two layers) may be, and is kept."""
    run = _copy(made(kind), tmp_path)
    rows = _rows(run)
    rows[0]["val_kl"], rows[0]["val_neg_elbo"] = -0.1, rows[0]["val_recon"] - 0.1
    _write(run, rows)
    if kind in ("vamp prior", "two stochastic layers"):
        assert runs.read_metrics(run) == rows
    else:
        where = re.escape(str(run / runs.METRICS))
        with pytest.raises(CheckpointError, match=f"^{where}: line 1: val_kl is -0.1, below 0"):
            runs.read_metrics(run)


@pytest.mark.parametrize("kind, field, value", [("vae", "epoch_seconds", -0.5), ("vae", "lr", -1e-3),
                                                ("vae", "beta", -1.0), ("vae", "step", -12),
                                                ("classifier", "val_accuracy", 1.25),
                                                ("classifier", "train_accuracy", -0.1),
                                                ("classifier", "train_loss", -0.5)])
def test_a_field_outside_its_range_is_refused(made: Callable[[str], Path], tmp_path: Path, kind: str,
                                              field: str, value: float) -> None:
    run = _copy(made(kind), tmp_path)
    rows = _rows(run)
    rows[1][field] = value
    _write(run, rows)
    where = re.escape(str(run / runs.METRICS))
    with pytest.raises(CheckpointError, match=f"^{where}: line 2: {field} is {value}, "):
        runs.read_metrics(run)


def test_a_cut_row_of_a_real_run_is_dropped_by_every_reader(tmp_path: Path) -> None:
    """A kill mid-append of epoch 3's row (of `--resume --epochs 3`): report and the explorer read
    the run, and a resume redoes epoch 3 over it, its rows whole again."""
    from vaekit.serve.explorer import Explorer

    run = make_run(tmp_path / "run")
    whole = (run / runs.METRICS).read_text()
    cut = whole.splitlines()[-1].replace('"epoch": 2', '"epoch": 3')[:40]
    (run / runs.METRICS).write_text(whole + cut)
    assert runs.read_metrics(run) == [json.loads(line) for line in whole.splitlines()]
    assert main(["report", str(run), "--k", "2", "--limit", "20"]) == 0
    assert len(Explorer.load(run).run.metrics) == 2
    assert main(["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
                 "--threads", "1", "--no-progress", "--epochs", "3", "--out", str(run), "--resume"]) == 0
    text = (run / runs.METRICS).read_text()
    assert text.startswith(whole) and text.endswith("\n") and cut not in text
    assert [r["epoch"] for r in runs.read_metrics(run)] == [1, 2, 3]
