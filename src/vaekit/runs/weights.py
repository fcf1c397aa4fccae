"""The tensors of a run: model.safetensors (the weights) and checkpoint.safetensors (the weights,
the optimizer's tensors, and the JSON state of the last finished epoch in its metadata), written
atomically with `vaekit.runs.files`; the optimizer's state split into tensors and JSON scalars,
RNG states as base64 text. Weights read back are held against the model config.json builds, and a
checkpoint against the run it is resumed in (`vaekit.runs.identity`).
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from vaekit.errors import CheckpointError
from vaekit.regular import check_regular
from vaekit.runs.files import (
    CHECKPOINT,
    CHECKPOINT_JSON,
    CONFIG,
    MODEL,
    PUT_BACK,
    NotStrictJSON,
    parse_json,
    read_run_file,
    strict_json,
    write_json_atomic,
)
from vaekit.runs.identity import (
    CHECKPOINT_KEY,
    CONFIG_KEY,
    check_checkpoint,
    run_id,
    tensors_sha256,
    weights_metadata,
)
from vaekit.runs.metrics import DIGEST_KEY, metrics_digest
from vaekit.runs.tensor_files import incomplete, read_metadata, read_tensors, save_tensors


def save_model(path: Path, model: torch.nn.Module) -> None:
    """The model's weights as a plain safetensors file, without vaekit's metadata: not a run's model
    file (a run of this vaekit refuses one without it; `save_weights` writes that)."""
    save_tensors(path, dict(model.state_dict()))


def save_weights(run_dir: Path, tensors: dict[str, torch.Tensor], config: dict[str, Any],
                 epoch: int | None = None) -> str:
    """RUN_DIR/model.safetensors: `tensors`, and in its metadata the config they were trained with
    (`config`, a config.json's JSON: `identity.weights_metadata`), the run id of RUN_DIR/config.json
    and the `epoch` they are of, so that `load_run` refuses a config.json edited since, or a model
    file of another network or run. Returns the SHA-256 of the tensors (`tensors_sha256`), which
    the checkpoint written with it records."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    found = run_id(run_dir) if (run_dir / CONFIG).exists() else None
    save_tensors(run_dir / MODEL, cpu, metadata=weights_metadata(config, found, epoch))
    return tensors_sha256(cpu)


def model_sha256(run_dir: Path) -> str | None:
    """The SHA-256 of the tensors of RUN_DIR/model.safetensors (`tensors_sha256`), or None when
    there is no model file."""
    path = run_dir / MODEL
    return tensors_sha256(read_tensors(path, "model")[0]) if os.path.lexists(path) else None


def unmarked_weights(run_dir: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of RUN_DIR/model.safetensors when the file has no vaekit metadata (a model file
    of an earlier vaekit, in a run this vaekit resumes), so that the checkpoint writes them again
    with it (`save_weights`) even when no epoch of the resume is better; None when there is no
    model file or it has its metadata."""
    path = run_dir / MODEL
    if not os.path.lexists(path) or CONFIG_KEY in (read_metadata(path, "model") or {}):
        return None
    tensors, metadata = read_tensors(path, "model")
    return None if CONFIG_KEY in metadata else tensors


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
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values; the weights are damaged: "
                                  f"{PUT_BACK}.")
    model.load_state_dict(tensors)


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
    then checkpoint.json (the same state, for people): the first rename is the commit point. The
    old checkpoint.json is removed first, so that a kill between the two writes leaves none rather
    than one of the previous checkpoint (`load_checkpoint` holds one that is there against the
    state). The state gets the run's id from config.json ("run_id"; none for a run of an earlier
    vaekit) and the digest of metrics.jsonl's rows of its epochs (`metrics.DIGEST_KEY`)."""
    opt_tensors, opt_scalars = optimizer_to_flat(optimizer)
    found = run_id(run_dir) if (run_dir / CONFIG).exists() else None
    full = {**state, "optimizer": opt_scalars, **({"run_id": found} if found else {}),
            DIGEST_KEY: metrics_digest(run_dir, state["epoch"])}
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | opt_tensors
    if not os.path.isdir(run_dir / CHECKPOINT_JSON):  # a directory there: write_json_atomic says so
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run_dir / CHECKPOINT_JSON)
    save_tensors(run_dir / CHECKPOINT, tensors,
                 metadata={CHECKPOINT_KEY: strict_json(full, run_dir / CHECKPOINT)})
    write_json_atomic(run_dir / CHECKPOINT_JSON, full)


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(model tensors, optimizer tensors, state) from checkpoint.safetensors alone, its state held
    against the run in RUN_DIR (`identity.check_checkpoint`: the run id, the config, the epoch). A
    resume holds checkpoint.json against the state once the state's own fields are checked
    (`check_readable_copy`)."""
    path = run_dir / CHECKPOINT
    tensors, metadata = read_tensors(path, "checkpoint")
    try:
        state = parse_json(metadata.get(CHECKPOINT_KEY, "null"))
    except NotStrictJSON as err:  # whole, but with NaN or Infinity: name where
        raise CheckpointError(f"{path}: its checkpoint state is not strict JSON ({err}).") from None
    except ValueError:
        state = None
    try:
        if not isinstance(state, dict):
            raise KeyError("state")
        if not isinstance(state.get("epoch"), int) or "param_groups" not in state["optimizer"]:
            raise KeyError("epoch")
    except (KeyError, ValueError, TypeError, AttributeError):
        raise CheckpointError(f"{path}: a safetensors file without vaekit's checkpoint state; "
                              f"{PUT_BACK}.") from None
    check_checkpoint(run_dir, state, path)
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return model, optim, state



def check_checkpoint_file(run_dir: Path) -> None:
    """What a reader of the run (`load_run`) asks of RUN_DIR/checkpoint.safetensors, when anything
    is there: a regular file whose header holds vaekit's checkpoint state, the state the run id and
    the metrics digest are held against; an empty, truncated or foreign file is a CheckpointError
    naming it, not a run read as though it had no checkpoint."""
    path = run_dir / CHECKPOINT
    if not check_regular(path, "the checkpoint's safetensors file", CheckpointError):
        return
    metadata = read_metadata(path, "checkpoint")
    if metadata is None:
        raise CheckpointError(incomplete(path, "checkpoint"))
    try:
        state = parse_json(metadata.get(CHECKPOINT_KEY, "null"))
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a safetensors file without vaekit's checkpoint state; {PUT_BACK}.")


def check_readable_copy(run_dir: Path, state: dict[str, Any]) -> None:
    """RUN_DIR/checkpoint.json, when there is one, holds `state`, the state of checkpoint.safetensors
    (what a person or a tool reads of the checkpoint): one that is not readable JSON, or holds
    other values, is a CheckpointError naming it."""
    path = run_dir / CHECKPOINT_JSON
    if not check_regular(path, "the checkpoint.json of a run", CheckpointError):
        return
    try:
        copy = parse_json(read_run_file(path, "the checkpoint.json of a run").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        copy = None
    if copy != state:
        raise CheckpointError(f"{path} does not hold the state of {run_dir / CHECKPOINT} (it was edited, or "
                              "copied from another run); vaekit writes it from that state at each "
                              "checkpoint, so delete it, or put back the one it wrote.")
