"""A classifier run on its test set: how often it is right, how sure we can be of that, where it
goes wrong, and what it costs; written to RUN_DIR/eval.json, as `vaekit.evaluate.run` does for a VAE.

    evaluate_classifier(run_dir)   accuracy with its 95% Wilson interval, the per-class table, the
                                   confusion matrix, test loss, params and MACs, the most
                                   confidently wrong images; writes eval.json (under the run lock)
    read_classifier_eval(run_dir)  eval.json if it is a classifier's, whole, and of the current
                                   model (same SHA-256 of model.safetensors); None if missing or
                                   stale; one that is edited is refused, naming the field
    load_split(run, split)         the images (as the model sees them), labels and class names

The numbers, over the N images x_i with labels y_i of the split and the model's logits f(x_i):

    prediction    yhat_i = argmax_k f(x_i)_k,  confidence c_i = max_k softmax(f(x_i))_k
    accuracy      (1/N) sum_i [yhat_i = y_i], with the Wilson score interval (`metrics.wilson_interval`)
    test loss     (1/N) sum_i -log softmax(f(x_i))_{y_i}, nats per image (no label smoothing)
    confusion     C[t, p] = #{i : y_i = t, yhat_i = p}: row sums are the class counts
    per class t   recall C[t, t] / sum_p C[t, p] ("accuracy" of the class), precision
                  C[t, t] / sum_s C[s, t]; null where the denominator is 0
    params, MACs  sums over the network's `vaekit arch` rows (per image)
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaekit import runs
from vaekit.classify.config import TASK, ClassifierConfig
from vaekit.classify.data import network_input
from vaekit.classify.loss import cross_entropy
from vaekit.classify.metrics import Z95, confusion, logits, wilson_interval
from vaekit.classify.models import config_rows, params_and_macs
from vaekit.data.dataset import check_limit
from vaekit.data.load import known_class_names, known_image_shape
from vaekit.device import set_threads
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.evaluate.eval_json import FLOAT32_MAX
from vaekit.train.resume import check_trained_data

WRONG_SHOWN = 16  # the most confidently wrong images kept in eval.json (and shown by the report)
SPLITS = ("train", "val", "test")
CI_METHOD = "Wilson score interval, z = 1.95996 (two-sided 95%)"  # eval.json's ci_method

# field -> the JSON type it must have (int: an integer, not a bool; float: any number)
REQUIRED_FIELDS: dict[str, type] = {
    "task": str, "split": str, "dataset": str, "model_sha256": str,
    "images": int, "correct": int, "classes": int, "params": int, "macs": int,
    "accuracy": float, "test_loss": float, "seconds": float,
    "accuracy_ci95": list, "per_class": list, "confusion": list, "most_wrong": list,
}
PER_CLASS_FIELDS: dict[str, type] = {"class": int, "name": str, "images": int, "correct": int,
                                     "predicted": int}
WRONG_FIELDS: dict[str, type] = {"index": int, "true": int, "predicted": int, "confidence": float}


def load_split(run: runs.Run, split: str = "test", data_dir: str | None = None,
               limit: int | None = None) -> tuple[Tensor, Tensor, tuple[str, ...], str]:
    """(x, y, class names, dataset name) of the first `limit` images of a split of the run's
    dataset: x float32 (N, C, H, W) = pixel / 255, resized to the run's side as in training; y
    int64 (N,). A CheckpointError if the data changed since the run was trained on it
    (`check_trained_data`: the checkpoint's SHA-256 of its test split); a DataError (one sentence)
    if the split has no labels, images of another shape than
    the network's input, or a label the network has no logit for; a `limit` past the split's
    images is a ConfigError (`check_limit`)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 image, got {limit}.")
    d, m = run.config.data, run.config.model
    ds = runs.load_run_data(d if data_dir is None else replace(d, data_dir=data_dir), run.path)
    check_trained_data(run.path, ds, d.name, f"train a run on it with `vaekit classify --data {d.name}`")
    part = getattr(ds, split)
    if part.labels is None:
        raise DataError(f"{d.name}: the {split} split has no labels, so the accuracy of {run.path} cannot "
                        "be measured on it.")
    if len(part) == 0:
        raise DataError(f"{d.name}: the {split} split has no images to evaluate {run.path} on.")
    check_limit(limit, len(part), d.name, split)
    x = network_input(part.images[:limit], d.side, d.resize)  # (N, C, H, W)
    y = part.labels[:limit].to(torch.int64)
    if tuple(x.shape[1:]) != tuple(m.image_shape):
        raise DataError(f"{d.name} gives images of {'x'.join(map(str, x.shape[1:]))}, but the network of "
                        f"{run.path} takes {'x'.join(map(str, m.image_shape))}.")
    bad = y[(y < 0) | (y >= m.classes)]
    if bad.numel():
        raise DataError(f"{d.name}: the {split} split has label {int(bad[0])}, but the network of "
                        f"{run.path} has logits for classes 0..{m.classes - 1} only.")
    names = tuple(ds.classes or ())
    names = tuple(names[k] if k < len(names) else str(k) for k in range(m.classes))
    return x, y, names, ds.name


def _ratio(k: int, n: int) -> float | None:
    return k / n if n else None


def summarize(out: Tensor, y: Tensor, names: Sequence[str], k_wrong: int = WRONG_SHOWN) -> dict[str, Any]:
    """Every number of eval.json that comes from the logits `out` (N, K) of images labelled y (N,)."""
    classes = out.shape[1]
    pred = out.argmax(1)  # (N,)
    confidence = out.double().softmax(1).max(1).values  # (N,): softmax probability of the prediction
    right = pred == y
    n, correct = int(y.shape[0]), int(right.sum())
    matrix = confusion(pred, y, classes)  # (K, K): row = true class
    per_class = []
    for t in range(classes):
        images, predicted, hit = int(matrix[t].sum()), int(matrix[:, t].sum()), int(matrix[t, t])
        per_class.append({"class": t, "name": str(names[t]), "images": images, "correct": hit,
                          "predicted": predicted, "accuracy": _ratio(hit, images),
                          "precision": _ratio(hit, predicted)})
    wrong = torch.nonzero(~right).flatten()
    order = wrong[torch.argsort(confidence[wrong], descending=True, stable=True)][:k_wrong]
    most_wrong = [{"index": int(i), "true": int(y[i]), "predicted": int(pred[i]),
                   "confidence": float(confidence[i])} for i in order]
    lo, hi = wilson_interval(correct, n, Z95)
    return {
        "accuracy": correct / n, "correct": correct, "images": n, "accuracy_ci95": [lo, hi],
        "ci_method": CI_METHOD,
        "test_loss": float(cross_entropy(out, y).double().mean()), "classes": classes,
        "per_class": per_class, "confusion": matrix.tolist(), "most_wrong": most_wrong,
    }


def evaluate_classifier(run_dir: str | Path, split: str = "test", data_dir: str | None = None,
                        limit: int | None = None, *, threads: int = 0) -> dict[str, Any]:
    """Evaluate a classifier run's best model (model.safetensors) on the first `limit` images of a
    split (default: all of the test set) and write RUN_DIR/eval.json atomically; return its dict.
    The run directory is held for writing (`runs.locked`) from the first read of the model to the
    write. A VAE run, a missing or damaged model is a CheckpointError (one sentence). `threads`:
    torch CPU threads (0 = the idle cores), restored afterwards."""
    run_dir = Path(run_dir)
    with runs.locked(run_dir):
        t0 = time.perf_counter()
        run = runs.load_run(run_dir, TASK)
        runs.check_eval_replaceable(run_dir, "vaekit classify eval")
        fingerprint = runs.model_fingerprint(run_dir)
        x, y, names, dataset = load_split(run, split, data_dir, limit)
        previous = torch.get_num_threads()
        used = set_threads(threads)
        try:
            result = summarize(logits(run.model, x), y, names)
        finally:
            torch.set_num_threads(previous)
        seconds = time.perf_counter() - t0  # the model and the data read, and the network run
        params, macs = params_and_macs(run.model.rows)
        result = {"task": TASK, "split": split, "dataset": dataset, **result, "params": params, "macs": macs,
                  "model_sha256": fingerprint, "seconds": seconds, "threads": used}
        runs.write_eval(run_dir, result, "vaekit classify eval")
        return result


# ----------------------------------------------------------------------------- reading it back


def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


TYPE_WORDS = {str: "text", int: "an integer", float: "a finite number", list: "a list"}
NEVER_NEGATIVE = ("test_loss", "params", "macs", "seconds")
RATIO_ROUNDING = 1e-12  # a ratio of two counts as eval.json holds it, against the counts' own
INTERVAL_ROUNDING = 1e-9  # accuracy_ci95, against `wilson_interval` of the counts
# test_loss against its floor, (images - correct) / images * ln 2: a wrong image's true class has
# softmax probability at most 1/2 (at most the predicted one's); its terms are float32
LOSS_ROUNDING = 1e-6


def _shown(value: Any) -> str:
    """A JSON value as a sentence quotes it: text and lists as JSON (cut at 40 characters), a
    float to 6 significant digits that still reads as a float (1.0, not 1)."""
    if not isinstance(value, float):
        return json.dumps(value)[:40]
    text = f"{value:.6g}"
    return text if any(c in text for c in ".enai") else f"{text}.0"


def _missing_or_mistyped(obj: Any, fields: dict[str, type], where: str = "") -> str | None:
    """Which of `fields` `obj` lacks or holds as another JSON type ('per_class[3].images is
    missing'), with `where` before the field's name; None if every one is there, of its type."""
    if not isinstance(obj, dict):
        return f"{where.rstrip('.') or 'the file'} must be a JSON object, got {_shown(obj)}"
    for field, kind in fields.items():
        if field not in obj:
            return f"{where}{field} is missing"
        if not _is(obj[field], kind):
            return f"{where}{field} must be {TYPE_WORDS[kind]}, got {_shown(obj[field])}"
    return None


def _ratio_differs(value: Any, k: int, n: int) -> bool:
    """Whether `value` is not k / n (None where n is 0), as `summarize` writes it."""
    expected = _ratio(k, n)
    if expected is None or value is None:
        return value is not expected
    return not _is(value, float) or abs(value - expected) >= RATIO_ROUNDING


def _wrong_problem(wrong: list[Any], n: int, correct: int, matrix: list[list[int]]) -> str | None:
    """most_wrong of an eval.json of `n` images, `correct` of them right, whose confusion matrix
    is `matrix` (K x K): as many entries as `summarize` keeps, the WRONG_SHOWN most confident of
    the wrong ones (all of them where fewer are wrong), each a wrong
    prediction of a distinct image of the split, its (true, predicted) a cell of the matrix that
    counts it (no cell listed more often than its count), with a softmax confidence in [1/K, 1]
    (the top probability of K classes is at least 1/K), most confident first, as `summarize`
    writes them; the sentence naming the first entry that is not."""
    k = len(matrix)
    if len(wrong) != min(WRONG_SHOWN, n - correct):
        return (f"most_wrong lists {len(wrong)} images, but {n - correct:,} of the {n:,} are wrong, of which "
                f"`vaekit classify eval` keeps the {min(WRONG_SHOWN, n - correct)} most confident")
    seen: set[int] = set()
    listed: Counter[tuple[int, int]] = Counter()
    for i, w in enumerate(wrong):
        problem = _missing_or_mistyped(w, WRONG_FIELDS, f"most_wrong[{i}].")
        if problem is not None:
            return problem
        true, predicted, confidence = w["true"], w["predicted"], w["confidence"]
        if not (0 <= w["index"] < n and 0 <= true < k and 0 <= predicted < k):
            return (f"most_wrong[{i}] names an image or a class outside the split's {n:,} images and {k} "
                    "classes")
        if true == predicted or not (1 - RATIO_ROUNDING) / k <= confidence <= 1:
            return (f"most_wrong[{i}] is not a wrong prediction with a confidence in [1/{k}, 1], the top "
                    f"softmax probability of {k} classes (true {true}, predicted {predicted}, confidence "
                    f"{_shown(confidence)})")
        if w["index"] in seen:
            return f"most_wrong[{i}] lists image {w['index']} again"
        seen.add(w["index"])
        listed[true, predicted] += 1
        if listed[true, predicted] > matrix[true][predicted]:
            return (f"most_wrong[{i}] is an image of class {true} predicted {predicted}, but the confusion "
                    f"matrix counts {matrix[true][predicted]} such image(s)")
        if i and confidence > wrong[i - 1]["confidence"]:
            return (f"most_wrong[{i}] has confidence {_shown(confidence)}, above most_wrong[{i - 1}]'s "
                    f"{_shown(wrong[i - 1]['confidence'])}, but the list is most confident first")
    return None


def eval_problem(result: Any, config: ClassifierConfig | None = None) -> str | None:
    """What makes `result` other than a classifier's eval.json whose parts agree, naming the field
    ('accuracy is 0.9, but correct / images is 102 / 180 = 0.566667'); None where nothing does.
    Held: every required field, of its type; the task; counts and losses that are not negative, a
    test_loss within float32's range (its per-image terms are float32) and at least ln 2 for each
    wrong image over all of them; threads >= 1 and the
    ci_method `summarize` writes, where there; a K x K confusion matrix of counts summing to
    `images` with `correct` on its diagonal; accuracy = correct / images and its Wilson interval
    recomputed from the counts; one per-class row per class whose counts and ratios are the
    matrix's; most_wrong entries that are wrong predictions of distinct images in the split, each
    counted by the matrix, with a softmax confidence in [1/K, 1], most confident first. With the
    run's `config` (its config.json) also what it makes certain (`_run_problem`): the dataset,
    params, macs and class names."""
    problem = _missing_or_mistyped(result, REQUIRED_FIELDS)
    if problem is not None:
        return problem
    problem = _written_problem(result)
    if problem is not None:
        return problem
    if result["task"] != TASK:
        return f"task is {_shown(result['task'])}, not {TASK!r}"
    if result["split"] not in SPLITS:
        return f"split is {_shown(result['split'])}, not one of {', '.join(SPLITS)}"
    k, n, correct = result["classes"], result["images"], result["correct"]
    if k < 1 or n < 1:
        return f"{'classes' if k < 1 else 'images'} is {min(k, n)}, but an evaluation counts at least one"
    if not 0 <= correct <= n:
        return f"correct is {correct:,}, but images is {n:,}"
    for field in NEVER_NEGATIVE:
        if result[field] < 0:
            return f"{field} is {_shown(result[field])}, but it is never negative"
    floor = (n - correct) / n * math.log(2)
    if result["test_loss"] < floor * (1 - LOSS_ROUNDING):
        return (f"test_loss is {_shown(result['test_loss'])}, but {n - correct:,} of {n:,} images are wrong, "
                f"each with a cross-entropy of at least ln 2, so it is at least {floor:.6g}")
    matrix = result["confusion"]
    if len(matrix) != k:
        return f"classes is {k}, but confusion has {len(matrix)} rows"
    if not (len(matrix) == k and all(isinstance(r, list) and len(r) == k
                                     and all(_is(c, int) and c >= 0 for c in r) for r in matrix)):
        return f"confusion must be a {k} x {k} matrix of counts (classes is {k})"
    if sum(map(sum, matrix)) != n:
        return f"confusion sums to {sum(map(sum, matrix)):,}, but images is {n:,}"
    if sum(matrix[t][t] for t in range(k)) != correct:
        diagonal = sum(matrix[t][t] for t in range(k))
        return f"confusion's diagonal sums to {diagonal:,}, but correct is {correct:,}"
    if _ratio_differs(result["accuracy"], correct, n):
        return (f"accuracy is {_shown(result['accuracy'])}, but correct / images is {correct:,} / {n:,} = "
                f"{correct / n:.6g}")
    ci = result["accuracy_ci95"]
    lo, hi = wilson_interval(correct, n, Z95)
    if not (len(ci) == 2 and all(_is(v, float) for v in ci)
            and abs(ci[0] - lo) < INTERVAL_ROUNDING and abs(ci[1] - hi) < INTERVAL_ROUNDING):
        return (f"accuracy_ci95 is {_shown(ci)}, but the Wilson interval of {correct:,} / {n:,} is "
                f"[{lo:.6g}, {hi:.6g}]")
    rows = result["per_class"]
    if len(rows) != k:
        return f"per_class has {len(rows)} rows, but classes is {k}"
    for t, row in enumerate(rows):
        problem = _missing_or_mistyped(row, PER_CLASS_FIELDS, f"per_class[{t}].")
        if problem is not None:
            return problem
        column = sum(matrix[s][t] for s in range(k))
        for field, value in (("class", t), ("images", sum(matrix[t])), ("correct", matrix[t][t]),
                             ("predicted", column)):
            if row[field] != value:
                return f"per_class[{t}].{field} is {row[field]:,}, but the confusion matrix says {value:,}"
        for field, of in (("accuracy", sum(matrix[t])), ("precision", column)):
            hit = matrix[t][t]
            if _ratio_differs(row.get(field), hit, of):
                return (f"per_class[{t}].{field} is {_shown(row.get(field))}, but the confusion matrix says "
                        f"{_shown(_ratio(hit, of))}")
    problem = _wrong_problem(result["most_wrong"], n, correct, matrix)
    if problem is not None:
        return problem
    return None if config is None else _run_problem(result, config)


def _written_problem(result: dict[str, Any]) -> str | None:
    """What `evaluate_classifier` cannot write whatever the run: a test_loss past float32's range
    (a mean of float32 cross-entropies), threads below 1 or not a whole number, another ci_method."""
    if abs(result["test_loss"]) > FLOAT32_MAX:
        return (f"test_loss is {_shown(result['test_loss'])}, past float32's range (magnitude at most "
                f"{FLOAT32_MAX:.6g}) of the cross-entropies it averages")
    threads = result.get("threads")
    if threads is not None and not (_is(threads, int) and threads >= 1):
        return f"threads is {_shown(threads)}, but an evaluation runs on a whole number of threads, >= 1"
    method = result.get("ci_method")
    if method is not None and method != CI_METHOD:
        return f"ci_method is {_shown(method)}, but `vaekit classify eval` writes {CI_METHOD!r}"
    return None


def _run_problem(result: dict[str, Any], config: ClassifierConfig) -> str | None:
    """What the run's config.json makes certain of its eval.json: the dataset is the run's own
    (`vaekit classify eval` evaluates on no other) where either is a set known by name, whose
    images `known_image_shape` gives; params and macs those of the network config.json builds
    (`params_and_macs` of its arch rows); classes its number of classes, and each per_class name
    the dataset's where its names are known without reading a file (`known_class_names`)."""
    trained_on, m = config.data.name, config.model
    shape = "x".join(map(str, m.image_shape or ()))
    if result["dataset"] != trained_on and (known_image_shape(result["dataset"]) is not None
                                            or known_image_shape(trained_on) is not None):
        return (f"dataset is {_shown(result['dataset'])}, but the run's network takes the {shape} images of "
                f"{trained_on}, the only data set `vaekit classify eval` evaluates it on")
    if m.classes is not None and result["classes"] != m.classes:
        return f"classes is {result['classes']}, but the run's network has {m.classes} outputs"
    params, macs = params_and_macs(config_rows(config))
    for field, count in (("params", params), ("macs", macs)):
        if result[field] != count:
            return (f"{field} is {result[field]:,}, but the network of the run's config.json has {count:,} "
                    f"({'parameters' if field == 'params' else 'multiply-accumulates per image'})")
    names = known_class_names(trained_on)
    if names is None:
        return None
    for t, row in enumerate(result["per_class"]):
        name = names[t] if t < len(names) else str(t)
        if row["name"] != name:
            return f"per_class[{t}].name is {_shown(row['name'])}, but class {t} of {trained_on} is {name!r}"
    return None


def valid_eval(result: Any) -> bool:
    """Whether `result` is a classifier's eval.json whose parts agree (`eval_problem`)."""
    return eval_problem(result) is None


def check_classifier_eval(result: Any, path: Path) -> None:
    """A CheckpointError naming the field unless `result` is a valid classifier evaluation of the
    run whose eval.json `path` is (`eval_problem` with its config.json): a file edited, or another
    program's."""
    config = runs.read_config(path.parent, TASK)
    runs.check_trained_config(path.parent, config)  # an edited config.json is named, not eval.json
    if isinstance(result, dict) and "task" not in result and "test_nll" in result:  # as check_eval says
        raise CheckpointError(f"{path}: a VAE's eval.json (of `vaekit eval`: no task, a test_nll), but the "
                              f"run is a classifier's; run `vaekit classify eval {path.parent}` to write its "
                              "own.")
    problem = eval_problem(result, config)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}; not an eval.json of `vaekit classify eval` (edited, or "
                              f"another program's); run `vaekit classify eval {path.parent}` to write it "
                              "again.")


def read_classifier_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN_DIR/eval.json if it is a valid classifier evaluation (`eval_problem`) of the current
    model (its model_sha256 is the SHA-256 of model.safetensors now); None if there is none, or it
    is of other weights (the run trained on since): evaluate again then. One that is not readable
    JSON, or whose fields are missing or disagree (an edit, another program's file) is the
    CheckpointError of `vaekit.runs.read_eval` naming it, never taken for none and written over."""
    try:
        return runs.read_eval(run_dir, check_classifier_eval, "vaekit classify eval")
    except runs.StaleEval:
        return None
