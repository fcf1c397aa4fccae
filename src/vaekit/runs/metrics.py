"""A run's metrics.jsonl: one strict-JSON object per epoch, `{"epoch": 1, "step": ..., ...}`,
every field a number, appended as training goes.

The rows are epochs 1, 2, 3, ... in order (no gap, no repeat), and none past the run's end, the
epochs of its config.json: vaekit writes config.json (a resume's, a time budget's re-plan) before
the rows of its epochs, so that it always covers them. This holds for every kind of run.

Which run the rows belong to: a checkpoint records `metrics_sha256`, the SHA-256 of the lines of
metrics.jsonl for its epochs 1..epoch (each line's bytes with its newline, as written), so that a
reader without vaekit can check them with `head -n EPOCH metrics.jsonl | sha256sum`. Every read
(`read_metrics`) holds the file against the run's checkpoint: rows copied from another run, or
edited, are refused with one sentence instead of being drawn in a report. Rows past the
checkpoint's epoch (a kill between a row and its checkpoint, a failed write of the model or the
checkpoint) are not covered, and are redone by a resume; a run without a checkpoint, or of an
earlier vaekit, has nothing to hold them against.

Whatever the checkpoint, a row holds the laws of how vaekit computes it (`_check_laws`): -ELBO =
recon + KL to float32's rounding, a closed-form KL >= 0, no step, time, learning rate or KL weight
below 0, accuracies in [0, 1], a classifier's losses >= 0. A last line that is not JSON is dropped
only where a failed append leaves it (`_cut`: no newline after it, or NUL bytes); one that ends
with its newline was edited, and is refused as any other line is.

The row of an epoch is written before its checkpoint, and must be: the checkpoint's digest is of
the rows on disk, and a checkpoint whose rows were then not written would refuse the run. So the
rows may go past the epochs the run's model was trained through (`model_epoch`): its readers use
the rows up to it (`model_metrics`), and `rows_past_model` says by how much, for their note.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from vaekit.config import is_int, is_number, n_epochs
from vaekit.errors import CheckpointError
from vaekit.regular import check_regular
from vaekit.runs.files import (
    CHECKPOINT,
    CHECKPOINT_KEY,
    CONFIG,
    METRICS,
    MODEL,
    PUT_BACK,
    NotStrictJSON,
    parse_json,
    read_run_file,
    strict_json,
    write_bytes_atomic,
    write_error,
)
from vaekit.runs.identity import DIGEST_KEY, EPOCH_KEY, rows_sha256
from vaekit.runs.tensor_files import read_metadata


def _cut(last: str) -> bool:
    """Whether the last line of metrics.jsonl (with its line break, if any), not JSON, is one that
    a failed append leaves: cut by a kill mid-write (a row is appended whole with its newline, so a
    cut one has none), or the NUL bytes a power loss can leave where the file grew but its data
    was not written. A line that is not JSON and ends with its newline is an edit."""
    return last.splitlines()[0] == last or not last.replace("\x00", "").strip()


def _lines(run_dir: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """(line number, line, row) of every row of metrics.jsonl, checked; a last line cut by a kill
    mid-write, or NUL bytes, is dropped (`_cut`), anything else that is not a row is a
    CheckpointError naming the line."""
    path = run_dir / METRICS
    if not check_regular(path, "the metrics.jsonl of a run", CheckpointError):
        return []
    try:
        text = read_run_file(path, "the metrics.jsonl of a run").decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {err.start}); metrics.jsonl holds one "
                              "JSON object per line.") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read it ({err.strerror}).") from None
    lines = [line for line in text.splitlines(keepends=True) if line.strip()]
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for i, ended in enumerate(lines):
        line = ended.splitlines()[0]
        try:
            row = parse_json(line)
        except NotStrictJSON as err:  # whole, but NaN or Infinity: not a cut line
            raise CheckpointError(f"{path}: line {i + 1}: {err}.") from None
        except ValueError:
            if i == len(lines) - 1 and _cut(ended):
                break
            raise CheckpointError(f"{path}: line {i + 1} is not JSON.") from None
        epoch = row.get("epoch") if isinstance(row, dict) else None
        if not is_int(epoch) or epoch < 1 or not all(is_number(v) for v in row.values()):
            raise CheckpointError(f"{path}: line {i + 1} is not a row of `vaekit train` (an object with "
                                  "an integer epoch >= 1 and numbers for its other fields).")
        rows.append((i + 1, line, row))
    return rows


def _digest(lines: list[tuple[int, str, dict[str, Any]]], epoch: int) -> str:
    """SHA-256 of the lines of epochs 1..epoch, each with its newline."""
    return rows_sha256(line for _, line, row in lines if row["epoch"] <= epoch)


def metrics_digest(run_dir: Path, epoch: int) -> str:
    """What a checkpoint of `epoch` records of RUN_DIR/metrics.jsonl (`DIGEST_KEY`)."""
    return _digest(_lines(run_dir), epoch)


def _state(run_dir: Path) -> Any:
    """The state of the run's checkpoint, or None: no checkpoint, or a damaged one (its readers say
    so)."""
    try:
        metadata = read_metadata(run_dir / CHECKPOINT, "checkpoint") or {}
        return parse_json(metadata.get(CHECKPOINT_KEY, "null"))
    except (CheckpointError, ValueError):
        return None


def _recorded(run_dir: Path) -> tuple[int, str] | None:
    """(epoch, digest) of the run's checkpoint, or None: no checkpoint, a damaged one (its readers
    say so), or one of an earlier vaekit."""
    state = _state(run_dir)
    if not isinstance(state, dict) or not is_int(state.get("epoch")) or not isinstance(
            state.get(DIGEST_KEY), str):
        return None
    return state["epoch"], state[DIGEST_KEY]


def _settings(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The sections of RUN_DIR/config.json that are objects, as its JSON holds them; none where
    there is no config.json, or one whose readers say what is wrong with it."""
    try:
        raw = parse_json(read_run_file(run_dir / CONFIG, "the config.json of a run")
                         .decode("utf-8"))
    except (OSError, ValueError, CheckpointError):
        return {}
    return {k: v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def _planned(run_dir: Path) -> int | None:
    """The epochs of RUN_DIR/config.json (train.epochs), or None: none read (`_settings`)."""
    epochs = _settings(run_dir).get("train", {}).get("epochs")
    return epochs if is_int(epochs) else None


# A VAE row's -ELBO is its reconstruction plus its KL, of the training epoch and of the validation
# (`train_` and `val_` neg_elbo, recon, kl): each image's -ELBO is its recon + kl rounded once in
# float32 (2^-24 of it; under bf16 autocast too, the per-image terms being float32 or promoted to
# it), each batch's three sums are float32 reductions (torch's pairwise sum on a CPU, a tree on
# CUDA, under torchrun one more all-reduce), off by at most about log2(B) 2^-24 of the sum of the
# magnitudes, 31 2^-24 for the largest batch (2^31); the epoch's means are float64 sums of those,
# and JSON writes a float64 exactly (it reads back the same number). So |neg_elbo - recon - kl|
# <= (1 + 3 * 31) 2^-24 (|neg_elbo| + |recon| + |kl|), about 2^-17.5 of it; SUM_RTOL = 2^-14 leaves
# a factor of 8 for images whose recon is of either sign (a Gaussian likelihood), where the
# magnitudes a sum rounds are more than those of the means. An edit of a digit that shows is more.
SUM_RTOL = 2.0**-14
# The closed-form KL (one Gaussian layer against N(0, I): `vaekit.vae.prob.closed_form_kl`) is a
# sum over the latent dimensions of -1/2 (log s^2 + 1 - s^2 - mu^2) >= 0, whose terms near 0 are
# differences of numbers near 1: rounded, at most half an ulp of 1 apart per dimension, 2^-24 in
# float32, 2^-8 in bfloat16 (`--precision bf16`, where autocast computes it in bfloat16); twice that
# per latent dimension is the floor of an honest row's KL. A Monte-Carlo KL (a VampPrior, two
# stochastic layers) may be below 0 and is held to no floor.
KL_ULP = {"float32": 2.0**-23, "bf16": 2.0**-7}
NON_NEGATIVE = ("step", "epoch_seconds", "lr", "beta")  # counts, seconds, the learning rate, a KL weight


def _kl_floor(run_dir: Path) -> float | None:
    """How far below 0 an honest row's KL can be (`KL_ULP` per latent dimension), or None where
    config.json does not say that the run's KL is the closed form (>= 0) and of which size."""
    settings = _settings(run_dir)
    model, precision = settings.get("model", {}), settings.get("train", {}).get("precision", "float32")
    latent, prior, layers = model.get("latent"), model.get("prior"), model.get("stochastic_layers")
    if not is_int(latent) or prior not in ("standard", None) or layers not in (1, None):
        return None
    return latent * KL_ULP.get(precision if isinstance(precision, str) else "", KL_ULP["bf16"])


def _check_laws(path: Path, number: int, row: dict[str, Any], kl_floor: float | None) -> None:
    """The laws a row of `vaekit train` or `vaekit classify` holds by how it is computed, whatever
    its numbers: -ELBO = recon + KL (`SUM_RTOL`), a closed-form KL >= 0 (`_kl_floor`), no count,
    time, learning rate or KL weight below 0, accuracies in [0, 1] and a classifier's losses
    (cross-entropies) >= 0; a row that breaks one is a CheckpointError naming the line and fields."""
    where = f"{path}: line {number}"
    for part in ("train_", "val_"):
        total, recon, kl = (row.get(part + key) for key in ("neg_elbo", "recon", "kl"))
        if total is None or recon is None or kl is None:
            continue
        slack = SUM_RTOL * (abs(total) + abs(recon) + abs(kl))
        if abs(total - (recon + kl)) > slack:
            raise CheckpointError(f"{where}: {part}neg_elbo is {total!r}, not {part}recon + {part}kl = "
                                  f"{recon!r} + {kl!r} = {recon + kl!r}, as a row of `vaekit train` is; "
                                  "the file was edited, or its numbers are another run's.")
        if kl_floor is not None and kl < -(kl_floor + slack):
            raise CheckpointError(f"{where}: {part}kl is {kl!r}, below 0, where the run's KL is the closed "
                                  "form of a Gaussian against N(0, I), never below 0; the file was edited.")
    laws = [(key, 0.0, math.inf) for key in NON_NEGATIVE]
    laws += [(part + "accuracy", 0.0, 1.0) for part in ("train_", "val_")]
    laws += [(part + "loss", 0.0, math.inf) for part in ("train_", "val_") if part + "accuracy" in row]
    for key, low, high in laws:
        if key in row and not low <= row[key] <= high:
            bound = "below 0" if row[key] < low else "above 1"
            raise CheckpointError(f"{where}: {key} is {row[key]!r}, {bound}, which no row of vaekit holds; "
                                  "the file was edited.")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl: one JSON object per epoch, epochs 1, 2, 3, ... in order and none
    past the epochs of config.json, with numbers for every other field, those of the checkpoint's
    epochs the ones it recorded (none, or one cut line, where it records finished epochs, is refused
    too), each row holding its own laws (`_check_laws`). A last line cut by a kill mid-write, or of
    NUL bytes, is dropped (`_cut`); anything else is a CheckpointError naming the file."""
    run_dir = Path(run_dir)
    lines = _lines(run_dir)
    recorded = _recorded(run_dir)
    if recorded is not None and recorded[0] >= 1 and not lines:
        there = "holds no row" if (run_dir / METRICS).exists() else "is missing"
        raise CheckpointError(f"{run_dir / METRICS} {there}, where {run_dir / CHECKPOINT} records the "
                              f"rows of {recorded[0]} finished epoch{'s' * (recorded[0] > 1)} "
                              f"(metrics_sha256); the file was emptied, cut or deleted: {PUT_BACK}.")
    if recorded is not None and 1 <= len(lines) < recorded[0]:
        held = "1 row" if len(lines) == 1 else f"{len(lines)} rows"
        raise CheckpointError(f"{run_dir / METRICS} holds {held} only, where "
                              f"{run_dir / CHECKPOINT} records the rows of {recorded[0]} finished epochs "
                              f"(metrics_sha256); the file was cut or edited: {PUT_BACK}.")
    if recorded is not None and _digest(lines, recorded[0]) != recorded[1]:
        raise CheckpointError(f"{run_dir / METRICS}: its rows of epochs 1-{recorded[0]} are not those "
                              f"{run_dir / CHECKPOINT} recorded (metrics_sha256); the file was edited, or "
                              f"copied from another run: {PUT_BACK}.")
    for number, _, row in lines:
        if row["epoch"] != number:  # the line numbers of rows: 1, 2, 3, ...
            raise CheckpointError(f"{run_dir / METRICS}: line {number} is epoch {row['epoch']}, where "
                                  f"epoch {number} was due: the rows of a run are epochs 1, 2, 3, ... in "
                                  "order, each once; the file was edited, or its lines reordered.")
    planned = _planned(run_dir) if lines else None
    if planned is not None and len(lines) > planned:
        raise CheckpointError(f"{run_dir / METRICS}: line {planned + 1} is epoch {planned + 1}, past the "
                              f"{n_epochs(planned)} of {run_dir / CONFIG}; the file was edited, or copied "
                              "from another run.")
    kl_floor = _kl_floor(run_dir) if lines else None
    for number, _, row in lines:
        _check_laws(run_dir / METRICS, number, row, kl_floor)
    return [row for _, _, row in lines]


def check_planned(run_dir: Path) -> None:
    """The epochs the run holds (the rows of metrics.jsonl, the checkpoint's epoch) are at most the
    train.epochs of its config.json, which vaekit writes before the rows of its epochs (a resume's
    --epochs, a time budget's re-plan): more is a CheckpointError naming config.json, or naming
    metrics.jsonl where its rows alone go past the epochs that config.json and the checkpoint's
    recorded config agree on (the checkpoint's epoch within them). Rows that are
    not themselves sound (unreadable, out of order, not those the checkpoint recorded) are no check
    here: `read_metrics` names metrics.jsonl for them."""
    planned, recorded = _planned(run_dir), _recorded(run_dir)
    try:
        lines = _lines(run_dir)
    except CheckpointError:
        return
    if any(row["epoch"] != number for number, _, row in lines) or (
            recorded is not None and _digest(lines, recorded[0]) != recorded[1]):
        return
    held = max(len(lines), 0 if recorded is None else recorded[0])
    if planned is not None and held > planned and recorded is not None and recorded[0] <= planned and (
            _checkpoint_epochs(run_dir) == planned):
        raise CheckpointError(f"{run_dir / METRICS}: line {planned + 1} is epoch {planned + 1}, past the "
                              f"{planned} epochs that {run_dir / CONFIG} and {run_dir / CHECKPOINT} (at "
                              f"epoch {recorded[0]}) agree on; lines were added to the file, or it was "
                              f"copied from another run; remove its lines past epoch {planned}.")
    if planned is not None and held > planned:
        raise CheckpointError(f"{run_dir / CONFIG}: train.epochs is {planned}, but the run has trained "
                              f"{held} epochs ({run_dir / METRICS}, {run_dir / CHECKPOINT}); config.json was "
                              "edited, or is another run's.")


def _checkpoint_epochs(run_dir: Path) -> int | None:
    """The train.epochs of the config the run's checkpoint records, or None: none recorded."""
    state = _state(run_dir)
    config = state.get("config") if isinstance(state, dict) else None
    train = config.get("train") if isinstance(config, dict) else None
    epochs = train.get("epochs") if isinstance(train, dict) else None
    return epochs if is_int(epochs) else None


def model_epoch(run_dir: Path) -> int | None:
    """The last epoch the run's model was trained through: its checkpoint's epoch, or the model
    file's where it is past it (a session killed between the two writes); None for a run without a
    checkpoint of this vaekit (nothing to say it by)."""
    recorded = _recorded(run_dir)
    if recorded is None:
        return None
    try:
        epoch = parse_json((read_metadata(run_dir / MODEL, "model") or {}).get(EPOCH_KEY, "null"))
    except (CheckpointError, ValueError):
        epoch = None
    return max(recorded[0], epoch) if is_int(epoch) else recorded[0]


def model_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of `read_metrics` up to `model_epoch`: those of the epochs the run's model was
    trained through (what a report draws beside the model's numbers)."""
    rows = read_metrics(run_dir)
    epoch = model_epoch(Path(run_dir))
    return rows if epoch is None else [row for row in rows if row["epoch"] <= epoch]


def rows_past_model(run_dir: Path) -> tuple[int, int] | None:
    """(`model_epoch`, the last row's epoch) where metrics.jsonl goes past the epochs the model was
    trained through (a session cut off after writing a row, before its checkpoint), else None; a
    metrics.jsonl that `read_metrics` refuses is None here (its readers say what is wrong)."""
    epoch = model_epoch(run_dir)
    if epoch is None:
        return None
    try:
        rows = read_metrics(run_dir)
    except CheckpointError:
        return None
    return (epoch, rows[-1]["epoch"]) if rows and rows[-1]["epoch"] > epoch else None


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one row (strict JSON); a failed write leaves at most a cut last line, which
    `read_metrics` drops. Only a regular file (or none) is appended to."""
    line = strict_json(row, run_dir / METRICS) + "\n"
    check_regular(run_dir / METRICS, "the metrics.jsonl of a run", CheckpointError)
    try:
        with open(run_dir / METRICS, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise write_error(run_dir / METRICS, len(line), err) from None


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Keep the lines of epochs <= last_epoch (a resumed run redoes the later ones), as they were."""
    kept = "".join(line + "\n" for _, line, row in _lines(run_dir) if row["epoch"] <= last_epoch)
    write_bytes_atomic(run_dir / METRICS, kept.encode("utf-8"))
