"""`vaekit classify --compare`: Ex.1 Q1 answered by measurement. The sheet asks how many parameters
a dense layer from a 10x10x3 image to 10x10x20 has (600,000: `vaekit arch --sheet`) and what goes
wrong when the image is large; here the `dense` and the `cnn` preset (`classify.models`) are
trained on the same images resized to each side (28x28 upsampled to 56x56 and 112x112 by default,
`data.resize` nearest or bilinear), the same epochs each, and measured:

    params, MACs     of the network per image (`vaekit.arch` rows = the torch modules' tensors):
                     the dense's first Linear has side^2 * C * DENSE_HIDDEN weights; the cnn's
                     convolutions share their weights across positions and its AdaptiveAvgPool2d
                     makes its head the same at any side, so only its MACs grow (as side^2)
    memory           `fit.run_bytes`' estimate, and the peak resident memory MEASURED in a child
                     process of its own (see below); `fit.check_fits` refuses a network whose
                     estimate is over what the machine has, in one sentence, and it is not trained
    s/epoch          training seconds per epoch (metrics.jsonl's epoch_seconds, validation apart)
    accuracy         of the best model (model.safetensors) in eval mode, on a seeded sample of
                     EVAL_IMAGES training images it was trained on and of EVAL_IMAGES test
                     images: the gap train - test is the overfitting

Each network trains through `fit_classifier` into OUT/<model>-<side>/, a real run directory
(`vaekit classify eval OUT/cnn-28` works on it), on a seeded subset of the training split
(TRAIN_IMAGES) with VAL_IMAGES validation images. OUT must be new or empty: nothing is overwritten.
OUT/compare.json holds the rows (written after each network), OUT/compare.png their figure
(`vaekit.classify.figure.compare_figure`).

Memory, measured honestly: each network is trained by `python -m vaekit.classify.compare` (a
fresh interpreter: no memory shared with this process), which reads its request as JSON on stdin
and answers JSON lines on stdout. It reports Linux's VmHWM (/proc/self/status), its own peak
resident set: `peak` is the whole child (Python, torch, the data, training and evaluation),
`+train` is the peak after the data was loaded (VmHWM reset through /proc/self/clear_refs) minus
the resident memory then. getrusage(RUSAGE_SELF).ru_maxrss is sent back too, but in a child
started by fork/vfork + exec Linux carries the parent's peak into it (measured: a child of an
800 MB parent reports 810 MB), so it is only a fallback where /proc is missing.

`compare(..., isolate=False)` trains in this process instead (tests: no interpreter start per
network); its memory columns are then empty, since one process's peak is not per network.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vaekit import runs
from vaekit.arch.stack import LayerRow
from vaekit.classify import config as ccfg
from vaekit.classify.config import MAX_SIDE, ClassifierConfig
from vaekit.classify.data import network_input
from vaekit.classify.fit import check_fits, fit_classifier, prepare_config, run_bytes
from vaekit.classify.metrics import EVAL_BATCH, logits, wilson_interval
from vaekit.data.load import Dataset, Split, load_configured
from vaekit.device import choose_threads
from vaekit.errors import ConfigError, SpecError, VaekitError

EPOCHS = 2
SIDES = (28, 56, 112)
TRAIN_IMAGES = 10_000  # measured: the default compare takes about 8 minutes on 2 quiet cores
VAL_IMAGES = 1_000  # validation images per epoch (the best model is chosen on them)
EVAL_IMAGES = 5_000  # train and test images the accuracies are measured on (a 112x112 cnn
# forward pass is ~20 ms an image on one core: the 10,000 test images would cost minutes each)
DEFAULT_OUT = "runs/compare"
MODELS = ("dense", "cnn")
CHILD = "vaekit.classify.compare"  # the module the children run (`python -m`)
MIB = 2**20
JSON_NAME, FIGURE_NAME = "compare.json", "compare.png"
Log = Callable[[str], None]


# ----------------------------------------------------------------------------- the plan


def check_sides(sides: Sequence[int]) -> list[int]:
    """The sides, sorted; ConfigError (one sentence) for none, a repeat, or one outside 1..MAX_SIDE."""
    if not sides:
        raise ConfigError("--sides is empty; give image sides such as 28,56,112.")
    for side in sides:
        if not 1 <= side <= MAX_SIDE:
            raise ConfigError(f"--sides {side} is not an image side; expected sides from 1 to "
                              f"{MAX_SIDE:,} pixels, such as 28,56,112.")
    if len(set(sides)) < len(sides):
        raise ConfigError(f"--sides {','.join(map(str, sides))} repeats a side; give each once.")
    return sorted(sides)


def check_out(out: Path) -> None:
    """OUT must be new or an empty directory (ConfigError otherwise): nothing is overwritten."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory; --out names the directory that "
                          "--compare writes its runs into.")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; --compare writes its runs, {JSON_NAME} and "
                          f"{FIGURE_NAME} into a new or empty directory and overwrites nothing, so "
                          "remove it or choose another --out.")


