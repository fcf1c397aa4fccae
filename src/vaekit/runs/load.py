"""A trained run, loaded (`load_run` -> `Run`): its config read through its kind
(`vaekit.runs.kinds`), its model built by that kind and given the weights of model.safetensors, on
a device, once config.json is known to describe those weights (`vaekit.runs.identity`) and the
model's outputs to be finite. Nothing here branches on the kind. Where metrics.jsonl goes past
the epochs the model was trained through (`metrics.rows_past_model`), one note on stderr says which
epoch is used, and `Run.metrics` holds the rows up to it.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaekit.config import DEVICES
from vaekit.data.folder import MixedSizes
from vaekit.data.image_files import Unreadable
from vaekit.data.load import load_configured, user_data_path
from vaekit.device import resolve_device
from vaekit.errors import CheckpointError, ConfigError, DataError, SpecError, VaekitError
from vaekit.regular import check_directory, check_regular
from vaekit.runs.files import (
    CONFIG,
    EVAL,
    METRICS,
    MODEL,
    RESULT_FILES,
    check_writable,
    held_elsewhere,
    parse_json,
    read_run_file,
    write_json_atomic,
)
from vaekit.runs.identity import check_recorded_model, check_weights, missing_model, unclaimed_config
from vaekit.runs.kinds import (
    DEFAULT,
    Task,
    check_config_kind,
    maker_of,
    read_config,
    task_for,
    task_in,
    weights_task,
)
from vaekit.runs.metrics import check_planned, model_metrics, rows_past_model
from vaekit.runs.tensor_files import model_fingerprint, read_metadata, read_tensors
from vaekit.runs.weights import check_checkpoint_file, load_weights

SETTLE_TRIES = 50  # reads of a run being trained whose files disagree, before a refusal (`load_run`)
SETTLE_SECONDS = 0.1  # between two of them: the writes of a model file and its checkpoint, 5 s in all


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
        """metrics.jsonl: one dict per finished epoch, up to the epoch the model was trained through
        (`runs.metrics.model_metrics`)."""
        return model_metrics(self.path)

    def _split(self, split: str) -> Any:
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {split!r}.")
        return getattr(load_run_data(self.config.data, self.path), split)

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
    """`read_run`, read again while another process trains the run (`files.held_elsewhere`) and
    its files do not yet agree: a reader that caught the new model file before the checkpoint that
    records it (each written whole, one after the other) reads the pair once both are there, up to
    `SETTLE_TRIES` times `SETTLE_SECONDS`; what is still wrong then, or in a run no one writes, is
    refused at once."""
    for attempt in itertools.count(1):
        try:
            return read_run(run_dir, task, device)
        except CheckpointError:
            if attempt >= SETTLE_TRIES or not held_elsewhere(Path(run_dir)):
                raise
            time.sleep(SETTLE_SECONDS)
    raise AssertionError("unreachable")


def read_run(run_dir: str | Path, task: str | None = None, device: str | torch.device = "cpu") -> Run:
    """The best model of a run (`model.safetensors`) and its config, on `device` (cpu, cuda, auto:
    `device_named`), in eval mode: a VAE or a classifier (`task` None), or only the kind `task`
    names ('vae', 'classify'; a run of the other kind is a CheckpointError saying which command it
    belongs to). A run is read as the kind its files say, whatever `task` is: a config.json of
    another kind than the weights is named as copied (`kinds.check_config_kind`), and a run of
    another kind is checked as its own commands check it (what is wrong with it named as they name
    it: its model file, say, not config.json) before it is sent to them.

    Raises CheckpointError (one sentence) for a missing directory, config or model file (or one
    that is not a regular file), for a model file that is truncated, not safetensors, or of another
    architecture, for a config.json that is not the one its weights were trained with
    (`identity.check_weights`), and for weights whose outputs are not finite (`check_outputs`);
    ConfigError for a device that is not there (before the run is read).
    """
    where = device_named(device)
    run_dir = Path(run_dir)
    maker = maker_of(task)
    check_run_config(run_dir, maker)
    check_config_kind(run_dir)  # a config.json of another kind than the weights: named as copied
    config = read_config(run_dir, None)  # as its own kind, whatever `task` is: see the docstring
    kind = task_for(config)
    if not check_regular(run_dir / MODEL, "the model's safetensors file", CheckpointError):
        missing = missing_model(run_dir)  # the checkpoint records a model file: deleted or moved
        if missing is not None:
            raise CheckpointError(missing)
        into = "--out DIR" if unclaimed_config(run_dir) else f"--out {run_dir}"  # over vaekit's file only
        raise CheckpointError(f"{run_dir / MODEL}: no model file there (the run has not finished an "
                              f"epoch); train one with `{kind.maker} {into}`.")
    metadata = read_metadata(run_dir / MODEL, "model")  # from the header alone: before a network is built
    if metadata is None:  # no metadata in it, or not a safetensors file (`read_tensors` says so)
        metadata = read_tensors(run_dir / MODEL, "model")[1]
    check_checkpoint_file(run_dir)  # the run id and the metrics digest are held against its state
    check_planned(run_dir)  # an edited train.epochs below the epochs the run holds
    check_weights(run_dir, config, metadata)
    tensors, metadata = read_tensors(run_dir / MODEL, "model")
    model = usable_model(run_dir, config, tensors, where)
    check_recorded_model(run_dir, tensors, metadata)  # weights that work, but the checkpoint's?
    if task is not None and kind.name != task:
        read_config(run_dir, task)  # the sentence that sends a run of another kind to its commands
    note_rows_past_model(run_dir, kind.maker)
    return Run(run_dir, config, model)


def load_run_data(data: Any, run_dir: Path) -> Any:
    """The run's own data, `load_configured(data)` of its config's data section: a folder whose
    images are no longer of one size (read at their own size, as the run read them) is a DataError
    saying the folder changed since the run was trained on it, not advice to pass --image-size or
    --skip-bad, which the run's config fixes; so is a file that became unreadable. A user's file or
    folder no longer where the run recorded it is named as the run's own data, to be put back."""
    place = user_data_path(data.name)
    if place is not None and not os.path.lexists(place):
        raise DataError(f"{data.name}: no such file or folder, where the config.json of {run_dir} records "
                        "the data the run was trained on; put it back there.")
    try:
        return load_configured(data)
    except MixedSizes as err:
        raise DataError(f"{err.said}, but they were of one size when {run_dir} was trained on them: the "
                        "folder has changed since; put back its images as they were.") from None
    except Unreadable as err:
        raise err.advising(f"put back the folder's files as they were when {run_dir} was trained on "
                           "them") from None


