"""Ex.2 Q6's run: the sheet's MLP VAE (configs/sheet.toml: q_enc 784-400, q_mu and q_logvar to a
20-D latent, p_dec 20-400-784, Bernoulli, one reparameterized sample, Adam) trained for a short
budget into a scratch directory, or a run given by the user (`--vae-run RUN`, read only: never
written to); then its evaluation (eval.json when it belongs to the run's weights, else evaluated
here without writing) and its figures.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaekit import runs
from vaekit.config import TrainConfig, load_toml
from vaekit.data.load import Dataset, uses_data_dir
from vaekit.errors import CheckpointError, ConfigError
from vaekit.evaluate.eval_json import read_eval
from vaekit.evaluate.run import CPU_MACS_PER_SECOND, evaluate_run, load_test_set
from vaekit.report import visualize
from vaekit.train.fit import fit
from vaekit.vae.base import VAEBase
from vaekit.vae.models import build_model

SHEET_TOML = Path(__file__).resolve().parents[3] / "configs" / "sheet.toml"
QUICK_EPOCHS, QUICK_K = 10, 100  # --quick: configs/sheet.toml's own 10 epochs, a smaller k for IWAE
FULL_EPOCHS, FULL_K = 100, 5000  # the full page: longer training, the published k
FASHION_TRAIN, FASHION_TEST = 55_000, 10_000  # Fashion-MNIST's default training and test splits
FIGURE_IMAGES = 1000  # test images the figures are drawn from
# Published test -log p(x) on dynamically binarized Fashion-MNIST, k = 5,000 (nats): the table of
# Norouzi et al., "Exemplar VAE" (NeurIPS 2020): VAE, HVAE, VampPrior and Exemplar VAE.
PUBLISHED: dict[str, float] = {"VAE": 228.70, "HVAE": 227.37, "VampPrior": 227.35, "Exemplar VAE": 226.75}
Log = Callable[[str], None]


@dataclass
class VaeRun:
    """The run Ex.2 Q6 is answered with: where it is, whether this command trained it, its config,
    best model, test images, metrics, evaluation and figures (name -> PNG path)."""

    path: Path
    trained_here: bool
    config: TrainConfig
    model: VAEBase
    x: torch.Tensor
    dataset: Dataset
    metrics: list[dict[str, Any]]
    evaluation: dict[str, Any]
    figures: dict[str, Path]


def sheet_config(epochs: int, seed: int, data_dir: str | None, threads: int) -> TrainConfig:
    """configs/sheet.toml with the page's epochs, seed, data directory and threads."""
    if not SHEET_TOML.is_file():
        raise ConfigError(f"{SHEET_TOML} is missing (vaekit is not run from its source tree); give a "
                          "trained run with --vae-run RUN.")
    config = load_toml(SHEET_TOML, TrainConfig())
    config.train.epochs, config.train.seed, config.train.threads = epochs, seed, threads
    if data_dir is not None:
        config.data.data_dir = data_dir
    return config


def data_name(run_dir: Path | None) -> str:
    """The set Q6 reads: the run `run_dir`'s (its config.json), else configs/sheet.toml's."""
    config = sheet_config(1, 0, None, 0) if run_dir is None else runs.read_config(run_dir, "vae")
    return str(config.data.name)


def check_vae_run(run_dir: Path) -> None:
    """`--vae-run` must be a VAE run with a model: one sentence (CheckpointError) otherwise, before
    anything is trained or written. The run is loaded as `vaekit eval` loads it (`runs.load_run`),
    so a model file that is not a regular file, damaged weights or another run's are named as
    there, not found after the sheet's other answers."""
    if not run_dir.is_dir():
        raise CheckpointError(f"--vae-run {run_dir} is not a directory; expected a run directory of "
                              "`vaekit train`.")
    try:
        runs.check_run_config(run_dir, "vaekit train")  # a folder of runs: one of them named
        runs.read_config(run_dir, "vae")  # a folder of no run, or of a classifier, named as such
        runs.load_run(run_dir, "vae")
        read_eval(run_dir)  # its eval.json and metrics.jsonl, read now: not after the other answers
        runs.read_metrics(run_dir)
    except CheckpointError as err:
        raise CheckpointError(f"--vae-run: {str(err).rstrip('.')}.") from None


def cost_text(config: TrainConfig, images: int, test_images: int, k: int) -> str:
    """What training and evaluating the sheet's model would cost, from its parameter count (the
    model built from `config` on 1x28x28 images): about 3 multiply-adds per parameter per training
    image (forward and backward), and the decoder's once per test image and importance sample, at
    `CPU_MACS_PER_SECOND`."""
    model_config = copy.deepcopy(config.model)
    model_config.image_shape = [1, 28, 28]  # Fashion-MNIST's, the sheet's data
    model = build_model(model_config)
    params = sum(p.numel() for p in model.parameters())
    decoder = sum(p.numel() for p in model.p_dec.parameters())
    train_s = 3 * params * images * config.train.epochs / CPU_MACS_PER_SECOND
    eval_s = decoder * test_images * k / CPU_MACS_PER_SECOND
    return (f"{config.train.epochs} epochs of {images:,} images (~{train_s / 60:.0f} min) and k = {k:,} "
            f"importance samples on {test_images:,} test images (~{eval_s / 60:.0f} min; at "
            f"{CPU_MACS_PER_SECOND:.0e} multiply-adds per second: estimates)")


def full_cost(data_dir: str | None) -> str:
    """`cost_text` of the full page's Q6: FULL_EPOCHS on Fashion-MNIST's training split, FULL_K."""
    return cost_text(sheet_config(FULL_EPOCHS, 0, data_dir, 0), FASHION_TRAIN, FASHION_TEST, FULL_K)


def prepare(run_dir: Path | None, work: Path, epochs: int, k: int, seed: int, data_dir: str | None,
            threads: int, log: Log) -> VaeRun:
    """Train the sheet's model into work/sheet-vae (run_dir None) or read `run_dir`; evaluate it
    with k importance samples unless its eval.json belongs to its weights; draw its figures into
    work/figures-q6."""
    trained = run_dir is None
    if run_dir is None:
        run_dir = work / "sheet-vae"
        config = sheet_config(epochs, seed, data_dir, threads)
        log(f"Ex.2 Q6: training the sheet's MLP VAE (configs/sheet.toml) for {epochs} epochs")
        fit(config, run_dir, show_bar=False, log=log)
    elif not uses_data_dir(data_name(run_dir)):  # --data-dir is the page's IDX sets', not this run's
        data_dir = None
    model, config, x, labels, ds = load_test_set(run_dir, data_dir=data_dir)
    evaluation = read_eval(run_dir)
    if evaluation is None:
        log(f"Ex.2 Q6: evaluating {run_dir} with k = {k:,} importance samples")
        evaluation = evaluate_run(run_dir, k=k, seed=seed, data_dir=data_dir, progress=False, write=False)
    metrics = runs.read_metrics(run_dir)
    n = min(FIGURE_IMAGES, x.shape[0])
    shown = None if labels is None else labels[:n]
    figures = visualize.write_figures(model, x[:n], work / "figures-q6", shown, ds.classes, metrics,
                                      evaluation, seed)
    return VaeRun(run_dir, trained, config, model, x, ds, metrics, evaluation, figures)
