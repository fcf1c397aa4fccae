"""Ex.1 trained, not only counted: dense and convolutional classifiers built from `vaekit.arch`
layer text, trained by vaekit's one loop (`vaekit.train.loop`) and run (`vaekit.train.fit`).

    config.py    ClassifierConfig: [data] (side, resize, augmentation), [model] (preset or layers),
                 [optim], [train]
    models.py    the presets and the layer text -> torch.nn builder (`Classifier`)
    data.py      labels, resizing (Ex.1 Q1's large images), augmentation, the loop's batches
    loss.py      cross-entropy with label smoothing, and the classifier's engine
    metrics.py   accuracy, its Wilson interval, the confusion matrix
    fit.py       a classifier run: `fit_classifier`
"""
