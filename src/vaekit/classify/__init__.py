"""Ex.1 trained, not only counted: dense and convolutional classifiers built from `vaekit.arch`
layer text, trained by vaekit's one loop (`vaekit.train.loop`) and run (`vaekit.train.fit`).

    config.py    ClassifierConfig: [data] (side, resize, augmentation), [model] (preset or layers),
                 [optim], [train]
    models.py    the presets and the layer text -> torch.nn builder (`Classifier`)
    data.py      labels, resizing (Ex.1 Q1's large images), augmentation, the loop's batches
    loss.py      cross-entropy with label smoothing, and the classifier's engine
    metrics.py   accuracy, its Wilson interval, the confusion matrix
    fit.py       a classifier run: `fit_classifier`
    compare.py   `vaekit classify --compare`: compare_plan.py (the checked plan), compare_network.py
                 (one network, trained in a child process), compare_table.py (rows, table, notes)
    figure.py    the figure of `vaekit classify --compare` (compare.py)

Importing it registers the 'classify' task with `vaekit.runs` (`runs.register_task`): that is how
`runs.read_config` and `runs.load_run` read, build and feed a classifier run, a layer below this
one, which imports no classifier.
"""

from vaekit import runs
from vaekit.classify import config, data, models

runs.register_task(runs.Task(
    config.TASK, "vaekit classify", "a classifier run", config.ClassifierConfig,
    lambda raw, origin: config.validate(config.from_dict(raw, origin)), models.build_classifier,
    lambda cfg, pixels: data.network_input(pixels, cfg.data.side, cfg.data.resize),
    hint=" (`vaekit classify eval {run_dir}`)"))
