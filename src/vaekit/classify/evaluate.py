"""A classifier run on its test set: how often it is right, how sure we can be of that, where it
goes wrong, and what it costs; written to RUN_DIR/eval.json, as `vaekit.evaluate.run` does for a VAE.

    evaluate_classifier(run_dir)   accuracy with its 95% Wilson interval, the per-class table, the
                                   confusion matrix, test loss, params and MACs, the most
                                   confidently wrong images; writes eval.json (under the run lock)
    read_classifier_eval(run_dir)  eval.json if it is a classifier's, whole, and of the current
                                   model (same SHA-256 of model.safetensors), else None
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

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaekit import runs
from vaekit.classify.config import TASK
from vaekit.classify.data import network_input
from vaekit.classify.loss import cross_entropy
from vaekit.classify.metrics import Z95, confusion, logits, wilson_interval
from vaekit.data.dataset import check_limit
from vaekit.data.load import load_configured
from vaekit.device import set_threads
from vaekit.errors import CheckpointError, ConfigError, DataError

EVAL_JSON = runs.EVAL
WRONG_SHOWN = 16  # the most confidently wrong images kept in eval.json (and shown by the report)
SPLITS = ("train", "val", "test")

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
    int64 (N,). DataError (one sentence) if the split has no labels, images of another shape than
    the network's input, or a label the network has no logit for; a `limit` past the split's
    images is a ConfigError (`check_limit`)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 image, got {limit}.")
    d, m = run.config.data, run.config.model
    ds = load_configured(d if data_dir is None else replace(d, data_dir=data_dir))
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
        "ci_method": "Wilson score interval, z = 1.95996 (two-sided 95%)",
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
        fingerprint = runs.model_fingerprint(run_dir)
        x, y, names, dataset = load_split(run, split, data_dir, limit)
        previous = torch.get_num_threads()
        used = set_threads(threads)
        try:
            result = summarize(logits(run.model, x), y, names)
        finally:
            torch.set_num_threads(previous)
        seconds = time.perf_counter() - t0  # the model and the data read, and the network run
        rows = run.model.rows
        result = {"task": TASK, "split": split, "dataset": dataset, **result,
                  "params": sum(r.params for r in rows), "macs": sum(r.macs for r in rows),
                  "model_sha256": fingerprint, "seconds": seconds, "threads": used}
        runs.write_json_atomic(run_dir / EVAL_JSON, result)
        return result


# ----------------------------------------------------------------------------- reading it back


def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def _fields(obj: Any, fields: dict[str, type]) -> bool:
    return isinstance(obj, dict) and all(f in obj and _is(obj[f], t) for f, t in fields.items())


def valid_eval(result: Any) -> bool:
    """Whether `result` is a classifier's eval.json whose parts agree: every required field of its
    type, a K x K confusion matrix of counts summing to `images` with `correct` on its diagonal,
    accuracy = correct / images inside its interval, one per-class row per class consistent with
    the matrix, and most_wrong entries that are wrong predictions of images in the split."""
    if not _fields(result, REQUIRED_FIELDS) or result["task"] != TASK:
        return False
    k, n, correct = result["classes"], result["images"], result["correct"]
    matrix, ci = result["confusion"], result["accuracy_ci95"]
    if k < 1 or n < 1 or not (len(matrix) == k and all(
            isinstance(r, list) and len(r) == k and all(_is(c, int) and c >= 0 for c in r) for r in matrix)):
        return False
    if sum(map(sum, matrix)) != n or sum(matrix[t][t] for t in range(k)) != correct:
        return False
    if not (len(ci) == 2 and all(_is(v, float) for v in ci) and ci[0] <= result["accuracy"] <= ci[1]
            and abs(result["accuracy"] - correct / n) < 1e-12):
        return False
    rows = result["per_class"]
    if len(rows) != k or not all(_fields(r, PER_CLASS_FIELDS) and r["class"] == t and r["images"] == sum(
            matrix[t]) and r["correct"] == matrix[t][t] for t, r in enumerate(rows)):
        return False
    return all(_fields(w, WRONG_FIELDS) and 0 <= w["index"] < n and w["true"] != w["predicted"]
               and 0 <= w["true"] < k and 0 <= w["predicted"] < k for w in result["most_wrong"])


def check_classifier_eval(result: Any, path: Path) -> None:
    """A CheckpointError unless `result` is a valid classifier evaluation (`valid_eval`)."""
    if not valid_eval(result):
        raise CheckpointError(f"{path}: not an eval.json of `vaekit classify eval` (a field is missing, "
                              "of the wrong type, or disagrees with the others).")


def read_classifier_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN_DIR/eval.json if it is a valid classifier evaluation (`valid_eval`) of the current
    model (its model_sha256 is the SHA-256 of model.safetensors now); None if it is missing,
    unreadable, damaged, of a VAE, or stale (the run trained on since): evaluate again then.
    The reading is `vaekit.runs.read_eval`'s, whose CheckpointError is this None."""
    try:
        return runs.read_eval(run_dir, check_classifier_eval, "vaekit classify eval")
    except CheckpointError:
        return None
