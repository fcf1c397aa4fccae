"""Runs on disk (design.md, "Runs on disk"): writing and reading `runs/NAME/`.

    config.json               everything needed to rebuild the model (`TrainConfig` as a dict; a
                              classifier's `ClassifierConfig`, with "task": "classify")
    model.safetensors         the weights with the best validation score so far (-ELBO, accuracy)
    checkpoint.safetensors    model + optimizer tensors of the last finished epoch, and in its
                              metadata (key "checkpoint") the JSON state below: one file, one rename,
                              so the pair can never be half-written
    checkpoint.json           the same state, readable: epoch, step, optimizer scalars, RNG states,
                              best validation -ELBO, config
    metrics.jsonl             one line per epoch

`load_run` gives a `Run` (config, model on a device, metrics); `model_fingerprint` the SHA-256 that
ties an eval.json to its weights. Every file is written to `NAME.tmp`, flushed to disk and renamed over
`NAME` with `os.replace` (atomic on POSIX), so a kill at any moment leaves the previous good
version. Nothing is ever read with pickle: tensors come from safetensors, the rest from JSON.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from vaekit.config import DEVICES, TrainConfig, from_dict, is_int, is_number
from vaekit.config import validate as validate_config
from vaekit.data.binarize import eval_images
from vaekit.data.load import load_configured
from vaekit.device import format_bytes, resolve_device
from vaekit.errors import CheckpointError, ConfigError, RunBusyError, RunWriteError, SpecError
from vaekit.vae.models import build_model

CONFIG = "config.json"
MODEL = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
METRICS = "metrics.jsonl"
EVAL = "eval.json"
REPORT = "report.html"
RUN_FILES = (CONFIG, MODEL, CHECKPOINT, CHECKPOINT_JSON, METRICS, EVAL, REPORT)
RESULT_FILES = (MODEL, CHECKPOINT, CHECKPOINT_JSON, METRICS, EVAL, REPORT)  # all but config.json
TMP = ".tmp"  # suffix of a file being written


# ----------------------------------------------------------------------------- atomic writes


def write_error(path: Path, size: int, err: OSError) -> RunWriteError:
    """One sentence for a write that failed: which file, why, and how much space it needed."""
    if err.errno == errno.ENOSPC:
        try:
            free = shutil.disk_usage(path.parent).free
            room = f", {format_bytes(free, 1)} free"
        except OSError:
            room = ""
        why = f"no space left on the device for its {format_bytes(size, 1)}{room}"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"{err.strerror.lower() if err.strerror else 'not writable'}: the directory is not writable"
    elif err.errno in (errno.ENOTDIR, errno.ENOENT, errno.EEXIST):
        why = f"{path.parent} is not a directory that can hold it"
    else:
        why = (err.strerror or str(err)).rstrip(".")
    return RunWriteError(f"{path}: cannot write it ({why}); the previous version, if any, is kept.")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path.tmp`, fsync, then rename over `path` (atomic on POSIX). On any failure
    (disk full, read-only, an interrupt) the `.tmp` is removed and `path` is left as it was; an
    OSError becomes a `RunWriteError` sentence."""
    if (path.exists() or path.is_symlink()) and not path.is_file():  # a directory, a device: never replaced
        raise RunWriteError(f"{path}: cannot write it (it exists and is not a regular file); it is left "
                            "as it is.")
    tmp = path.with_name(path.name + TMP)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, RunWriteError):
            raise write_error(path, len(data), err) from None
        raise


# ----------------------------------------------------------------------------- one writer


