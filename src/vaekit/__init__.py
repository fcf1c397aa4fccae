"""vaekit: layer arithmetic for CNNs and variational autoencoders, from the TD-2 sheet.

The Python API for a notebook, a few names (the `vaekit` command is a thin layer over the same):

    run = vaekit.load_run("runs/demo")   # a trained run: run.config, run.model (eval mode), run.metrics
    x = run.images("test", limit=8)      # test images as the model sees them, float (N, C, H, W)
    mu, logvar = run.model.encode(x)     # q(z|x), (N, D) each
    images = run.model.decode_mean(mu)   # E[x|z] in [0, 1], (N, C, H, W)
    samples = run.model.sample(16)       # z ~ p(z) (N(0, I) or the VampPrior), then E[x|z]
    result = vaekit.evaluate_run("runs/demo", k=100, limit=500)   # the eval.json fields
    summary = vaekit.fit(vaekit.TrainConfig(), "runs/new")         # train a run

    clf = vaekit.load_run("runs/fashion-mnist-cnn")   # a classifier run (`vaekit classify`)
    logits = clf.model(clf.images("test", limit=8))   # (8, classes)
    vaekit.fit_classifier(vaekit.ClassifierConfig(), "runs/cnn")   # train one

`fit` and `evaluate_run` are `vaekit.train.fit.fit` and `vaekit.evaluate.run.evaluate_run`,
`fit_classifier` is `vaekit.classify.fit.fit_classifier`. (They
are not called `train` and `evaluate`: those are the names of the packages that hold them.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vaekit.version import __version__

# Each name of the API and the module that holds it, imported on first use (PEP 562): `import
# vaekit.cli` then costs no torch, so the command can hold off a Ctrl-C while torch and numpy load.
_WHERE = {"ClassifierConfig": "vaekit.classify.config", "fit_classifier": "vaekit.classify.fit",
          "TrainConfig": "vaekit.config", "load_dataset": "vaekit.data.load",
          "evaluate_run": "vaekit.evaluate.run", "Run": "vaekit.runs", "load_run": "vaekit.runs",
          "fit": "vaekit.train.fit"}

if TYPE_CHECKING:
    from vaekit.classify.config import ClassifierConfig
    from vaekit.classify.fit import fit_classifier
    from vaekit.config import TrainConfig
    from vaekit.data.load import load_dataset
    from vaekit.evaluate.run import evaluate_run
    from vaekit.runs import Run, load_run
    from vaekit.train.fit import fit

__all__ = ["ClassifierConfig", "Run", "TrainConfig", "__version__", "evaluate_run", "fit", "fit_classifier",
           "load_dataset", "load_run"]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
