"""report.html of a classifier run (`vaekit classify`), in the VAE report's self-contained style
(`vaekit.report.page`: the style sheet, escaping, tables and embedded images): the test accuracy
with its 95% interval, the per-class table, the confusion matrix, the most confidently wrong test
images, the learning curves, the network's layers with their receptive fields, and the config.

    write_classifier_figures(...)   RUN_DIR/figures/*.png of an evaluation and metrics.jsonl
    render_classifier(...)          the page as one HTML string
    write_classifier_report(run)    both, under the run lock; evaluates first when eval.json is
                                    missing or belongs to other weights

registered as the report of 'classify' runs (`vaekit.report.kinds`), which refuses the options
that are for VAE runs only (`refuse_vae_options`).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from vaekit import runs
from vaekit.arch.stack import LayerRow, totals
from vaekit.arch.table import FIELD_NOTE, MAC_NOTE, dims
from vaekit.classify.config import TASK
from vaekit.classify.evaluate import evaluate_classifier, load_split, read_classifier_eval
from vaekit.config import format_duration
from vaekit.device import format_bytes
from vaekit.errors import CheckpointError, ConfigError
from vaekit.report import figures
from vaekit.report.kinds import ReportKind, ReportOptions, register_report, unused_evaluation
from vaekit.report.outputs import HTML_GENERATOR, check_run_outputs, write_run_report
from vaekit.report.page import STYLE, esc, figure, fmt, table
from vaekit.version import __version__

CAPTIONS: dict[str, str] = {
    "confusion": "Confusion matrix of the test set: row = true class, column = predicted class; each "
                 "cell holds a count and is shaded by its share of the row (the diagonal is each "
                 "class's accuracy).",
    "most_wrong": "The test images the network got wrong with the highest confidence (softmax "
                  "probability of its prediction), most confident first.",
    "learning_curves": "Learning curves: train and validation cross-entropy and accuracy per epoch "
                       "(metrics.jsonl).",
}
METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds")


def percent(value: float | None) -> str | None:
    """0.9123 -> '91.23%'; None (no images to take a share of) stays None: a dash in a table."""
    return None if value is None else f"{100 * value:.2f}%"


def write_classifier_figures(evaluation: dict[str, Any], wrong_images: Tensor, names: Sequence[str],
                             metrics: Sequence[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """The figures of a classifier run into `out_dir` (RUN_DIR/figures): name -> path. `wrong_images`
    (M, C, H, W) are the images of evaluation["most_wrong"], in its order."""
    out = Path(out_dir)
    paths = {"confusion": figures.confusion_figure(evaluation["confusion"], names, out / "confusion.png",
                                                   title=f"confusion matrix, {evaluation['images']:,} "
                                                   f"{evaluation['split']} images")}
    wrong = evaluation["most_wrong"]
    if wrong:
        captions = [f"#{w['index']} true {names[w['true']]}\npred {names[w['predicted']]} "
                    f"{100 * w['confidence']:.1f}%" for w in wrong]
        paths["most_wrong"] = figures.captioned_grid(wrong_images, captions, out / "most_wrong.png",
                                                     title="most confidently wrong test images")
    if metrics:
        paths["learning_curves"] = figures.classifier_curves(metrics, out / "learning_curves.png")
    return paths


def layer_table(rows: Sequence[LayerRow]) -> str:
    """The network's `vaekit arch` rows as an HTML table, with the totals (as `arch.table.stack_table`)."""
    body: list[tuple[Any, ...]] = [
        (r.index, r.layer, dims(r.output_shape), r.params, r.macs, dims(r.receptive_field), dims(r.jump),
         format_bytes(r.output_bytes, 1)) for r in rows]
    sums = totals(rows)
    body.append(("", "total", "", sums["total_params"], sums["total_macs"], "", "",
                 format_bytes(sums["total_output_bytes"], 1)))
    return (table(("#", "layer", "output", "params", "MACs", "receptive field", "jump", "memory"), body,
                  numeric=(0, 3, 4)).replace("<table>", "<table id='layer-table'>", 1)
            + f"<p><small>{esc(MAC_NOTE)} {esc(FIELD_NOTE)}</small></p>")


