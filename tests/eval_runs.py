"""Small real runs for the evaluation, figure and report tests: `vaekit.train.fit` on scikit-learn's
bundled 8x8 digits (no download), a couple of epochs of a tiny MLP (or, `make_classifier_run`, of a
tiny conv classifier). Used by test_report.py, test_cli_eval.py, test_report_browser.py and the
classifier's evaluation and report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vaekit.config import TrainConfig


def make_run(run_dir: Path, latent: int = 2, epochs: int = 2, seed: int = 0, hidden: int = 16,
             **model: object) -> Path:
    """Train a tiny VAE (MLP unless `model` says otherwise, e.g. kind="conv") on digits into
    `run_dir` (config.json, model.safetensors, metrics.jsonl, checkpoint)."""
    from vaekit.train.fit import fit

    config = TrainConfig()
    config.data.name = "digits"
    config.model.hidden = [hidden]
    config.model.latent = latent
    config.train.epochs = epochs
    config.train.batch_size = 64
    config.train.seed = seed
    config.train.threads = 1
    for key, value in model.items():
        setattr(config.model, key, value)
    fit(config, run_dir, show_bar=False, log=lambda _m: None)
    return run_dir


def write_images(path: Path, shape: tuple[int, ...], n: int = 40, seed: int = 0) -> Path:
    """A .npz of n random uint8 images of `shape` (H, W) or (C, H, W), with labels."""
    rng = np.random.default_rng(seed)
    np.savez(path, images=rng.integers(0, 256, size=(n, *shape), dtype=np.uint8),
             labels=(np.arange(n) % 4).astype(np.int64))
    return path


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# A tiny conv classifier on 1x8x8 digits: a conv of 8 maps, 2x2 pooling, one Linear.
CLASSIFIER_LAYERS = ["Conv2d(8, 3, padding=1)", "ReLU()", "MaxPool2d(2)", "Flatten()", "Linear(10)"]


def make_classifier_run(out: Path, epochs: int = 2) -> Path:
    """Train the tiny classifier of CLASSIFIER_LAYERS on digits into `out` (1 thread, batch 64)."""
    from vaekit.classify.config import ClassifierConfig
    from vaekit.classify.fit import fit_classifier

    config = ClassifierConfig()
    config.data.name = "digits"
    config.model.layers = list(CLASSIFIER_LAYERS)
    config.train.epochs = epochs
    config.train.batch_size = 64
    config.train.threads = 1
    fit_classifier(config, out, show_bar=False, log=lambda s: None)
    return out
