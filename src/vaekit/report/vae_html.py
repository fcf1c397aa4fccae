"""report.html of a VAE run (`vaekit train`), registered as the report of 'vae' runs
(`vaekit.report.kinds`): config, learning curves, the eval table, every figure, the parameter
table of the model (`vaekit.arch.from_module`) and the time spent.

Images are embedded as base64 `data:` URIs and the style sheet is inline, so the file opens
offline and can be mailed around (the pieces: `vaekit.report.page`). Every piece of text that comes
from a file or a model goes through `html.escape`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaekit import runs
from vaekit.arch.from_module import ParamRow, parameter_table
from vaekit.config import format_duration
from vaekit.data.load import check_source, same_source, user_data_path
from vaekit.errors import CheckpointError, ConfigError
from vaekit.evaluate.eval_json import check_evaluated_data, read_eval
from vaekit.evaluate.run import evaluate_run, load_test_set
from vaekit.report import visualize
from vaekit.report.kinds import REPORT_K, ReportKind, ReportOptions, register_report, unused_evaluation
from vaekit.report.outputs import HTML_GENERATOR, check_run_outputs, write_run_report
from vaekit.report.page import STYLE, esc, figure, fmt, table
from vaekit.version import __version__

# (field, label, unit or meaning) of the eval table, in order
EVAL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("test_nll", "-log p(x), importance-weighted estimate (-L_k)", "nats per image"),
    ("bits_per_dim", "-log p(x) per dimension", "bits per dimension"),
    ("test_neg_elbo", "-ELBO", "nats per image"),
    ("test_recon", "reconstruction term -E_q[log p(x|z)]", "nats per image"),
    ("test_kl", "KL(q(z|x) || p(z))", "nats per image"),
    ("k", "importance samples k", "IWAE eq. 8"),
    ("images", "test images", ""),
    ("active_units", "active units (Cov_x E_q[z_u] > 0.01)", "of latent_dim"),
    ("latent_dim", "latent dimensions", ""),
    ("mse", "squared error of E[x|z=mu], per pixel", "mean over pixels and images"),
    ("probe_accuracy", "logistic-regression probe on latent means", "test accuracy"),
    ("probe_train_images", "probe fitted on training images", "seeded subsample"),
    ("test_nll_stderr", "standard error of test_nll over images", "nats"),
    ("dataset", "dataset", ""),
    ("data_source", "dataset file or folder", "absolute path"),
    ("binarization", "test binarization", "fixed: once, with binarization_seed"),
    ("binarization_seed", "binarization seed", ""),
    ("seed", "seed of the importance samples", ""),
    ("seconds", "evaluation time", "seconds"),
)

FIGURE_CAPTIONS: dict[str, str] = {
    "learning_curves": "Learning curves: train and validation -ELBO and KL per epoch (metrics.jsonl).",
    "reconstructions": "Test images (odd rows) over their reconstructions E[x | z = mu(x)] (even rows).",
    "samples": "Samples from the model: E[x | z] for z ~ p(z) (N(0, I), or the VampPrior's mixture; for "
               "two stochastic layers z2 ~ p(z2), z1 ~ p(z1 | z2)).",
    "interpolations": "Interpolations in latent space between pairs of test images.",
    "manifold": "The decoded manifold on a grid of prior quantiles (2-D latent).",
    "latent_space": "Latent means of test images, coloured by class.",
    "kl_per_dim": "KL per latent dimension, mean over test images; grey bars are inactive units.",
}

# ----------------------------------------------------------------------------- the page


def render(run_name: str, config: dict[str, Any], evaluation: dict[str, Any],
           metrics: Sequence[dict[str, Any]], figure_paths: dict[str, Path],
           params: tuple[list[ParamRow], str], report_seconds: float | None = None) -> str:
    """The whole report as one HTML string."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{HTML_GENERATOR}"
             f"<title>vaekit report: {esc(run_name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>vaekit report: {esc(run_name)}</h1>"]
    model, data = config.get("model", {}), config.get("data", {})
    dataset = evaluation.get("dataset", data.get("name", "?"))
    parts.append(
        "<p class='headline' id='headline'>Test -log p(x) &asymp; <b id='test-nll'>"
        f"{fmt(evaluation['test_nll'])}</b> nats per image ({fmt(evaluation['bits_per_dim'])} bits/dim) "
        f"with k = {fmt(evaluation['k'])} importance samples on {fmt(evaluation['images'])} test images "
        f"of {esc(dataset)}; "
        f"-ELBO {fmt(evaluation['test_neg_elbo'])} nats; {fmt(evaluation['active_units'])} of "
        f"{fmt(evaluation['latent_dim'])} latent units active."
        + (f" The likelihood is of {esc(evaluation['likelihood_of'])}." if evaluation.get("likelihood_of")
           else "")
        + "</p>")

    train_s = sum(float(r.get("epoch_seconds") or 0.0) for r in metrics)
    times = [("training (sum of epoch_seconds, metrics.jsonl)", format_duration(train_s),
              f"{len(metrics)} epochs"),
             ("evaluation (eval.json)", format_duration(evaluation.get("seconds") or 0.0),
              f"k = {evaluation['k']:,}, {evaluation['images']:,} images")]
    if report_seconds is not None:
        times.append(("figures and this report", format_duration(report_seconds), ""))
    parts += ["<h2 id='time'>Time spent</h2>", table(("what", "time", "note"), times)]

    parts.append("<h2 id='eval'>Evaluation</h2>")
    rows = [(label, evaluation[key], unit, key) for key, label, unit in EVAL_ROWS if key in evaluation]
    parts.append(table(("quantity", "value", "unit / protocol", "eval.json field"), rows, numeric=(1,)))
    parts.append("<p>Evaluated model: SHA-256 of model.safetensors "
                 f"<code>{esc(evaluation.get('model_sha256'))}</code>.</p>")
    parts.append("<p>-log p(x) is the importance-weighted bound -L_k = -log(1/k &sum;<sub>i</sub> "
                 "p(x|z<sub>i</sub>) p(z<sub>i</sub>) / q(z<sub>i</sub>|x)) of Burda et al. (2016, eq. 8), "
                 "an upper bound on the true NLL in expectation; published tables use k = 5,000 on the "
                 "test set binarized once with a fixed seed.</p>")

    order = ["learning_curves", "reconstructions", "samples", "interpolations", "manifold",
             "latent_space", "kl_per_dim"]
    names = [n for n in order if n in figure_paths] + [n for n in figure_paths if n not in order]
    if "learning_curves" in figure_paths:
        parts += ["<h2 id='curves'>Learning curves</h2>", figure("learning_curves", figure_paths,
                                                                    FIGURE_CAPTIONS)]
    if metrics:
        keys = [k for k in ("epoch", "train_neg_elbo", "val_neg_elbo", "val_recon", "val_kl", "lr",
                            "epoch_seconds") if any(k in r for r in metrics)]
        shown = list(metrics) if len(metrics) <= 30 else list(metrics[:10]) + list(metrics[-20:])
        parts.append(table(keys, [[r.get(k) for k in keys] for r in shown], numeric=range(len(keys))))
    parts.append("<h2 id='figures'>Figures</h2>")
    captions = dict(FIGURE_CAPTIONS)
    if int(evaluation.get("latent_dim", 2)) > 2:
        captions["latent_space"] = (f"PCA projection of the {evaluation['latent_dim']}-D latent means of "
                                    "test images, coloured by class.")
    parts += [figure(n, figure_paths, captions) for n in names if n != "learning_curves"]

    rows_p, source = params
    parts += [f"<h2 id='params'>Parameters: {sum(r.params for r in rows_p):,} in all</h2>",
              f"<p>From {esc(source)}.</p>",
              table(("part", "layer", "output shape", "params", "MACs"),
                    [(r.part, r.layer, r.output_shape, r.params, r.macs) for r in rows_p], numeric=(3, 4))]

    parts.append("<h2 id='config'>Config (config.json)</h2>")
    cfg_rows = [(section, key, json.dumps(value) if not isinstance(value, str) else value)
                for section, entries in config.items() if isinstance(entries, dict)
                for key, value in entries.items()]
    parts.append(table(("section", "key", "value"), cfg_rows))
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p><small>vaekit {esc(__version__)}, written {esc(stamp)}; model "
                 f"{esc(model.get('kind', '?'))}, eval.json model_sha256 "
                 f"<code>{esc(str(evaluation.get('model_sha256', ''))[:16])}</code>.</small></p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- a run


