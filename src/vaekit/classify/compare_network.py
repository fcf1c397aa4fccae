"""One network of `vaekit classify --compare`, trained and measured, in a child process of its own.

Memory, measured honestly: each network is trained by `python -m vaekit.classify.compare_network`
(a fresh interpreter: no memory shared with the parent), which reads its request as JSON on stdin
and answers JSON lines on stdout. It reports Linux's VmHWM (/proc/self/status), its own peak
resident set: `peak` is the whole child (Python, torch, the data, training and evaluation),
`+train` is the peak after the data was loaded (VmHWM reset through /proc/self/clear_refs) minus
the resident memory then. getrusage(RUSAGE_SELF).ru_maxrss is sent back too, but in a child
started by fork/vfork + exec Linux carries the parent's peak into it (measured: a child of an
800 MB parent reports 810 MB), so it is only a fallback where /proc is missing.

Accuracy: of the best model (model.safetensors) in eval mode, on a seeded sample of EVAL_IMAGES
training images it was trained on and on the test images of the subset.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaekit import runs
from vaekit.classify import config as ccfg
from vaekit.classify.compare_plan import EVAL_IMAGES, subset, take
from vaekit.classify.data import network_input
from vaekit.classify.fit import fit_classifier
from vaekit.classify.metrics import EVAL_BATCH, logits
from vaekit.data.load import Split, load_configured
from vaekit.errors import VaekitError

CHILD = "vaekit.classify.compare_network"  # the module the children run (`python -m`)
Log = Callable[[str], None]


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
    """`python -m vaekit.classify.compare_network`: one request (JSON) on stdin; JSON lines on stdout:
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


if __name__ == "__main__":
    raise SystemExit(child_main())