_HELD: dict[str, list[int]] = {}  # resolved run directory -> [fd, depth] held by this process


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for writing: an exclusive, non-blocking flock(2) on the directory
    itself. The kernel releases it when the process ends, however it ends (kill -9 too), so there
    is no lock file to go stale. A second process gets `RunBusyError` at once; the same process may
    nest (a report that evaluates first). Stale `NAME.tmp` files left by a killed writer are removed
    once the lock is held."""
    key = os.path.realpath(run_dir)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"{run_dir}: no such run directory.")
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise CheckpointError(f"{run_dir}: cannot open the run directory ({err.strerror}).") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunBusyError(f"{run_dir} is being written by another vaekit process (a train, eval or "
                           "report of this run); wait for it to end, or use another directory.") from None
    _HELD[key] = [fd, 1]
    try:
        for name in RUN_FILES:
            with contextlib.suppress(OSError):
                (Path(run_dir) / (name + TMP)).unlink()
        yield
    finally:
        del _HELD[key]
        os.close(fd)  # releases the lock


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Render a matplotlib figure in memory (the format from the suffix, png by default), close it,
    then write it with `write_bytes_atomic`: a full disk or an unwritable place leaves no partial
    image and gives one sentence (`RunWriteError`)."""
    import matplotlib.pyplot as plt  # only when a figure is saved: matplotlib is slow to import

    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, buffer.tell(), err) from None
    write_bytes_atomic(path, buffer.getvalue())
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """A safetensors file of CPU, contiguous copies of `tensors`, written atomically."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    write_bytes_atomic(path, st_save(cpu, metadata=metadata))


def read_tensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; CheckpointError if missing, truncated or foreign."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no {what} file there.") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the {what} ({err.strerror}).") from None
    try:
        tensors = st_load(data)
        # The header: an 8-byte little-endian length, then that many bytes of JSON.
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
    except (SafetensorError, ValueError, struct.error, UnicodeDecodeError, OverflowError):
        raise CheckpointError(
            f"{path}: not a complete safetensors file (truncated, or another format); "
            f"the {what} cannot be read."
        ) from None
    return tensors, dict(header.get("__metadata__") or {})


# ----------------------------------------------------------------------------- models and configs


class AnyConfig(Protocol):
    """The config of a run of any task (`TrainConfig`, a classifier's `ClassifierConfig`)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Task:
    """A kind of run: the config.json it holds, the model it builds, the images its model sees.
    'vae' is this module's; 'classify' is registered by `vaekit.classify` (a layer above, which
    `import vaekit` always imports), so that this module knows no classifier."""

    name: str  # config.json's "task" ('vae': none)
    maker: str  # the command that trains one
    what: str  # such a run, in words
    config_type: type
    read: Callable[[dict[str, Any], str], Any]  # config.json's sections, its path -> a checked config
    build: Callable[[Any], torch.nn.Module]  # a config -> its model (untrained)
    images: Callable[[Any, torch.Tensor], torch.Tensor]  # config, uint8 pixels -> the model's images


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    """Make runs of `task` readable and loadable (`read_config`, `load_run`)."""
    TASKS[task.name] = task


def task_for(config: Any) -> Task:
    """The task of a config: the registered one whose config type it has; 'vae' otherwise."""
    return next((t for t in TASKS.values() if isinstance(config, t.config_type)), TASKS["vae"])


def _maker(task: str | None) -> str:
    return TASKS[task].maker if task in TASKS else TASKS["vae"].maker


register_task(Task("vae", "vaekit train", "a VAE run", TrainConfig,
                   lambda raw, origin: validate_config(from_dict(raw, origin)), build_model,
                   lambda config, pixels: eval_images(pixels, config.resolved_binarize())))


def write_config(run_dir: Path, config: AnyConfig) -> None:
    write_json_atomic(run_dir / CONFIG, config.to_dict())


def task_of(raw: dict[str, Any], path: Path) -> str:
    """The kind of run a config.json describes: its "task" ('classify'), or 'vae' without one."""
    task = raw.pop("task", "vae")
    if task not in TASKS:
        raise CheckpointError(f"{path}: unknown task {str(task)[:40]!r}; expected one of "
                              f"{', '.join(TASKS)}.")
    return task


def read_config(run_dir: Path, task: str | None = "vae") -> Any:
    """config.json of a run, checked as a config file is (sections, keys, types, ranges): a
    hand-edited or foreign file is a CheckpointError naming it. `task` 'vae' expects a TrainConfig,
    'classify' a ClassifierConfig (a run of the other kind is one sentence saying which command
    it belongs to), None either."""
    path = run_dir / CONFIG
    maker = _maker(task or "vae")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: no {CONFIG}, so it is not a run directory of "
                              f"`{maker}`.") from None
    except (OSError, ValueError) as err:
        detail = getattr(err, "strerror", None) or str(err).rstrip(".")
        raise CheckpointError(f"{path}: not readable JSON ({detail}).") from None
    found = task_of(raw, path) if isinstance(raw, dict) else "vae"
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise CheckpointError(f"{path}: expected a JSON object of config sections, each an object of "
                              "keys.")
    if task is not None and found != task:
        raise CheckpointError(f"{run_dir} holds {TASKS[found].what} (`{TASKS[found].maker}`), not "
                              f"{TASKS[task].what}; use `{TASKS[found].maker}`'s commands on it"
                              + (f" (`vaekit classify eval {run_dir}`)." if found != "vae" else "."))
    try:
        return TASKS[found].read(raw, str(path))
    except ConfigError as err:
        message = str(err)
        raise CheckpointError(message if str(path) in message else f"{path}: {message}") from None


