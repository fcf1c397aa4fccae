"""Which run a directory and its files belong to.

A run directory is vaekit's when its config.json is the config of a run of a known kind
(`kinds.read_config`); vaekit creates one only in a directory that is missing or empty
(`check_run_dir`, `write_config`), so a user's own files are never written over. When it creates
it, config.json gets the run's identity, `"run": {"id": ...}` (a random 128-bit id, kept by every
later write of config.json), and the files whose contents come from training carry what they were
trained with:

    checkpoint.safetensors   its state (and checkpoint.json) holds the config and the run id
    model.safetensors        its metadata holds the config, the run id and the epoch whose weights
                             it holds (`weights_metadata`); the checkpoint written with it records
                             the SHA-256 of its tensors (`MODEL_SHA_KEY`, `tensors_sha256`)

so that a config.json edited after training (the same shapes, another network), a checkpoint
copied from another run, or a model file trained with another network, is refused with one
sentence (`check_checkpoint`, `check_weights`) instead of being trained on or evaluated. Every
reader holds config.json against the run's checkpoint, when there is one, as a resume does
(`check_same_run`): a config.json of another run (the same config, another run id) is refused.
So is a model file of another run of the same config (its run id: `check_weights`), and one the
checkpoint does not record, an older or other model file of this run put back
(`check_recorded_model`); a model file newer than the checkpoint (its epoch past the checkpoint's:
a run killed between the two writes) is the run's best, not checked against it.

What is missing in a run of an earlier vaekit (written before run ids: no id in config.json, none
in the checkpoint, no metadata in the model file; no run id or epoch in the model file, no model
SHA-256 in the checkpoint) is not a mismatch. A run whose config.json has a
run id was written by this vaekit, which gives every model file it writes its metadata; so there a
model file without it (re-saved by another program, with other weights maybe) is refused
(`check_weights`). One exception keeps a resumed run of an earlier vaekit readable: its
checkpoint has no run id until the resume's first checkpoint, which also gives the model file its
metadata (`unmarked_weights`), so a model file without metadata is refused only where a checkpoint
with a run id, or none, says the run is this vaekit's throughout.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import torch

from vaekit.config import MAX_SIZE, differences, is_int, resumable_of, sections_of
from vaekit.errors import CheckpointError, ConfigError
from vaekit.regular import check_directory
from vaekit.runs.files import (
    CHECKPOINT,
    CHECKPOINT_KEY,
    CONFIG,
    CONFIG_KEY,
    METRICS,
    MODEL,
    is_stale_temp,
    parse_json,
    read_run_file,
    write_json_atomic,
)
from vaekit.runs.kinds import RUN_SECTION, AnyConfig, config_from, read_config, read_raw_config, run_section
from vaekit.runs.tensor_files import read_metadata

RUN_ID_KEY = "vaekit.run_id"  # model.safetensors metadata: the id of the run that trained it
EPOCH_KEY = "vaekit.epoch"  # model.safetensors metadata: the epoch whose weights it holds
MODEL_SHA_KEY = "model_sha256"  # checkpoint state: the SHA-256 of the model file's tensors
DIGEST_KEY = "metrics_sha256"  # checkpoint state: the digest of metrics.jsonl's epochs 1..epoch


def new_run_id() -> str:
    """A fresh run id: 32 hexadecimal digits, random (not from torch's generators)."""
    return uuid.uuid4().hex


def run_id(run_dir: Path) -> str | None:
    """The id in RUN_DIR/config.json, or None for a run of an earlier vaekit (CheckpointError if
    config.json is missing or damaged, or has no id where the checkpoint or the model file carries
    one: `check_unmarked_config`)."""
    found = run_section(read_raw_config(Path(run_dir)), Path(run_dir) / CONFIG)
    if found is None:
        check_unmarked_config(Path(run_dir))
    return found


def check_unmarked_config(run_dir: Path) -> None:
    """RUN_DIR/config.json has no run id: it is a run of an earlier vaekit only if neither its
    checkpoint nor its model file carries one either (vaekit writes config.json's id before either
    file), so a run id in one of them is a CheckpointError naming config.json, edited or another
    run's. A file that cannot be read carries none here; its own readers say what is wrong."""
    for name in (CHECKPOINT, MODEL):
        try:
            metadata = read_metadata(run_dir / name, "checkpoint" if name == CHECKPOINT else "model") or {}
        except CheckpointError:
            continue
        state = _json(metadata.get(CHECKPOINT_KEY)) if name == CHECKPOINT else metadata
        key = "run_id" if name == CHECKPOINT else RUN_ID_KEY
        carried = state.get(key) if isinstance(state, dict) else None
        if carried is not None:
            raise CheckpointError(f"{run_dir / CONFIG} has no \"{RUN_SECTION}\" section (the run id), though "
                                  f"{run_dir / name} carries run id {str(carried)[:40]}, which vaekit "
                                  "writes into config.json first: config.json was edited or is another "
                                  "run's; put back the config.json the run wrote.")


def unclaimed_config(run_dir: Path) -> bool:
    """RUN_DIR/config.json has no run id and no run's file (model, checkpoint, metrics) is beside it:
    nothing shows vaekit wrote it (`{}` reads as a config of defaults), so it is never written over."""
    return run_section(read_raw_config(run_dir), run_dir / CONFIG) is None and not any(
        os.path.lexists(run_dir / name) for name in (MODEL, CHECKPOINT, METRICS))


def check_run_dir(run_dir: Path) -> None:
    """The directory a new run is written into is missing, empty, or a run of vaekit's (its
    config.json that of a run of a known kind, with a run id or a run's files beside it,
    `unclaimed_config`): anything else is a CheckpointError naming it, before anything is written,
    so that a user's own files are never written over."""
    run_dir = Path(run_dir)
    if not os.path.lexists(run_dir):
        return
    check_directory(run_dir, "a run directory", CheckpointError)
    if os.path.lexists(run_dir / CONFIG):
        try:
            read_config(run_dir, None)
        except CheckpointError as err:
            why = str(err).removeprefix(f"{run_dir / CONFIG}: ").rstrip(".")
            raise CheckpointError(f"{run_dir / CONFIG} is not the config.json of a vaekit run ({why}), so "
                                  f"{run_dir} is left as it is; choose another --out, an empty or new "
                                  "directory.") from None
        if unclaimed_config(run_dir):
            raise CheckpointError(f"{run_dir / CONFIG} has no run id and no run's files beside it, so "
                                  f"nothing shows a vaekit run wrote it and {run_dir} is left as it is; "
                                  "choose another --out, an empty or new directory.")
        return
    with os.scandir(run_dir) as entries:
        names = sorted(e.name if e.name.isprintable() else repr(e.name) for e in entries
                       if not is_stale_temp(e.name))
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise CheckpointError(f"{run_dir} is not empty ({shown}) and holds no run of vaekit (no {CONFIG}); "
                              "a new run is written only into an empty or new directory, so choose "
                              "another --out.")


def write_config(run_dir: Path, config: AnyConfig) -> None:
    """RUN_DIR/config.json: the config and the run's id (kept from the config.json there, new for a
    new run). Refused (`check_run_dir`) in a directory that is neither empty nor a run."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    found = run_id(run_dir) if os.path.lexists(run_dir / CONFIG) else None
    write_json_atomic(run_dir / CONFIG, {**config.to_dict(), RUN_SECTION: {"id": found or new_run_id()}})


def weights_metadata(config: dict[str, Any], run: str | None = None,
                     epoch: int | None = None) -> dict[str, str]:
    """The metadata of a model file trained with `config` (a config.json's JSON, its run section
    left out) in the run of id `run`, holding the weights of `epoch` (each left out when None)."""
    plain = {k: v for k, v in config.items() if k != RUN_SECTION}
    return {CONFIG_KEY: json.dumps(plain, allow_nan=False), **({RUN_ID_KEY: run} if run else {}),
            **({EPOCH_KEY: str(epoch)} if is_int(epoch) else {})}


def rows_sha256(lines: Iterable[str]) -> str:
    """The digest a checkpoint records of metrics.jsonl's rows of its epochs (`DIGEST_KEY`): the
    SHA-256 of the lines, each with its newline (`head -n EPOCH metrics.jsonl | sha256sum`)."""
    return hashlib.sha256("".join(line + "\n" for line in lines).encode("utf-8")).hexdigest()


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """The SHA-256 of named tensors: each name, dtype, shape and bytes, in the order of the names
    (what identifies a model file's weights, whatever its metadata)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode("utf-8") + b"\0")
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _changed(trained: Any, current: Any) -> list[str]:
    """The fields of config.json (`current`) that differ from the config the weights were trained
    with, but the resumable ones. Configs of two kinds differ in their "task"; the configs of a kind
    not made of sections, in "config" when they differ at all."""
    if type(trained) is not type(current):
        return ["task"]
    if not all(is_dataclass(part) for part in sections_of(current).values()):  # a kind without sections
        return [] if trained.to_dict() == current.to_dict() else ["config"]
    allowed = set(resumable_of(current))
    return [d for d in differences(trained, current) if d not in allowed]


def _described(changed: list[str], trained: Any, current: Any) -> str:
    """'model.activation: "tanh" here, "relu" in training; ...' for the first few fields."""
    if changed in (["task"], ["config"]):
        return "another kind of run" if changed == ["task"] else "another config"
    now, then = sections_of(current), sections_of(trained)

    def value(sections: dict[str, Any], name: str) -> str:
        section, key = name.split(".", 1)
        return json.dumps(getattr(sections[section], key))[:40]

    shown = [f"{d}: {value(now, d)} here, {value(then, d)} in training" for d in changed[:3]]
    return "; ".join(shown) + (f"; {len(changed) - 3} more" if len(changed) > 3 else "")


def _trained_config(raw: Any, path: Path, what: str) -> Any:
    try:
        copy = json.loads(json.dumps(raw))  # config_from takes "task" out of it
        run_section(copy, path)
        return config_from(copy, path, None, complete=True)  # written whole: a key missing is damage
    except (CheckpointError, ConfigError, ValueError, TypeError):
        raise CheckpointError(f"{path}: {what} is not the config of a vaekit run; the file is damaged, "
                              "or not vaekit's.") from None


def check_checkpoint(run_dir: Path, state: dict[str, Any], path: Path) -> None:
    """A checkpoint's state belongs to the run in RUN_DIR: the same run id as config.json (when both
    have one), its config the same as config.json's but for the fields a resume may change, its
    epoch within its config's epochs and config.json's, and the epoch of its progress record."""
    epoch = state["epoch"]
    if not is_int(epoch) or not 1 <= epoch <= MAX_SIZE:
        raise CheckpointError(f"{path}: epoch must be an integer between 1 and {MAX_SIZE:,}, got "
                              f"{str(epoch)[:40]}.")
    progress = state.get("progress")
    if isinstance(progress, dict) and progress.get("epoch") != epoch:
        raise CheckpointError(f"{path}: the progress record's epoch ({str(progress.get('epoch'))[:40]}) is "
                              f"not the checkpoint's ({epoch}); the state is damaged.")
    if not os.path.lexists(run_dir / CONFIG):  # a checkpoint alone: nothing to hold it against
        return
    current = read_config(run_dir, None)
    check_same_run(run_dir, state, path)
    if "config" in state:
        trained = _trained_config(state["config"], path, "the config in its state")
        changed = _changed(trained, current)
        if changed:
            raise CheckpointError(f"{run_dir / CONFIG} is not the config {path} was trained with "
                                  f"({_described(changed, trained, current)}); put back the config of "
                                  "that training, or train into another --out.")
        if epoch > trained.train.epochs:
            raise CheckpointError(f"{path}: epoch {epoch} is beyond the {trained.train.epochs} epochs of "
                                  "the config in its state; the state is damaged.")
    if epoch > current.train.epochs:
        raise CheckpointError(f"{path}: epoch {epoch} is beyond the {current.train.epochs} epochs of "
                              f"{run_dir / CONFIG}; the checkpoint is not of this run, or config.json "
                              "was edited.")


def check_same_run(run_dir: Path, state: Any, path: Path) -> None:
    """The checkpoint state `state` (read from `path`) is of the run config.json names: the same
    run id, when both have one. A CheckpointError otherwise, naming the file that is the odd one out
    where model.safetensors carries the id of one of them: the checkpoint copied from another run of
    the same config; or, where the model file agrees with the checkpoint, config.json copied if
    metrics.jsonl holds the rows the checkpoint recorded (`_rows_recorded`), both weight files
    copied if it does not, either where that cannot be told; else both files."""
    theirs = state.get("run_id") if isinstance(state, dict) else None
    ours = run_id(run_dir)
    if theirs is None or ours is None or theirs == ours:
        return
    model = _model_run_id(run_dir)
    rows_agree = _rows_recorded(run_dir, state)
    if model == theirs and rows_agree is False:
        raise CheckpointError(f"{run_dir / MODEL} and {path} were copied from another run (run id "
                              f"{str(theirs)[:40]}): {run_dir / CONFIG} has run id {ours}, and the rows of "
                              f"{run_dir / METRICS} are not those the checkpoint recorded (metrics_sha256); "
                              "put back the run's own weight files, or train into another --out.")
    if model == theirs and rows_agree:
        raise CheckpointError(f"{run_dir / CONFIG} was copied from another run (run id {ours}): "
                              f"{run_dir / MODEL} and {path} agree on run id {str(theirs)[:40]}, and on "
                              f"{run_dir / METRICS}; put back the run's own config.json, or train into "
                              "another --out.")
    if model == theirs:
        raise CheckpointError(f"{run_dir / MODEL} and {path} agree on run id {str(theirs)[:40]}, "
                              f"{run_dir / CONFIG} has run id {ours}: either config.json or both weight "
                              "files were copied from another run; put back the run's own, or train into "
                              "another --out.")
    if model == ours:
        raise CheckpointError(f"{path} was copied from another run (run id {str(theirs)[:40]}): "
                              f"{run_dir / CONFIG} and {run_dir / MODEL} agree on run id {ours}; put back "
                              "the run's own checkpoint, or train into another --out.")
    raise CheckpointError(f"{path} belongs to another run (run id {str(theirs)[:40]}) than "
                          f"{run_dir / CONFIG} (run id {ours}): one of them was copied from another "
                          "run; put back the run's own file, or train into another --out.")


def _rows_recorded(run_dir: Path, state: dict[str, Any]) -> bool | None:
    """Whether RUN_DIR/metrics.jsonl's first rows are those the checkpoint state recorded
    (`DIGEST_KEY` of its epochs, `rows_sha256`): the rows written beside the checkpoint, so that it
    is the run's own where the config.json's is not; None where it cannot tell (no digest, no
    readable file). The rows' own checks are `vaekit.runs.metrics`'s."""
    epoch, digest = state.get("epoch"), state.get(DIGEST_KEY)
    if not (is_int(epoch) and isinstance(digest, str)):
        return None
    try:
        text = read_run_file(run_dir / METRICS, "the metrics.jsonl of a run").decode("utf-8")
    except (CheckpointError, OSError, UnicodeDecodeError):
        return None
    lines = [line.splitlines()[0] for line in text.splitlines(keepends=True) if line.strip()]
    return rows_sha256(lines[:epoch]) == digest


def _model_run_id(run_dir: Path) -> str | None:
    """The run id in RUN_DIR/model.safetensors's metadata; None where it has none or cannot be read
    (its own readers say what is wrong)."""
    try:
        metadata = read_metadata(run_dir / MODEL, "model") or {}
    except CheckpointError:
        return None
    found = metadata.get(RUN_ID_KEY)
    return found if isinstance(found, str) else None


def checkpoint_state(run_dir: Path) -> Any:
    """The state in RUN_DIR/checkpoint.safetensors' metadata, or None: no checkpoint, or one whose
    state cannot be read (its own readers say why); a padded or truncated one is the CheckpointError
    of `read_metadata`."""
    return _json((read_metadata(run_dir / CHECKPOINT, "checkpoint") or {}).get(CHECKPOINT_KEY))


def trained_epochs(out: str | Path | None) -> int:
    """The epochs the run in `out` has trained, as its checkpoint records them; 0 for no run, or a
    checkpoint that cannot be read (what a resume reads is judged there)."""
    if out is None:
        return 0
    try:
        state = checkpoint_state(Path(out))
    except (CheckpointError, OSError):
        return 0
    progress = state.get("progress") if isinstance(state, dict) else None
    epoch = progress.get("epoch") if isinstance(progress, dict) else None
    return epoch if is_int(epoch) and epoch > 0 else 0


def check_trained_config(run_dir: Path, config: Any) -> None:
    """RUN_DIR/config.json (read as `config`) is the config model.safetensors was trained with, read
    from the model file's header alone (`check_weights`): what a reader of a file computed from the
    weights (eval.json) checks first, so that an edited config.json is named, not the file it no
    longer agrees with. A model file the checkpoint records but that is not there is named as
    deleted or moved (`missing_model`); one without a header's metadata is left to `load_run`."""
    missing = None if os.path.lexists(run_dir / MODEL) else missing_model(run_dir)
    if missing is not None:
        raise CheckpointError(missing)
    metadata = read_metadata(run_dir / MODEL, "model")
    if metadata is not None:
        check_weights(run_dir, config, metadata)


def missing_model(run_dir: Path) -> str | None:
    """Where RUN_DIR has no model.safetensors but its checkpoint records one (the SHA-256 of its
    tensors, written with each checkpoint once a best epoch was saved), the sentence that says it
    was deleted or moved; None where the checkpoint records none (a run that has not finished an
    epoch, or one of an earlier vaekit)."""
    state = checkpoint_state(run_dir)
    if not isinstance(state, dict) or state.get(MODEL_SHA_KEY) is None:
        return None
    progress = state.get("progress")
    best = progress.get("best_epoch") if isinstance(progress, dict) else None
    of = f"the best of epoch {str(best)[:20]}" if is_int(best) else "its best weights"
    return (f"{run_dir / MODEL}: no model file there, but {run_dir / CHECKPOINT} records one ({of}), so it "
            "was deleted or moved; put it back, or train the run again into another --out.")


def check_weights(run_dir: Path, config: Any, metadata: dict[str, str]) -> None:
    """RUN_DIR/config.json (read as `config`) is the config the weights in model.safetensors (its
    `metadata`) were trained with: every field but those a resume may change (`resumable_of`: the
    epochs a resume or a time budget's re-plan sets, the threads, ...), so that another network,
    other data or another seed is refused; the config trained with comes from the model file's
    metadata, or else, in a run of an earlier vaekit (the module's docstring), from the run's
    checkpoint. A checkpoint of another run than config.json's is refused (`check_same_run`), and so
    is a model file without metadata in a run of this vaekit. Nothing to compare with (a run of an
    earlier vaekit) is no mismatch."""
    model = run_dir / MODEL
    state = checkpoint_state(run_dir)
    if CONFIG_KEY in metadata:
        _compare(run_dir, config, model, _json(metadata[CONFIG_KEY]), state)
    check_same_run(run_dir, state, run_dir / CHECKPOINT)
    ours, theirs = run_id(run_dir), metadata.get(RUN_ID_KEY)
    if theirs is not None and ours is not None and theirs != ours:
        raise CheckpointError(f"{model} was copied from another run (run id {str(theirs)[:40]}) than "
                              f"{run_dir / CONFIG} (run id {ours}), though of the same config; put back "
                              "the model file the run wrote, or train the run again into another --out.")
    if CONFIG_KEY in metadata:
        return
    earlier = isinstance(state, dict) and state.get("run_id") is None  # a checkpoint of an earlier vaekit
    if run_id(run_dir) is not None and not earlier:
        raise CheckpointError(f"{model} has no vaekit metadata (the config it was trained with), which "
                              f"this vaekit writes into every model file of a run like {run_dir} (its "
                              "config.json has a run id), so it was not written by vaekit; put back the "
                              "model file the run wrote, or train the run again into another --out.")
    if earlier and "config" in state:
        _compare(run_dir, config, run_dir / CHECKPOINT, state["config"])


def check_recorded_model(run_dir: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """RUN_DIR/model.safetensors (its `tensors` and `metadata`) is the model file the run's
    checkpoint records (its tensors' SHA-256), unless the model file's epoch is past the
    checkpoint's (written by a session killed before its checkpoint) or either file is of an
    earlier vaekit: another is an older or other model file of this run, put back."""
    state = checkpoint_state(run_dir)
    recorded = state.get(MODEL_SHA_KEY) if isinstance(state, dict) else None
    if recorded is None:
        return
    epoch = _json(metadata.get(EPOCH_KEY))
    if is_int(epoch) and is_int(state.get("epoch")) and epoch > state["epoch"]:
        return
    if tensors_sha256(tensors) != recorded:
        progress = state.get("progress")
        best = progress.get("best_epoch") if isinstance(progress, dict) else None
        held = f"epoch {epoch}'s weights" if is_int(epoch) else "other weights"
        raise CheckpointError(f"{run_dir / MODEL} is not the model file {run_dir / CHECKPOINT} records (the "
                              f"best of epoch {str(best)[:20]}) but an older or other model file of this "
                              f"run ({held}); put back the model file the run wrote last, or train the "
                              "run again.")


def _compare(run_dir: Path, config: Any, source: Path, raw: Any, state: Any = None) -> None:
    """config.json (read as `config`) against the config `source` records (`raw`), but the fields a
    resume may change; a CheckpointError naming the first few that differ. Where the checkpoint
    `state` vouches for config.json (`_vouched`), the model file is the one that is not the run's."""
    trained = _trained_config(raw, source, "the config it records")
    changed = _changed(trained, config)
    if changed and source.name == MODEL and _vouched(run_dir, config, state):
        raise CheckpointError(f"{source} is not this run's: its weights were trained with another config "
                              f"({_described(changed, trained, config)}), where {run_dir / CONFIG} and "
                              f"{run_dir / CHECKPOINT} agree and carry the same run id, so it was copied "
                              "from another run; put back the model file the run wrote, or train it again.")
    if changed:
        raise CheckpointError(f"{run_dir / CONFIG} is not the config the weights of {run_dir / MODEL} were "
                              f"trained with ({_described(changed, trained, config)}; according to "
                              f"{source.name}); put back the config of that training.")


def _vouched(run_dir: Path, config: Any, state: Any) -> bool:
    """The checkpoint's `state` carries config.json's run id and a config that config.json differs
    from in no field a resume may not change: config.json is the run's own."""
    ours = run_id(run_dir)
    if not isinstance(state, dict) or ours is None or state.get("run_id") != ours or "config" not in state:
        return False
    try:
        return not _changed(_trained_config(state["config"], run_dir / CHECKPOINT, "its config"), config)
    except CheckpointError:
        return False


def _json(text: str | None) -> Any:
    try:
        return None if text is None else parse_json(text)
    except ValueError:
        return None
