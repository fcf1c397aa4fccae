"""Training: one loop, gradients from an engine, a run on disk.

    engines.py      loss_and_grads behind one interface: autograd | the hand-derived MLP backward
    optim.py        optimizers (fused Adam(W) step), learning-rate schedule, KL warm-up
    loop.py         THE loop: one epoch, and the validation -ELBO
    fit.py          a run: resume, checkpoints, early stopping, logging
    tensorboard.py  --tensorboard: scalars and image grids per epoch (the extra vaekit[tensorboard])
"""
