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

from vaekit.classify.config import ClassifierConfig
from vaekit.classify.fit import fit_classifier
from vaekit.config import TrainConfig
from vaekit.data.load import load_dataset
from vaekit.evaluate.run import evaluate_run
from vaekit.runs import Run, load_run
from vaekit.train.fit import fit
from vaekit.version import __version__

__all__ = ["ClassifierConfig", "Run", "TrainConfig", "__version__", "evaluate_run", "fit", "fit_classifier",
           "load_dataset", "load_run"]