def take(split: Split, n: int, seed: int) -> Split:
    """A seeded sample of n images of `split` (in their order), or all of it if it has no more."""
    if n >= len(split):
        return split
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return Split(split.images[index], None if split.labels is None else split.labels[index])


def subset(ds: Dataset, train_images: int, seed: int) -> Dataset:
    """The data every network of a compare trains on: `train_images` of the training split,
    VAL_IMAGES of the validation split and EVAL_IMAGES of the test split, each a seeded sample."""
    return replace(ds, train=take(ds.train, train_images, seed), val=take(ds.val, VAL_IMAGES, seed),
                   test=take(ds.test, EVAL_IMAGES, seed))


@dataclass
class Network:
    """One network of the compare: its config (preset, side filled in), arch rows, the memory
    estimate in bytes, and the sentence that refused it (None: it fits)."""

    model: str
    side: int
    config: ClassifierConfig
    rows: list[LayerRow]
    estimate: int
    refused: str | None

    @property
    def name(self) -> str:
        return f"{self.model}-{self.side}"


def plan(config: ClassifierConfig, ds: Dataset, sides: Sequence[int], epochs: int,
         threads: int) -> list[Network]:
    """Each network (MODELS x sides), checked before anything trains: its layers on side x side
    images (a SpecError naming the side), and `check_fits` (a network over the memory is refused,
    not an error)."""
    networks = []
    for model in MODELS:
        for side in sides:
            c = copy.deepcopy(config)
            c.model.preset, c.model.layers, c.model.image_shape, c.model.classes = model, [], None, None
            c.data.side, c.train.epochs, c.train.threads = side, epochs, threads
            ccfg.validate(c)
            try:
                rows = prepare_config(c, ds)
            except SpecError as err:
                raise SpecError(f"--sides {side}: the {model} preset does not fit {side}x{side} images "
                                f"({str(err).rstrip('.')}).") from None
            n_images = len(ds.train) + len(ds.val)
            estimate = run_bytes(rows, c.train.batch_size, n_images * math.prod(c.model.image_shape or []))[0]
            try:
                check_fits(c, rows, n_images)
                refused = None
            except ConfigError as err:
                refused = f"{model} at {side}x{side}: {err}"
            networks.append(Network(model, side, c, rows, estimate, refused))
    return networks


# ----------------------------------------------------------------------------- one network