def check_run_config(run_dir: Path, maker: str, any_kind: bool = False) -> None:
    """RUN_DIR is a directory holding a config.json that is a regular file: a CheckpointError (one
    sentence) naming the directory, the runs inside it when it is the folder above some (those of
    `maker`'s kind, or of any kind for a command that reads both), or the config.json that is not a
    regular file (a directory, a FIFO, a link to nothing); `maker`, the command that trains such a
    run, is the fix of a directory that holds none."""
    check_directory(run_dir, "a run directory", CheckpointError)
    if not check_regular(run_dir / CONFIG, "the config.json of a run", CheckpointError):
        inside = runs_inside(run_dir)
        if inside:  # the folder above some runs (`vaekit serve runs`), not one: name them
            held = f"{run_dir} is not a run directory but holds runs ({', '.join(inside)}" + (
                ", ..." if len(inside) == 3 else "")
            ours = [name for name in inside if any_kind or task_in(run_dir / name).maker == maker]
            raise CheckpointError(f"{held}); name one, such as {run_dir / ours[0]}." if ours else
                                  f"{held}), none of them of the kind `{maker}` trains; name such a run.")
        results = [name for name in RESULT_FILES if os.path.lexists(run_dir / name)]
        if results:  # a run's files without its config: training into it is refused, so not the fix
            trained = weights_task(run_dir)  # the run's kind, by its weights, over the command's
            maker = maker_of(trained) if trained else maker
            raise CheckpointError(f"{run_dir} holds a run's files ({', '.join(results)}) but no {CONFIG} "
                                  f"(deleted or moved); put back the run's {CONFIG}, or train again into a "
                                  f"new directory (`{maker} --out DIR`).")
        fix = (f"into a new or empty directory (`{maker} --out DIR`)" if any(run_dir.iterdir())  # kept
               else f"with `{maker} --out {run_dir}`")
        raise CheckpointError(f"{run_dir} holds no trained model (no {CONFIG}); train one {fix}.")