def write_vae_report(run_dir: Path, options: ReportOptions) -> Path:
    """RUN_DIR/figures/*.png and RUN_DIR/report.html of a VAE run; returns the report's path.

    Uses RUN_DIR/eval.json when it belongs to the run's model (same SHA-256 of model.safetensors);
    when it is missing, evaluates with `options.k` samples first (or, with evaluate_missing=False,
    says so). The model evaluates and draws the figures on `options.where`."""
    with runs.locked(run_dir):  # one writer: not while the run trains or is evaluated elsewhere
        return _write_report(run_dir, options)


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file or folder: the same path, there or not, or one file."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _evaluated_on(name: str, evaluation: dict[str, Any], own: str) -> bool:
    """Whether the dataset `name` (a name or path, as `load_dataset` takes it) is the one eval.json
    was computed on: its `dataset` (else the run's `own`), and for a user's file or folder its
    `data_source` (an eval.json written before it had one: the file's name)."""
    evaluated, source = evaluation.get("dataset") or own, evaluation.get("data_source")
    path = user_data_path(name)
    if path is None:
        return source is None and name == evaluated
    if source is not None:
        return _same_file(path, source)
    return (Path(path).name or name) == evaluated


def report_dataset(run_dir: Path, asked: str | None, evaluation: dict[str, Any] | None) -> str | None:
    """The dataset whose test images the figures are drawn from, so that they and the eval table
    are of the same images: `asked` (--dataset; None: the run's own) when there is no eval.json
    yet and the report evaluates on it, else the set eval.json was computed on. A ConfigError when
    `asked` is another set, or none is asked and eval.json's is a file or folder no longer there
    (or of an eval.json that does not hold its path). Says nothing: the caller notes the set it
    returns for no `asked` once every check has passed (`_write_report`)."""
    if evaluation is None:
        return asked
    own = runs.read_config(run_dir, "vae").data.name
    evaluated, source = evaluation.get("dataset") or own, evaluation.get("data_source")
    if asked is not None and not _evaluated_on(asked, evaluation, own):
        reader = check_source(asked)  # a set or a file that is not there is named as such, not sent
        if reader is not None:  # to `vaekit eval`
            reader.check(asked)
        raise ConfigError(f"--dataset {asked} is not {source or evaluated}, the dataset that "
                          f"{run_dir / runs.EVAL} was computed on and whose numbers the report shows; run "
                          f"`vaekit eval {run_dir} --dataset {asked}` first for a report on {asked}, or "
                          f"leave --dataset out for one on {evaluated}.")
    if asked is not None or _evaluated_on(own, evaluation, own):
        return asked
    where = source if source is not None else evaluated if user_data_path(evaluated) is None else None
    if where is None or not (source is None or os.path.exists(source)):
        gone = "which is no longer there" if source else "whose path it does not hold"
        raise ConfigError(f"{run_dir / runs.EVAL} was computed on {source or evaluated}, {gone}, not on "
                          f"{own} that the run was trained on; give --dataset with its path for a report "
                          f"on it, or run `vaekit eval {run_dir}` first for one on {own}.")
    return where