def _status_kib(key: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0: "5" to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _ru_maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def split_accuracy(model: torch.nn.Module, split: Split, side: int, mode: str) -> float:
    """Accuracy of `model` (eval mode) on uint8 images resized to side x side EVAL_BATCH at a time:
    the resized float copy of the whole split is never held."""
    assert split.labels is not None  # prepare_config checked the labels
    correct = 0
    for start in range(0, len(split), EVAL_BATCH):
        x = network_input(split.images[start : start + EVAL_BATCH], side, mode)  # (B, C, side, side)
        correct += int((logits(model, x).argmax(1) == split.labels[start : start + EVAL_BATCH]).sum())
    return correct / len(split)


def train_network(request: dict[str, Any], log: Log = print, measure: bool = True) -> dict[str, Any]:
    """Train and measure one network of a compare (the child's work): load and subset the data,
    `fit_classifier` into request["run_dir"], then the best model's train and test accuracy.
    The request holds the network's config (`to_dict`), run_dir, train_images and show_bar.
    `measure` resets this process's VmHWM after the data is loaded (False: leave it alone, for a
    network trained in the caller's process)."""
    config = ccfg.from_dict(request["config"], "the compare request")
    ds = subset(load_configured(config.data), request["train_images"],
                config.train.seed)
    loaded_hwm, before = _status_kib("VmHWM"), _status_kib("VmRSS")
    reset = measure and _reset_peak()
    run_dir = Path(request["run_dir"])
    summary = fit_classifier(config, run_dir, show_bar=request.get("show_bar"), log=log, dataset=ds)
    model = runs.load_run(run_dir, "classify").model  # the best epoch's weights, as eval sees them
    d = config.data
    train_acc = split_accuracy(model, take(ds.train, EVAL_IMAGES, config.train.seed), d.side, d.resize)
    test_acc = split_accuracy(model, ds.test, d.side, d.resize)
    seconds = [float(r["epoch_seconds"]) for r in runs.read_metrics(run_dir)]
    hwm = _status_kib("VmHWM")
    peak = None if hwm is None else 1024 * max(hwm, loaded_hwm or 0)
    return {"epoch_seconds": sum(seconds) / len(seconds), "train_accuracy": train_acc,
            "test_accuracy": test_acc, "test_n": len(ds.test), "train_n": len(ds.train),
            "val_n": len(ds.val), "eval_train_n": min(EVAL_IMAGES, len(ds.train)),
            "best_epoch": summary["best_epoch"], "threads": torch.get_num_threads(),
            "peak_bytes": peak, "ru_maxrss_bytes": _ru_maxrss_bytes(),
            "train_bytes": None if hwm is None or before is None or not reset else 1024 * (hwm - before)}


def child_main() -> int:
    """`python -m vaekit.classify.compare`: one request (JSON) on stdin; JSON lines on stdout:
    {"log": line} while training, then {"result": {...}} or {"error": sentence}."""
    channel = sys.stdout
    sys.stdout = sys.stderr  # anything else printed stays out of the channel

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    request = json.loads(sys.stdin.read())
    try:
        result = train_network(request, log=lambda line: send({"log": line}))
    except VaekitError as err:  # a user's input (memory refused, a divergence): one sentence
        send({"error": str(err)})
        return 2
    send({"result": result})
    return 0


def run_child(request: dict[str, Any], log: Log) -> dict[str, Any]:
    """`train_network(request)` in a child process of its own: its result, or {"error": sentence}
    for a refusal or a kill (out of memory). A child that dies of a bug is a RuntimeError."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the directory holding the vaekit package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    answer: dict[str, Any] | None = None
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            log(line.rstrip("\n"))
        elif "log" in message:
            log(str(message["log"]))
        else:
            answer = message
    status = proc.wait()
    if answer is not None and ("result" in answer or "error" in answer):
        return answer.get("result") or {"error": str(answer["error"])}
    if status < 0:
        return {"error": f"the child process training it was killed by signal {-status}"
                         + (" (SIGKILL: most likely out of memory)." if -status == 9 else ".")}
    raise RuntimeError(f"the child process training {request['run_dir']} exited with status {status} "
                       "and no result (its traceback is above)")


# ----------------------------------------------------------------------------- the compare


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 1)


def _prefixed(log: Log, name: str) -> Log:
    return lambda line: log(f"[{name}] {line}")


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


def compare(config: ClassifierConfig, out: str | Path, sides: Sequence[int] = SIDES, epochs: int = EPOCHS,
            train_images: int = TRAIN_IMAGES, isolate: bool = True, show_bar: bool | None = None,
            log: Log = print) -> list[dict[str, Any]]:
    """Train the dense and the cnn preset at each side into `out` and return their rows (see the
    module's docstring); everything a user can get wrong (sides, OUT, config, data, layers) is one
    sentence before anything trains. `isolate` trains each network in a child process, which
    measures its memory; False trains them here (no memory columns)."""
    sides = check_sides(sides)
    out = Path(out)
    check_out(out)
    if config.model.layers:
        raise ConfigError("--compare trains the dense and the cnn preset; model.layers (--layers) is "
                          "for a single run.")
    ccfg.validate(config)
    ds = subset(load_configured(config.data), train_images, config.train.seed)
    threads = choose_threads(config.train.threads)  # once, so that every network gets the same
    networks = plan(config, ds, sides, epochs, threads)
    if all(n.refused for n in networks):
        raise ConfigError(str(networks[0].refused))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the directory ({err.strerror or err}).") from None
    log(f"Ex.1 Q1 by measurement: {' and '.join(MODELS)} on {ds.name} resized ({config.data.resize}) to "
        f"{', '.join(f'{s}x{s}' for s in sides)}; {len(ds.train):,} training images, {len(ds.val):,} "
        f"validation, {epochs} epoch{'s' if epochs > 1 else ''} each, {threads} thread"
        f"{'s' if threads > 1 else ''}; {'each in a child process' if isolate else 'in this process'}")
    rows: list[dict[str, Any]] = []
    for net in networks:
        result = None
        if net.refused is None:
            request = {"config": net.config.to_dict(), "run_dir": str(out / net.name),
                       "train_images": train_images, "show_bar": show_bar}
            prefixed = _prefixed(log, net.name)
            result = run_child(request, prefixed) if isolate else train_network(request, prefixed, False)
        else:
            log(f"[{net.name}] refused: {net.refused}")
        rows.append(make_row(net, result, out, isolate))
        runs.write_json_atomic(out / JSON_NAME, rows)  # after each network: a kill keeps the rows done
    from vaekit.classify.figure import compare_figure  # matplotlib only once there is a figure to draw

    compare_figure(rows, out / FIGURE_NAME)
    return rows


# ----------------------------------------------------------------------------- text


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


def main(config: ClassifierConfig, args: argparse.Namespace, out: Path, isolate: bool = True) -> int:
    """`vaekit classify --compare`: --sides, --epochs, --train-images bound it; --json prints the
    rows as one JSON list. `isolate=False` (tests only) trains in this process."""
    for flag in ("--resume", "--side", "--preset", "--layers"):
        if getattr(args, flag.lstrip("-"), None) not in (None, False):
            raise ConfigError(f"{flag} is for a single run; --compare trains the dense and the cnn "
                              "preset at each of --sides.")
    quiet = bool(getattr(args, "json", False))
    rows = compare(config, out, args.sides if args.sides is not None else SIDES,
                   args.epochs if args.epochs is not None else EPOCHS,
                   args.train_images if args.train_images is not None else TRAIN_IMAGES, isolate,
                   show_bar=False if getattr(args, "no_progress", False) else None,
                   log=(lambda line: None) if quiet else print)
    if quiet:
        print(json.dumps(rows))
        return 0
    print(table_text(rows))
    for note in notes_text(rows):
        print(note)
    trained = [r["run_dir"] for r in rows if r["run_dir"]]
    print(f"wrote {out / JSON_NAME}, {out / FIGURE_NAME}"
          + (f"; each run is a run directory: `vaekit classify eval {trained[-1]}`" if trained else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