def resumed_config(out: str | Path | None, task: str = DEFAULT) -> Any:
    """config.json of the run that `--resume` continues in `out` (`read_config`): no --out, or a
    directory that does not exist or is empty (a train killed before it wrote config.json), is one
    sentence saying so, and that the command without --resume starts a run there."""
    if out is None:
        raise ConfigError("--resume needs --out, the run directory to continue.")
    run_dir = Path(out)
    empty = None if not os.path.lexists(run_dir) else run_dir.is_dir() and not _holds_anything(run_dir)
    if empty is not False:
        maker = maker_of(task)
        raise CheckpointError(f"{run_dir} {'is an empty directory' if empty else 'does not exist'}, so there "
                              f"is no run to resume there; `{maker} --out {run_dir}` (without --resume) "
                              "starts one.")
    check_run_config(run_dir, maker_of(task))  # a config.json deleted, or a folder of runs: as readers say
    return read_config(run_dir, task)


def _holds_anything(run_dir: Path) -> bool:
    """Whether the directory `run_dir` has an entry (one it cannot list counts as one that has)."""
    try:
        with os.scandir(run_dir) as entries:
            return any(True for _ in entries)
    except OSError:
        return True


def usable_model(run_dir: Path, config: Any, tensors: dict[str, torch.Tensor],
                 where: torch.device | None = None) -> torch.nn.Module:
    """The model config.json (read as `config`) builds, given `tensors`, those of
    RUN_DIR/model.safetensors, once they are held against it (`load_weights`: the names, dtypes and
    shapes, finite values), on `where` (the CPU for None) in eval mode, its outputs finite
    (`check_outputs`). Damaged weights are named damaged here, before anything holds the file
    against a record of it (the checkpoint's, an eval.json's), which would call it another file.
    The global RNG is left as it was (a resume has restored it already)."""
    kind = task_for(config)
    try:
        with torch.random.fork_rng(devices=[]):  # its initial weights, replaced: no draw of the caller's
            model = kind.build(config)
    except (ConfigError, SpecError) as err:
        raise CheckpointError(f"{run_dir / CONFIG}: {err}") from None
    except (MemoryError, RuntimeError) as err:  # a config.json edited to a network no memory holds
        why = "out of memory" if isinstance(err, MemoryError) or "alloc" in str(err) else type(err).__name__
        raise CheckpointError(f"{run_dir / CONFIG} describes a network that cannot be built ({why}); it is "
                              "not the config the model file was trained with.") from None
    load_weights(model, tensors, run_dir / MODEL)
    model.to(where or torch.device("cpu")).eval()
    check_outputs(kind, model, run_dir / MODEL)
    return model


def check_model_file(run_dir: Path, config: Any) -> None:
    """RUN_DIR/model.safetensors, when anything is there, is a complete safetensors file of weights
    trained with `config` (`identity.check_weights`) that give a usable model (`usable_model`) and
    are the ones the checkpoint records (`identity.check_recorded_model`): what a resume checks
    before it trains, so that a run does not train on to find at its end that its best model is
    damaged or another run's. A model file the checkpoint records that is not there is named as
    deleted or moved (`identity.missing_model`)."""
    path = run_dir / MODEL
    if os.path.lexists(path):
        tensors, metadata = read_tensors(path, "model")
        check_weights(run_dir, config, metadata)
        usable_model(run_dir, config, tensors)
        check_recorded_model(run_dir, tensors, metadata)
        return
    missing = missing_model(run_dir)
    if missing is not None:  # a resume would train on and end without the best model it recorded
        raise CheckpointError(missing)