def render_classifier(run_name: str, config: dict[str, Any], evaluation: dict[str, Any],
                      metrics: Sequence[dict[str, Any]], figure_paths: dict[str, Path],
                      rows: Sequence[LayerRow], report_seconds: float | None = None) -> str:
    """The whole classifier report as one HTML string."""
    ev, split = evaluation, esc(evaluation["split"])
    lo, hi = ev["accuracy_ci95"]
    names = {r["class"]: r["name"] for r in ev["per_class"]}
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{HTML_GENERATOR}"
             f"<title>vaekit report: {esc(run_name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>vaekit report: {esc(run_name)} (classifier)</h1>",
             f"<p class='headline' id='headline'>{split.capitalize()} accuracy <b id='accuracy'>"
             f"{percent(ev['accuracy'])}</b> (95% CI {100 * lo:.2f}&ndash;{100 * hi:.2f}%, Wilson) on "
             f"{fmt(ev['images'])} {split} images of {esc(ev['dataset'])}: {fmt(ev['correct'])} right; "
             f"{split} loss {ev['test_loss']:.4f} nats per image; {fmt(ev['params'])} parameters, "
             f"{fmt(ev['macs'])} multiply-adds per image.</p>"]

    train_s = sum(float(r.get("epoch_seconds") or 0.0) for r in metrics)
    times = [("training (sum of epoch_seconds, metrics.jsonl)", format_duration(train_s),
              f"{len(metrics)} epochs"),
             ("evaluation (eval.json)", format_duration(ev["seconds"]), f"{ev['images']:,} images")]
    if report_seconds is not None:
        times.append(("figures and this report", format_duration(report_seconds), ""))
    parts += ["<h2 id='time'>Time spent</h2>", table(("what", "time", "note"), times)]

    parts.append("<h2 id='per-class'>Per class</h2>")
    parts.append(table(("class", "name", "images", "right", "accuracy (recall)", "predicted", "precision"),
                       [(r["class"], r["name"], r["images"], r["correct"], percent(r["accuracy"]),
                         r["predicted"], percent(r.get("precision"))) for r in ev["per_class"]],
                       numeric=(0, 2, 3, 4, 5, 6)))
    parts.append("<p>Accuracy of a class is its recall, C[t, t] / &sum;<sub>p</sub> C[t, p]; precision "
                 "is C[t, t] / &sum;<sub>s</sub> C[s, t]. The interval is Wilson's score interval "
                 "(Wilson 1927) of the proportion right, z = 1.96.</p>")

    parts.append("<h2 id='confusion'>Confusion matrix</h2>")
    parts.append(figure("confusion", figure_paths, CAPTIONS))
    k = len(ev["confusion"])
    parts.append(table(("true \\ predicted", *(str(names[p]) for p in range(k))),
                       [(names[t], *ev["confusion"][t]) for t in range(k)], numeric=range(1, k + 1))
                 .replace("<table>", "<table id='confusion-table'>", 1))

    parts.append("<h2 id='mistakes'>Most confidently wrong</h2>")
    if "most_wrong" in figure_paths:
        parts.append(figure("most_wrong", figure_paths, CAPTIONS))
        parts.append(table(("image index", "true", "predicted", "confidence"),
                           [(w["index"], names[w["true"]], names[w["predicted"]], percent(w["confidence"]))
                            for w in ev["most_wrong"]], numeric=(0, 3)))
    else:
        parts.append(f"<p>No {split} image is classified wrong.</p>")

    parts.append("<h2 id='curves'>Learning curves</h2>")
    if "learning_curves" in figure_paths:
        parts.append(figure("learning_curves", figure_paths, CAPTIONS))
        keys = [key for key in METRIC_KEYS if any(key in r for r in metrics)]
        shown = list(metrics) if len(metrics) <= 30 else list(metrics[:10]) + list(metrics[-20:])
        parts.append(table(keys, [[r.get(key) for key in keys] for r in shown], numeric=range(len(keys))))
    else:
        parts.append("<p>No metrics.jsonl rows: the run has not finished an epoch.</p>")

    parts.append(f"<h2 id='layers'>Layers: {fmt(ev['params'])} parameters</h2>")
    shape = config.get("model", {}).get("image_shape") or ()
    parts.append(f"<p>Input {esc(dims(shape))} (C x H x W); the table of "
                 f"<code>vaekit arch</code> for these layers.</p>")
    parts.append(layer_table(rows))

    parts.append("<h2 id='config'>Config (config.json)</h2>")
    parts.append(table(("section", "key", "value"), [
        (section, key, value if isinstance(value, str) else json.dumps(value))
        for section, entries in config.items() if isinstance(entries, dict)
        for key, value in entries.items()]))
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p><small>vaekit {esc(__version__)}, written {esc(stamp)}; evaluated model: SHA-256 of "
                 f"model.safetensors <code>{esc(ev['model_sha256'])}</code>.</small></p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_classifier_report(run_dir: str | Path, data_dir: str | None = None, limit: int | None = None,
                            evaluate_missing: bool = True, log: Callable[[str], None] = print) -> Path:
    """RUN_DIR/figures/*.png and RUN_DIR/report.html of a classifier run; returns the report's path.

    Uses RUN_DIR/eval.json when it is a classifier's and belongs to the run's model; otherwise
    evaluates the test set first (`limit`: its first N images), or with evaluate_missing=False
    says so. Everything happens under the run lock, and every input (config, model, metrics,
    eval.json, the images) is read and checked before the first figure is written."""
    run_dir = Path(run_dir)
    with runs.locked(run_dir):
        run = runs.load_run(run_dir, TASK)
        metrics = runs.model_metrics(run_dir)
        runs.check_eval_not_link(run_dir, "vaekit classify eval")  # never evaluated for nothing
        evaluation = read_classifier_eval(run_dir)
        check_run_outputs(run_dir)  # before eval.json is written
        # the images, the data checked against the run's (`load_split`) before anything is evaluated
        x, _, names, _ = load_split(run, evaluation["split"] if evaluation is not None else "test", data_dir)
        if evaluation is not None:
            unused_evaluation(run_dir, ReportOptions(limit=limit), "vaekit classify eval")
        else:
            if not evaluate_missing:
                raise CheckpointError(f"{run_dir} has no eval.json of its current model; run "
                                      f"`vaekit classify eval {run_dir}` first.")
            log(f"{run_dir}: no eval.json of the current model yet; evaluating the test set first")
            evaluation = evaluate_classifier(run_dir, data_dir=data_dir, limit=limit)
        t1 = time.perf_counter()
        x = x[: evaluation["images"]]  # the images eval.json counted; fewer now is refused below
        if x.shape[0] != evaluation["images"]:
            raise CheckpointError(f"{run_dir / runs.EVAL} was computed on {evaluation['images']:,} "
                                  f"{evaluation['split']} images, but the dataset now has {x.shape[0]:,}; "
                                  f"run `vaekit classify eval {run_dir}` again.")
        wrong = x[[w["index"] for w in evaluation["most_wrong"]]]  # (M, C, H, W)
        paths = write_classifier_figures(evaluation, wrong, names, metrics, runs.figures_dir(run_dir))
        page = render_classifier(run_dir.resolve().name, run.config.to_dict(), evaluation, metrics, paths,
                                 run.model.rows, report_seconds=time.perf_counter() - t1)
        return write_run_report(run_dir, page)


def refuse_vae_options(run_dir: Path, options: ReportOptions) -> None:
    """--k, --seed, --dataset and --device are for VAE runs: a classifier run draws no samples, and
    is reported on its own test set, on the CPU (a ConfigError saying so)."""
    for flag, given in (("--k", options.k), ("--seed", options.seed)):
        if given is not None:
            raise ConfigError(f"{flag} is for VAE runs; {run_dir} holds a classifier run, whose evaluation "
                              "and figures draw no samples.")
    if options.dataset is not None:
        raise ConfigError(f"--dataset is for VAE runs; {run_dir} holds a classifier run, which is "
                          "reported on its own test set.")
    if options.where.type != "cpu":
        raise ConfigError(f"--device {options.device} is for VAE runs; {run_dir} holds a classifier run, "
                          "which is reported on the CPU.")


def _write(run_dir: Path, options: ReportOptions) -> Path:
    return write_classifier_report(run_dir, data_dir=options.data_dir, limit=options.limit,
                                   evaluate_missing=options.evaluate_missing, log=options.log)


register_report(ReportKind(TASK, _write, refuse_vae_options))