def _write_report(run_dir: Path, o: ReportOptions) -> Path:
    seed = 0 if o.seed is None else o.seed
    runs.check_eval_not_link(run_dir, "vaekit eval")  # the fix it would send the user to refuses it
    evaluation = read_eval(run_dir)
    dataset = report_dataset(run_dir, o.dataset, evaluation)
    model, config, x, labels, ds = load_test_set(run_dir, dataset, o.data_dir, device=o.where)
    metrics = runs.model_metrics(run_dir)  # every run file is read, and checked, before anything is written
    check_run_outputs(run_dir)  # before eval.json is written
    if evaluation is not None:
        own = dataset is None or same_source(dataset, config.data.name)
        check_evaluated_data(run_dir, evaluation, ds, dataset or config.data.name, own)
        unused_evaluation(run_dir, o, "vaekit eval")
        if o.dataset is None and dataset is not None:  # noted only once nothing is refused
            o.log(f"{run_dir}: {runs.EVAL} is of {dataset}; the figures are drawn from its test images")
    else:
        if not o.evaluate_missing:
            raise CheckpointError(f"{run_dir} has no eval.json yet; run `vaekit eval {run_dir}` first.")
        k = REPORT_K if o.k is None else o.k
        o.log(f"{run_dir}: no eval.json yet; evaluating with k = {k:,} first "
              f"(`vaekit eval {run_dir}` uses the published k = 5,000)")
        evaluation = evaluate_run(run_dir, k=k, limit=o.limit, seed=seed, data_dir=o.data_dir,
                                  dataset=o.dataset, progress=o.progress, device=o.where)
    t1 = time.perf_counter()
    paths = visualize.write_figures(model, x, runs.figures_dir(run_dir), labels, ds.classes, metrics,
                                    evaluation, seed)
    page = render(run_dir.resolve().name, config.to_dict(), evaluation, metrics, paths,
                  parameter_table(model), report_seconds=time.perf_counter() - t1)
    return write_run_report(run_dir, page)


register_report(ReportKind(runs.DEFAULT, write_vae_report))