class StaleEval(CheckpointError):
    """An eval.json of other weights than the model file's now (`read_eval`): the run trained on
    since, or the model file was put back; evaluating the run again replaces it."""


def read_eval(run_dir: str | Path, check: Callable[[Any, Path], None], command: str) -> dict[str, Any] | None:
    """RUN_DIR/eval.json, of the run's current model: None if there is none; a CheckpointError
    (one sentence) if it is not readable JSON, if `check(result, path)` raises one (the fields a
    kind of run writes, checked by that kind), or if it was computed for other weights than
    model.safetensors (its model_sha256; `command` is the one that evaluates the run again). Where
    the SHA-256s differ, the model file is checked first as a resume checks it (`check_model_file`):
    weights that are damaged, another run's or not those the checkpoint records are named, not an
    eval.json that evaluating again could not set right. A caller that evaluates again whatever is
    wrong catches the CheckpointError."""
    run_dir = Path(run_dir)
    path, what = run_dir / EVAL, f"the eval.json of `{command}`"
    if not check_regular(path, what, CheckpointError):
        return None
    result = _vaekit_eval(path, command, CheckpointError)
    check(result, path)
    if result.get("model_sha256") != model_fingerprint(run_dir):
        check_model_file(run_dir, read_config(run_dir, None))
        raise StaleEval(f"{path} was computed for other weights than {run_dir / MODEL}; run "
                        f"`{command} {run_dir}` again.")
    return result


SHA256 = re.compile(r"[0-9a-f]{64}")


def is_vaekit_eval(obj: Any) -> bool:
    """Whether a JSON value is an eval.json of vaekit's, of any version and kind of run: an object
    whose model_sha256 is 64 lowercase hexadecimal digits, as every one vaekit wrote holds (the SHA-256 of the
    model file it evaluated), whatever else is right or wrong in it. A file of the user's that
    merely names such a field ({"test_nll": "my note"}) is not."""
    return isinstance(obj, dict) and isinstance(obj.get("model_sha256"), str) and bool(
        SHA256.fullmatch(obj["model_sha256"]))


def _vaekit_eval(path: Path, command: str, error: type[VaekitError]) -> Any:
    """The JSON of RUN_DIR/eval.json (`path`, a regular file) if it is vaekit's (`is_vaekit_eval`);
    else `error`, one sentence naming it as no eval.json vaekit wrote, which `command` does not
    replace: text that is not JSON, JSON of other fields (another program's file, a user's notes)."""
    try:
        obj = parse_json(read_run_file(path, "an eval.json").decode("utf-8"))
    except CheckpointError as err:  # larger than any eval.json, or unreadable: its own sentence
        said = str(err).rstrip(".")
    except ValueError as err:
        said = f"{path} is not JSON ({str(err).rstrip('.')}), so it is not an eval.json vaekit wrote"
    except OSError:
        said = f"{path} is not readable, so it is not an eval.json vaekit wrote"
    else:
        if is_vaekit_eval(obj):
            return obj
        said = (f"{path} has no model_sha256 of 64 lowercase hexadecimal digits, which every eval.json "
                "vaekit writes holds, so it is not one vaekit wrote")
    raise error(f"{said}; `{command}` replaces only an eval.json of its own: move this one out of the run "
                f"directory or remove it, then run `{command} {path.parent}`.")


def check_eval_replaceable(run_dir: Path, command: str) -> None:
    """The law for RUN_DIR/eval.json, held before an evaluation and again at its write: nothing
    there, or an eval.json of vaekit's (`is_vaekit_eval`: any of its versions, stale or edited,
    which `command` evaluates again); a regular file of anything else, or a symbolic link, is a
    ConfigError naming it, and is left as it is. Whether the directory takes the file is
    `files.check_writable`'s (a directory or a FIFO named eval.json is never replaced there)."""
    path = run_dir / EVAL
    check_eval_not_link(run_dir, command)
    if os.path.isfile(path):
        _vaekit_eval(path, command, ConfigError)
    check_writable(path)