def save_model(path: Path, model: torch.nn.Module) -> None:
    save_tensors(path, dict(model.state_dict()))


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load a model file's or checkpoint's weights after holding them against the model built from
    config.json: the same names, and for each the parameter's dtype and shape, with finite values
    (NaN weights would be trained on, or evaluated into eval.json). One sentence for a mismatch."""
    expected = model.state_dict()
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise CheckpointError(
            f"{path}: the weights do not match the model of config.json "
            f"(missing {missing[:3]}, unexpected {extra[:3]})."
        )
    for name, ref in expected.items():
        t = tensors[name]
        if t.dtype != ref.dtype:
            raise CheckpointError(f"{path}: {name} is {t.dtype}, but the model of config.json has "
                                  f"{ref.dtype}.")
        if t.shape != ref.shape:
            raise CheckpointError(f"{path}: tensor shapes do not match the model of config.json ({name} is "
                                  f"{tuple(t.shape)}, the model has {tuple(ref.shape)}).")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values; the weights are damaged.")
    model.load_state_dict(tensors)


def device_named(name: str | torch.device) -> torch.device:
    """The device a command loads a run's model on: a name of `config.DEVICES` (cpu, cuda, auto:
    `vaekit.device.resolve_device`, a ConfigError where torch sees no CUDA device), or a
    torch.device as it is; any other name is a ConfigError."""
    if isinstance(name, torch.device):
        return name
    if name not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {str(name)[:40]!r}.")
    return resolve_device(name)


@dataclass
class Run:
    """A trained run, loaded: its directory, config and best model (on its device, eval mode).

    A VAE run (`vaekit train`): `run.model.encode(x)` gives (mu, logvar) of q(z|x),
    `run.model.decode_mean(z)` images in [0, 1], `run.model.sample(n)` images from the prior.
    A classifier run (`vaekit classify`, `run.task == 'classify'`): `run.model(x)` gives logits
    (B, classes) of images x in [0, 1] of shape (B, C, H, W). `run.images()` the test images as the
    model sees them (for a VAE the evaluation protocol of `vaekit.data.binarize.eval_images`; for a
    classifier pixel / 255, resized as it was trained), on the CPU, `run.labels()` their labels.
    """

    path: Path
    config: Any  # TrainConfig (task 'vae') or vaekit.classify.config.ClassifierConfig
    model: Any  # vaekit.vae.base.VAEBase or vaekit.classify.models.Classifier

    @property
    def task(self) -> str:
        return task_for(self.config).name

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one dict per finished epoch."""
        return read_metrics(self.path)

    def _split(self, split: str) -> Any:
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {split!r}.")
        return getattr(load_configured(self.config.data), split)

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """The first `limit` images of a split ('train', 'val', 'test') of the run's dataset, as
        float32 (N, C, H, W): binarized once with the evaluation seed when the run is a binary
        VAE; pixel / 255, resized to the run's side, for a classifier."""
        pixels = self._split(split).images[:limit]
        return task_for(self.config).images(self.config, pixels)

    def labels(self, split: str = "test", limit: int | None = None) -> torch.Tensor | None:
        """The labels (N,) int64 of the split's first `limit` images, or None if it has none."""
        labels = self._split(split).labels
        return None if labels is None else labels[:limit]


