"""Runs on disk (design.md, "Runs on disk"): writing and reading `runs/NAME/`.

    config.json               everything needed to rebuild the model (`TrainConfig` as a dict)
    model.safetensors         the weights with the best validation -ELBO so far
    checkpoint.safetensors    model + optimizer tensors of the last finished epoch, and in its
                              metadata (key "checkpoint") the JSON state below: one file, one rename,
                              so the pair can never be half-written
    checkpoint.json           the same state, readable: epoch, step, optimizer scalars, RNG states,
                              best validation -ELBO, config
    metrics.jsonl             one line per epoch

`load_run` gives a `Run` (config, model, metrics); `model_fingerprint` the SHA-256 that ties an
eval.json to its weights. Every file is written to `NAME.tmp`, flushed to disk and renamed over
`NAME` with `os.replace` (atomic on POSIX), so a kill at any moment leaves the previous good
version. Nothing is ever read with pickle: tensors come from safetensors, the rest from JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from vaekit.config import TrainConfig, from_dict
from vaekit.data.binarize import eval_images
from vaekit.data.load import load_dataset
from vaekit.errors import CheckpointError, ConfigError
from vaekit.vae.models import VAEBase, build_model

CONFIG = "config.json"
MODEL = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
METRICS = "metrics.jsonl"


# ----------------------------------------------------------------------------- atomic writes


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path.tmp`, fsync, then rename over `path` (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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


def write_config(run_dir: Path, config: TrainConfig) -> None:
    write_json_atomic(run_dir / CONFIG, config.to_dict())


def read_config(run_dir: Path) -> TrainConfig:
    path = run_dir / CONFIG
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: no {CONFIG}; is this a run directory of `vaekit train`?") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not readable JSON ({err}).") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object of config sections.")
    try:
        return from_dict(raw, str(path))
    except ConfigError as err:
        raise CheckpointError(str(err)) from None


def save_model(path: Path, model: torch.nn.Module) -> None:
    save_tensors(path, dict(model.state_dict()))


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load a state dict, turning a mismatch into one sentence."""
    expected = set(model.state_dict())
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise CheckpointError(
            f"{path}: the weights do not match the model of config.json "
            f"(missing {missing[:3]}, unexpected {extra[:3]})."
        )
    try:
        model.load_state_dict(tensors)
    except RuntimeError:
        raise CheckpointError(f"{path}: tensor shapes do not match the model of config.json.") from None


@dataclass
class Run:
    """A trained run, loaded: its directory, config and best model (CPU, eval mode).

    `run.model.encode(x)` gives (mu, logvar) of q(z|x), `run.model.decode_mean(z)` images in
    [0, 1], `run.model.sample(n)` images from the prior; `run.images()` the test images as the
    model sees them (the evaluation protocol of `vaekit.data.binarize.eval_images`).
    """

    path: Path
    config: TrainConfig
    model: VAEBase

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one dict per finished epoch."""
        return read_metrics(self.path)

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """The first `limit` images of a split ('train', 'val', 'test') of the run's dataset, as
        float32 (N, C, H, W): binarized once with the evaluation seed when the run is binary."""
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {split!r}.")
        ds = load_dataset(self.config.data.name, self.config.data.data_dir)
        pixels = getattr(ds, split).images[:limit]
        return eval_images(pixels, self.config.resolved_binarize())


def load_run(run_dir: str | Path) -> Run:
    """The best model of a run (`model.safetensors`) and its config, on the CPU, in eval mode.

    Raises CheckpointError (one sentence) for a missing directory, config or model file, and for a
    model file that is truncated, not safetensors, or of another architecture.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory.")
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir} holds no trained model (no {CONFIG}); train one with "
                              f"`vaekit train --out {run_dir}`.")
    config = read_config(run_dir)
    if not (run_dir / MODEL).is_file():
        raise CheckpointError(f"{run_dir / MODEL}: no model file there (the run has not finished an "
                              f"epoch); train one with `vaekit train --out {run_dir}`.")
    try:
        model = build_model(config)
    except ConfigError as err:
        raise CheckpointError(f"{run_dir / CONFIG}: {err}") from None
    tensors, _ = read_tensors(run_dir / MODEL, "model")
    load_weights(model, tensors, run_dir / MODEL)
    model.eval()
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
    """The rows of metrics.jsonl; a last line cut by a kill mid-write is dropped."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break
            raise CheckpointError(f"{path}: line {i + 1} is not JSON.") from None
    return rows


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Keep the lines of epochs <= last_epoch (a resumed run redoes the later ones)."""
    rows = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= last_epoch]
    write_bytes_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in rows).encode())