def check_eval_not_link(run_dir: Path, command: str) -> None:
    """RUN_DIR/eval.json is not a symbolic link: the user's link, wherever it leads, is never
    replaced by a file, so a ConfigError naming it (and `command`, which evaluates the run) comes
    before anything that would evaluate the run or send the user to `command`."""
    path = run_dir / EVAL
    if os.path.islink(path):
        raise ConfigError(f"{path} is a symbolic link, and `{command}` replaces only an eval.json of its "
                          "own: move the link out of the run directory or remove it, then run "
                          f"`{command} {path.parent}`.")


def write_eval(run_dir: Path, result: dict[str, Any], command: str) -> None:
    """RUN_DIR/eval.json: `result` as strict JSON, written atomically, once `check_eval_replaceable`
    holds again at the moment of writing."""
    check_eval_replaceable(run_dir, command)
    write_json_atomic(run_dir / EVAL, result)


_NOTED: set[tuple[str, int, int]] = set()  # the notes said by this process: each once


def note_rows_past_model(run_dir: Path, maker: str) -> None:
    """One note on stderr (once a process for a run in that state) where metrics.jsonl goes past
    the epochs the run's model was trained through (`metrics.rows_past_model`): the epoch that its
    readers use, and the epochs a resume (`maker --resume`) redoes. A run another process holds
    (`files.held_elsewhere`) is being trained, not cut off: its note says so, and no resume."""
    past = rows_past_model(run_dir)
    if past is None or (str(run_dir.resolve()), *past) in _NOTED:
        return
    epoch, last = past
    _NOTED.add((str(run_dir.resolve()), epoch, last))
    if held_elsewhere(run_dir):
        print(f"note: {run_dir} is being trained by another process (its {METRICS} has rows up to epoch "
              f"{last}); this uses the model of its last checkpoint, trained through epoch {epoch}, and the "
              "rows up to it.", file=sys.stderr, flush=True)
        return
    redo = f"epoch {last}" if last == epoch + 1 else f"epochs {epoch + 1}-{last}"
    print(f"note: {run_dir}: {METRICS} has rows up to epoch {last}, but the run's checkpoint and model stop "
          f"at epoch {epoch} (a session cut off after writing its row); this uses the model trained through "
          f"epoch {epoch} and the rows up to it; `{maker} --resume --out {run_dir}` redoes {redo}.",
          file=sys.stderr, flush=True)


GREY = 0.5  # the pixel value of the image `check_outputs` gives a model


def check_outputs(kind: Task, model: torch.nn.Module, path: Path) -> None:
    """What the model computes of two grey images (`Task.outputs`: for a VAE mu, logvar, the decoded
    means and the -ELBO) is finite: weights that are finite but overflow in the forward pass (1e38
    each, or a log-variance whose exp overflows) are a CheckpointError naming the model or
    checkpoint file, not NaN images, an infinite -ELBO or a diverged epoch later. Computed in eval
    mode (no batch statistics updated, no dropout drawn), the model's mode kept."""
    shape = tuple(getattr(model, "image_shape", ()))
    if len(shape) != 3:
        return
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.full((2, *shape), GREY, device=device)
    training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            outputs = kind.outputs(model, x)
    finally:
        model.train(training)
    if not all(bool(torch.isfinite(t).all()) for t in outputs):
        raise CheckpointError(f"{path}: the model's outputs are not finite (on a grey image): its weights "
                              "overflow in the forward pass, so the run cannot be used; train it again.")


def runs_inside(folder: Path, look: int = 1000) -> list[str]:
    """The names of (at most three of) the runs among the first `look` entries of `folder`: the
    folder that holds runs, named where one run was expected."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in itertools.islice(entries, look) if (folder / e.name / CONFIG).is_file()]
    except OSError:
        return []
    return sorted(names)[:3]