def load_run(run_dir: str | Path, task: str | None = None, device: str | torch.device = "cpu") -> Run:
    """The best model of a run (`model.safetensors`) and its config, on `device` (cpu, cuda, auto:
    `device_named`), in eval mode: a VAE or a classifier (`task` None), or only the kind `task`
    names ('vae', 'classify'; a run of the other kind is a CheckpointError saying which command it
    belongs to).

    Raises CheckpointError (one sentence) for a missing directory, config or model file, and for a
    model file that is truncated, not safetensors, or of another architecture; ConfigError for a
    device that is not there (before the run is read).
    """
    where = device_named(device)
    run_dir = Path(run_dir)
    maker = _maker(task or "vae")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory.")
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir} holds no trained model (no {CONFIG}); train one with "
                              f"`{maker} --out {run_dir}`.")
    config = read_config(run_dir, task)
    maker = task_for(config).maker
    if not (run_dir / MODEL).is_file():
        raise CheckpointError(f"{run_dir / MODEL}: no model file there (the run has not finished an "
                              f"epoch); train one with `{maker} --out {run_dir}`.")
    try:
        model = task_for(config).build(config)
    except (ConfigError, SpecError) as err:
        raise CheckpointError(f"{run_dir / CONFIG}: {err}") from None
    tensors, _ = read_tensors(run_dir / MODEL, "model")
    load_weights(model, tensors, run_dir / MODEL)
    model.to(where).eval()
    return Run(run_dir, config, model)


def model_fingerprint(run_dir: str | Path) -> str:
    """SHA-256 of the run's model.safetensors: which weights an eval.json belongs to."""
    path = Path(run_dir) / MODEL
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no model file there; train the run first.") from None


# ----------------------------------------------------------------------------- checkpoints


def encode_bytes(t: torch.Tensor) -> str:
    """A uint8 tensor (an RNG state) as base64 text."""
    return base64.b64encode(t.to("cpu").numpy().tobytes()).decode("ascii")


def decode_bytes(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `opt.state_dict()` into tensors ('optim.<param>.<key>') and JSON-able scalars."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `optimizer_to_flat`: a state dict for `Optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entries in scalars["state"].items():
        state.setdefault(int(pid), {}).update(entries)
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> None:
    """checkpoint.safetensors (weights 'model.*', optimizer 'optim.*', state JSON in the metadata),
    then checkpoint.json (the same state, for people): the first rename is the commit point."""
    opt_tensors, opt_scalars = optimizer_to_flat(optimizer)
    full = {**state, "optimizer": opt_scalars}
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | opt_tensors
    save_tensors(run_dir / CHECKPOINT, tensors, metadata={"checkpoint": json.dumps(full)})
    write_json_atomic(run_dir / CHECKPOINT_JSON, full)


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(model tensors, optimizer tensors, state) from checkpoint.safetensors alone."""
    path = run_dir / CHECKPOINT
    tensors, metadata = read_tensors(path, "checkpoint")
    try:
        state = json.loads(metadata["checkpoint"])
        if not isinstance(state.get("epoch"), int) or "param_groups" not in state["optimizer"]:
            raise KeyError("epoch")
    except (KeyError, ValueError, TypeError, AttributeError):
        raise CheckpointError(f"{path}: a safetensors file without vaekit's checkpoint state.") from None
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return model, optim, state


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl: one JSON object per epoch, with an integer "epoch" >= 1 and
    numbers for every other field. A last line cut by a kill mid-write is dropped; anything else
    that is not such a row is a CheckpointError naming the file and the line."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {err.start}); metrics.jsonl holds one "
                              "JSON object per line.") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read it ({err.strerror}).") from None
    lines = [line for line in text.splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise CheckpointError(f"{path}: line {i + 1} is not JSON.") from None
        epoch = row.get("epoch") if isinstance(row, dict) else None
        if not is_int(epoch) or epoch < 1 or not all(
                is_number(v) for v in row.values()):
            raise CheckpointError(f"{path}: line {i + 1} is not a row of `vaekit train` (an object with "
                                  "an integer epoch >= 1 and numbers for its other fields).")
        rows.append(row)
    return rows


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one row; a failed write leaves at most a cut last line, which `read_metrics` drops."""
    line = json.dumps(row) + "\n"
    try:
        with open(run_dir / METRICS, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise write_error(run_dir / METRICS, len(line), err) from None


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Keep the lines of epochs <= last_epoch (a resumed run redoes the later ones)."""
    rows = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= last_epoch]
    write_bytes_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in rows).encode())
