"""What a run's epochs would leave doing nothing, refused where the command set it: a KL warm-up
longer than the run (`check_warmup`), epochs beside a time budget that plans them
(`check_planned_epochs`), a patience that could never stop the run and a step schedule that never
decays the learning rate or decays it below float32's smallest normal number (`check_epochs`,
`flushed_epoch`)."""

from __future__ import annotations

import math
from typing import Any

from vaekit.config.read import differences
from vaekit.config.sections import TrainConfig
from vaekit.errors import ConfigError


def check_warmup(config: TrainConfig, base: TrainConfig) -> None:
    """Refuse a KL warm-up longer than the run, where this command set either (`base`: the defaults,
    or the config of the run it resumes): the KL weight would never reach beta. A time budget plans
    both the epochs and the warm-up (`vaekit.train.budget`), so there is nothing to hold yet."""
    t = config.train
    if t.time_budget or not {"train.warmup", "train.epochs"} & set(differences(base, config)):
        return
    if t.warmup > t.epochs:
        raise ConfigError(f"train.warmup is {t.warmup:g} epochs (--warmup), longer than the run's "
                          f"{n_epochs(t.epochs)} (train.epochs, --epochs), so the KL weight would never "
                          f"reach beta; give a warm-up of at most {n_epochs(t.epochs)}, or more epochs.")


def check_planned_epochs(config: TrainConfig, start: TrainConfig, toml: TrainConfig,
                         flags_given: set[str] | frozenset[str] = frozenset(),
                         file_given: set[str] | frozenset[str] = frozenset(),
                         file: str | None = None) -> list[str]:
    """Refuse train.epochs set beside a time budget that plans them (`vaekit.train.budget`): given as
    a flag (`toml`: the config before the flags; `flags_given`: the 'section.key' names of the flags,
    so an --epochs equal to a resumed run's counts), or in one file with the budget (`file_given`:
    the file's keys). A file's epochs under a budget from the command line are its run without a
    budget, so not refused: the note returned says they are not used (`file`: the file's name)."""
    flags = set(differences(toml, config)) | flags_given
    in_file = set(differences(start, toml)) | file_given
    both = {"train.epochs", "train.time_budget"} <= in_file
    recorded = start.train.time_budget and not {"train.time_budget"} & (flags | in_file)  # a resumed run's
    if recorded and "train.epochs" in flags:
        raise ConfigError(f"train.epochs (--epochs) is planned by the time budget the resumed run records "
                          f"(train.time_budget, {start.train.time_budget:g} s, in its config.json), so the "
                          "epochs given would do nothing; to train it on, give a longer --time-budget "
                          "instead.")
    if config.train.time_budget and ("train.epochs" in flags or both):
        raise ConfigError("train.epochs (--epochs) is planned by the time budget (train.time_budget, "
                          "--time-budget), so the epochs given beside it would do nothing; leave one of the "
                          "two out.")
    if config.train.time_budget and "train.epochs" in in_file:  # the budget the command line's
        return [f"{file or 'the --config file'}: train.epochs = {toml.train.epochs} is not used; "
                "--time-budget plans the run's epochs."]
    return []


