"""What `vaekit classify --compare` reports: one JSON row per network (compare.json, --json), the
table printed from the rows, and the notes that say what the table shows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaekit.classify.compare_plan import MODELS, Network
from vaekit.classify.config import MAX_SIDE
from vaekit.classify.metrics import wilson_interval
from vaekit.config import MAX_SIZE, is_int, is_number

MIB = 2**20


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 1)


def make_row(net: Network, result: dict[str, Any] | None, out: Path, isolate: bool) -> dict[str, Any]:
    """The JSON row of one network: what its plan knows, and what its training measured (None
    where it was refused or failed: `error` then says why)."""
    r = result or {}
    error = net.refused or r.get("error")
    trained = error is None
    train_acc, test_acc = r.get("train_accuracy"), r.get("test_accuracy")
    interval = None
    if trained and r.get("test_n"):
        interval = list(wilson_interval(round(test_acc * r["test_n"]), r["test_n"]))
    return {
        "model": net.model, "side": net.side, "resize": net.config.data.resize,
        "epochs": net.config.train.epochs, "dataset": net.config.data.name,
        "params": sum(row.params for row in net.rows), "macs": sum(row.macs for row in net.rows),
        "estimated_memory_mb": _mib(net.estimate),
        "peak_memory_mb": _mib(r.get("peak_bytes")) if isolate else None,
        "train_memory_mb": _mib(r.get("train_bytes")) if isolate else None,
        "ru_maxrss_mb": _mib(r.get("ru_maxrss_bytes")) if isolate else None,
        "memory": "child process VmHWM" if isolate else "not measured (in-process)",
        "epoch_seconds": r.get("epoch_seconds"), "train_accuracy": train_acc, "test_accuracy": test_acc,
        "gap": None if train_acc is None or test_acc is None else train_acc - test_acc,
        "test_interval": interval,
        "train_images": r.get("train_n"), "val_images": r.get("val_n"), "test_images": r.get("test_n"),
        "eval_train_images": r.get("eval_train_n"), "best_epoch": r.get("best_epoch"),
        "threads": net.config.train.threads, "run_dir": str(out / net.name) if trained else None,
        "error": error, "refused": net.refused is not None,
    }


# the fields of a row (`make_row`) that its readers compute with: numbers held to what a run can give
_COUNTS = ("params", "macs")  # at least 1 parameter; MACs at least 0
_OPTIONAL_COUNTS = ("train_images", "val_images", "test_images", "eval_train_images", "best_epoch")
_OPTIONAL_SIZES = ("estimated_memory_mb", "peak_memory_mb", "train_memory_mb", "ru_maxrss_mb",
                   "epoch_seconds")
_FRACTIONS = ("train_accuracy", "test_accuracy")


LARGEST = 10**18  # past any count or size a compare can write (a dense-wide layer at the largest side)


def _is_size(v: Any) -> bool:
    """A number in [0, LARGEST]: ints of any length compared as ints (one past a float's range is
    not converted), floats finite."""
    return is_number(v) and 0 <= v <= LARGEST


def _shown(value: Any) -> str:
    """A value as JSON writes it, cut short (a 400-digit number is named by its length)."""
    if is_int(value) and abs(value) >= 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    return json.dumps(value)[:40]


def _around(interval: Any, value: float | None) -> bool:
    """`interval` is [lo, hi] in [0, 1] holding `value` (a Wilson interval holds its proportion; the
    sums that make it may land a rounding step past it)."""
    if not (isinstance(interval, list) and len(interval) == 2):
        return False
    if not all(_is_size(v) and v <= 1 for v in interval):
        return False
    lo, hi = interval
    return lo <= hi and (value is None or lo - 1e-9 <= value <= hi + 1e-9)


def row_fault(row: Any) -> str | None:
    """What makes `row` other than a row `make_row` writes, in words ('side is missing'), or None:
    a model of MODELS, an image side and epochs of at least 1, counts that are whole numbers,
    sizes finite and not negative, accuracies in [0, 1] (or null, for a network not trained)."""
    if not isinstance(row, dict):
        return "it is not an object"
    for key in ("model", "side", "epochs", *_COUNTS, *_FRACTIONS, "memory", "error", "refused"):
        if key not in row:
            return f"{key} is missing"
    if row["model"] not in MODELS:
        return f"model is {row['model']!r}, not one of {', '.join(MODELS)}"
    for key, least, most in (("side", 1, MAX_SIDE), ("epochs", 1, MAX_SIZE), ("params", 1, LARGEST),
                             ("macs", 0, LARGEST)):
        if not is_int(row[key]) or not least <= row[key] <= most:
            return f"{key} is {_shown(row[key])}, not a whole number from {least} to {most:,}"
    for key in _OPTIONAL_COUNTS:
        if row.get(key) is not None and (not is_int(row[key]) or not 0 <= row[key] <= MAX_SIZE):
            return f"{key} is {_shown(row[key])}, not a whole number from 0 to {MAX_SIZE:,} or null"
    for key in _OPTIONAL_SIZES:
        if row.get(key) is not None and not _is_size(row[key]):
            return f"{key} is {_shown(row[key])}, not a number from 0 to {LARGEST:.0e} or null"
    for key in _FRACTIONS:
        if row[key] is not None and not (_is_size(row[key]) and row[key] <= 1):
            return f"{key} is {_shown(row[key])}, not a fraction in [0, 1] or null"
    gap, interval = row.get("gap"), row.get("test_interval")
    if gap is not None and not (isinstance(gap, int | float) and _is_size(abs(gap)) and abs(gap) <= 1):
        return f"gap is {_shown(gap)}, not a difference of two accuracies or null"
    train, test = row["train_accuracy"], row["test_accuracy"]
    if gap is not None and train is not None and test is not None and abs(gap - (train - test)) > 1e-9:
        return f"gap is {_shown(gap)}, not train_accuracy - test_accuracy ({train - test:.6g})"
    if interval is not None and not _around(interval, row["test_accuracy"]):
        return f"test_interval is {json.dumps(interval)[:60]}, not an interval in [0, 1] around test_accuracy"
    if not isinstance(row["memory"], str) or not (row["error"] is None or isinstance(row["error"], str)):
        return "memory or error is not text"
    if not isinstance(row["refused"], bool):
        return "refused is not true or false"
    measured = [key for key in (*_FRACTIONS, "epoch_seconds") if row.get(key) is not None]
    if row["error"] is not None and measured:  # a network refused or failed measured nothing
        return f"error is {_shown(row['error'])}, but {measured[0]} holds a measurement"
    if row["refused"] and row["error"] is None:
        return "refused is true, but error, which says why, is null"
    return None


def rows_fault(rows: Any) -> str | None:
    """What makes `rows` (a compare.json read back) other than the rows `vaekit classify --compare`
    writes: not a list, no row, the first row's fault (`row_fault`), a network twice, or one missing
    (each model at each side), in words; None when none."""
    if not isinstance(rows, list) or not rows:
        return "it holds no row" if rows == [] else "it is not a list of rows"
    seen: dict[tuple[Any, Any], int] = {}
    for i, row in enumerate(rows):
        fault = row_fault(row)
        if fault is not None:
            return f"row {i}: {fault}"
        first = seen.setdefault((row["model"], row["side"]), i)  # one network per model and side
        if first != i:
            return f"row {i}: {row['model']} at side {row['side']} again (row {first})"
    sides = sorted({side for _, side in seen})
    lacking = [(m, side) for side in sides for m in MODELS if (m, side) not in seen]
    if lacking:  # the compare writes a row for every network it plans, a refused one too
        return f"no row of {lacking[0][0]} at side {lacking[0][1]}, though other rows are at that side"
    return None


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_text(rows: Sequence[dict[str, Any]]) -> str:
    """One line per network: model, side, params, MACs, memory (est., peak, +train) in MiB,
    s/epoch, train and test accuracy (%), gap (points)."""
    head = ("model", "side", "params", "MACs", "est MiB", "peak MiB", "+train MiB", "s/epoch",
            "train %", "test %", "gap")
    table = [head]

    def pct(v: float | None) -> float | None:
        return None if v is None else 100 * v

    for r in rows:
        table.append((r["model"], str(r["side"]), f"{r['params']:,}", f"{r['macs'] / 1e6:,.2f}M",
                      _cell(r["estimated_memory_mb"], ",.0f"), _cell(r["peak_memory_mb"], ",.0f"),
                      _cell(r["train_memory_mb"], ",.0f"), _cell(r["epoch_seconds"], ".2f"),
                      _cell(pct(r["train_accuracy"]), ".1f"), _cell(pct(r["test_accuracy"]), ".1f"),
                      "refused" if r["refused"] else "failed" if r["error"] else
                      _cell(pct(r["gap"]), "+.1f")))
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in
                       enumerate(zip(t, widths, strict=True))) for t in table]
    return "\n".join(lines)


def notes_text(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What the table shows, from its numbers: the params' growth, what was refused, the columns."""
    notes = []
    for model in MODELS:
        mine = [r for r in rows if r["model"] == model]
        if len(mine) > 1:
            a, b = mine[0], mine[-1]
            notes.append(f"{model}: params {a['params']:,} at {a['side']} -> {b['params']:,} at {b['side']} "
                         f"(x{b['params'] / a['params']:.2f} for x{(b['side'] / a['side']) ** 2:.2f} the "
                         f"pixels), MACs x{b['macs'] / max(1, a['macs']):.2f}")
    notes += [f"{r['model']}-{r['side']} not trained: {r['error']}" for r in rows if r["error"]]
    first = next((r for r in rows if r["error"] is None), rows[0])
    notes.append(f"accuracy: the best epoch's model in eval mode on {first['eval_train_images'] or '-'} "
                 f"of its training images and {first['test_images'] or '-'} test images; gap = train - test "
                 "(overfitting), in points")
    if first["memory"].startswith("child"):
        notes.append("peak MiB: the child process's own peak resident memory (VmHWM: Python, torch, the "
                     "data, training and evaluation); +train: its peak after the data was loaded minus "
                     "its resident memory then (with torch's one-time start of its kernels: tens of MiB "
                     "even for a tiny network); est: fit.run_bytes, which check_fits holds against the "
                     "memory available")
    else:
        notes.append("memory not measured: trained in this process (peak MiB is per process, not per "
                     "network)")
    return notes