def n_epochs(n: int) -> str:
    """`n` epochs in words: "1 epoch", "3 epochs"."""
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def check_epochs(config: Any, base: Any, epochs: int | None = None, planned: int | None = None,
                 trained: int = 0) -> None:
    """Refuse what the run's epochs leave doing nothing, where this command set it (`base` as for
    `check_warmup`; a VAE's or a classifier's config): a patience of at least the epochs (the first
    epoch is always the best so far, so at most epochs - 1 follow without a better score), and a
    step schedule that never decays the learning rate (a step size of at least the epochs: `lr_at`
    decays at epoch step_size, counted from 0; a factor of 1 at any length), or whose decay takes
    the learning rate below float32's smallest normal number within them (`flushed_epoch`). A
    cosine schedule over one epoch keeps its rate (`lr_at` of epoch 0 is the rate itself): a
    config's one-epoch trial, taken as it is.
    `epochs`: the epochs
    each run trains where not its config's (`--compare`'s). A time budget plans the epochs: held
    only against the `planned` epochs, once its plan is made (`vaekit.train.budget`), which sets
    them as --epochs would. A resumed run that has `trained` its epochs already trains no more: what
    acts only while it trains is refused by the resume itself (`vaekit.train.early_stopping`), in
    its own words."""
    t, o = config.train, config.optim
    given = epochs is not None or planned is not None  # epochs set other than by the config's train.epochs
    changed = set(differences(base, config)) | ({"train.epochs"} if given else set())
    if o.schedule == "step" and o.gamma == 1.0 and {"optim.gamma", "optim.schedule"} & changed:
        raise ConfigError("optim.gamma is 1, so the step schedule (--schedule step) would leave the learning "
                          "rate as it is at each step; give a factor below 1 (0.1 by default), or "
                          "--schedule none.")
    if getattr(t, "time_budget", None) and planned is None:  # a classifier has no time budget
        return
    n = planned or (t.epochs if epochs is None else epochs)
    if trained >= n:
        return
    whose, more = (("the time budget's plan", "a longer time budget") if planned is not None
                   else ("train.epochs", "more epochs"))
    if 0 < t.patience >= n and {"train.patience", "train.epochs"} & changed:
        raise ConfigError(f"train.patience (--patience) is {n_epochs(t.patience)}, as many as the run's "
                          f"{n_epochs(n)} ({whose}) or more, so early stopping could never stop it; give a "
                          f"patience below {n} (0 for none), or {more}.")
    if o.schedule == "step" and o.step_size >= n and {"optim.step_size", "optim.schedule", "train.epochs"} \
            & changed:
        when = [f"a step size below {n} (optim.step_size in the --config file)"] if n > 1 else []  # >= 1
        when += [more if planned is not None else f"at least {n_epochs(o.step_size + 1)}"]
        first = flushed_epoch(o) == o.step_size + 1  # its first decay takes the rate to 0: the rule below
        fix = ("give " + ("a larger gamma (this one's first decay would take the rate below float32's "
                          "range) with " if first else "") + " or ".join(when) + ", or --schedule none")
        raise ConfigError(f"optim.step_size is {n_epochs(o.step_size)}, as many as the run's {n_epochs(n)} "
                          f"({whose}) or more, so the step schedule (--schedule step) would never "
                          f"decay the learning rate; {fix}.")
    flushed = flushed_epoch(o)
    decay = {"optim.gamma", "optim.step_size", "optim.lr", "optim.schedule", "train.epochs"}
    if flushed is not None and flushed <= n and decay & changed:
        # where the first decay flushes, a larger step size or fewer epochs would never decay (the rule above)
        fewer = "fewer epochs" if planned is None else "a shorter time budget"
        later = (flushed - 1) // o.step_size > 1
        fix = f"a larger gamma or step size, or {fewer}" if later else "a larger gamma, or --schedule none"
        raise ConfigError(f"optim.gamma {o.gamma:g} every optim.step_size of {n_epochs(o.step_size)} takes "
                          f"the learning rate {o.lr:g} below float32's smallest normal number, "
                          f"{FLOAT32_TINY:.3g} (read as 0), at epoch {flushed} of the run's {n_epochs(n)} "
                          f"({whose}), so the epochs from there on would not train; give {fix}.")

FLOAT32_TINY = 1.1754943508222875e-38  # torch.finfo(torch.float32).tiny: smaller is flushed to 0


def flushed_epoch(o: Any) -> int | None:
    """The first epoch (1-based) whose learning rate under the step schedule, lr * gamma **
    floor((epoch - 1) / step_size) (`vaekit.train.optim.lr_at`), is below float32's smallest normal
    number, FLOAT32_TINY; None for another schedule or a gamma of 1 (or an lr already that small:
    not the schedule's doing). Found from the logarithms, then held to the products themselves."""
    if o.schedule != "step" or o.gamma >= 1.0 or o.lr < FLOAT32_TINY:
        return None
    k = max(1, math.floor(math.log(FLOAT32_TINY / o.lr) / math.log(o.gamma)))  # decays until below
    while k > 1 and o.lr * o.gamma ** (k - 1) < FLOAT32_TINY:
        k -= 1
    while o.lr * o.gamma ** k >= FLOAT32_TINY:
        k += 1
    return int(k * o.step_size + 1)
