"""The kinds of run (`Task`): what a run directory's config.json holds, the model it builds and the
images its model sees. 'vae' (`vaekit train`) is registered here, and is the kind of a config.json
without a "task" key; `vaekit.classify` registers 'classify' (`register_task`) when it is imported
(`import vaekit` always imports it), so that this layer knows no classifier. A kind is read,
built and fed through its entry: nothing here branches on a kind's name.

config.json also holds the run's identity, `"run": {"id": "<32 hex digits>"}` (`RUN_SECTION`),
written when the run is created (`vaekit.runs.identity`); `read_config` checks it and leaves it out
of the config. A config.json of an earlier vaekit has none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from vaekit.config import TrainConfig, from_dict, spell, spell_key
from vaekit.config import validate as validate_config
from vaekit.data.binarize import eval_images
from vaekit.data.load import same_source, user_data_path, uses_data_dir
from vaekit.errors import CheckpointError, ConfigError
from vaekit.runs.files import CHECKPOINT, CHECKPOINT_KEY, CONFIG, CONFIG_KEY, MODEL, parse_json, read_run_file
from vaekit.runs.tensor_files import read_metadata
from vaekit.vae.models import build_model
from vaekit.vae.prob import negative_elbo

DEFAULT = "vae"  # the kind of a config.json without "task"
RUN_SECTION = "run"  # config.json's {"id": ...}: which run the directory holds
RUN_ID = re.compile(r"[0-9a-f]{32}")


class AnyConfig(Protocol):
    """The config of a run of any task (`TrainConfig`, a classifier's `ClassifierConfig`)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Task:
    """A kind of run: the config.json it holds, the model it builds, the images its model sees."""

    name: str  # config.json's "task" ('vae': none)
    maker: str  # the command that trains one
    what: str  # such a run, in words
    config_type: type
    read: Callable[[dict[str, Any], str], Any]  # config.json's sections, its path -> a checked config
    build: Callable[[Any], torch.nn.Module]  # a config -> its model (untrained)
    images: Callable[[Any, torch.Tensor], torch.Tensor]  # config, uint8 pixels -> the model's images
    hint: str = ""  # ends "use `MAKER`'s commands on it" when another kind was expected ({run_dir})
    # model, images x (B, C, H, W) in [0, 1] -> what the model computes of them (all must be finite)
    outputs: Callable[[Any, torch.Tensor], tuple[torch.Tensor, ...]] = lambda model, x: (model(x),)


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    """Make runs of `task` readable and loadable (`read_config`, `load_run`)."""
    TASKS[task.name] = task


def task_for(config: Any) -> Task:
    """The task of a config: the registered one whose config type it has; 'vae' otherwise."""
    return next((t for t in TASKS.values() if isinstance(config, t.config_type)), TASKS[DEFAULT])


def maker_of(task: str | None) -> str:
    """The command that trains runs of `task` (of a VAE for None or a name not registered)."""
    return TASKS[task].maker if task in TASKS else TASKS[DEFAULT].maker


PROBE_SEED = 0  # the eps of `vae_outputs`' -ELBO: its own generator, no draw of a run's


def vae_outputs(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """mu and logvar of q(z|x), the images E[x|z] that z = mu decodes to, and the one-sample -ELBO
    of x (Ex.2 Q6: exp(logvar) and the likelihood's terms, where finite weights can overflow)."""
    mu, logvar = model.encode(x)
    generator = torch.Generator(device=x.device).manual_seed(PROBE_SEED)
    return mu, logvar, model.decode_mean(mu), negative_elbo(x, model, generator=generator).neg_elbo


RUN_FIX = "config.json records what the run trained with, so put back the one the run wrote"
register_task(Task(DEFAULT, "vaekit train", "a VAE run", TrainConfig,
                   lambda raw, origin: validate_config(from_dict(raw, origin), RUN_FIX), build_model,
                   lambda config, pixels: eval_images(pixels, config.resolved_binarize()),
                   outputs=vae_outputs))


def anchor_data(config: Any, resumed: Any = None) -> None:
    """A user's file or folder (data.name) and a data directory (data.data_dir) named relative to
    the working directory, made absolute in `config`, so that the run, which records them in its
    config.json, finds them from any directory later; where `resumed` (the config of the run a
    resume continues) names the same file or folder, the name as the run wrote it, which its
    model file records too. A name of no file or folder (a set known by name) is left as it is."""
    data, old = config.data, None if resumed is None else resumed.data
    if old is not None and same_source(data.name, old.name):
        data.name = old.name
    elif user_data_path(data.name) is not None and os.path.lexists(data.name):
        data.name = os.path.abspath(data.name)
    if data.data_dir is not None and os.path.isdir(data.data_dir):
        data.data_dir = os.path.abspath(data.data_dir)


def task_in(run_dir: Path, strict: bool = False) -> Task:
    """The kind of run RUN_DIR's config.json names, without checking the rest: a missing or
    unreadable config.json, or a "task" not registered, reads as 'vae', whose reading (`read_config`,
    `load_run`) then says what is wrong; `strict`: a task not registered is the CheckpointError
    naming config.json (`task_of`) at once, for a reader that reads other files of the run first."""
    try:
        raw = parse_json(read_run_file(Path(run_dir) / CONFIG, "a config.json")
                         .decode("utf-8"))
    except (OSError, ValueError, CheckpointError):
        return TASKS[DEFAULT]
    if strict and isinstance(raw, dict) and "task" in raw:
        return TASKS[task_of(dict(raw), Path(run_dir) / CONFIG)]
    name = raw.get("task") if isinstance(raw, dict) else None
    return TASKS[name] if isinstance(name, str) and name in TASKS else TASKS[DEFAULT]


def task_of(raw: dict[str, Any], path: Path) -> str:
    """The kind of run a config.json describes: its "task" ('classify'), or 'vae' without one."""
    task = raw.pop("task", DEFAULT)
    if not isinstance(task, str) or task not in TASKS:
        raise CheckpointError(f"{path}: unknown task {json.dumps(task)[:40]}; expected "
                              f"one of {', '.join(json.dumps(t) for t in TASKS)}.")
    return task


def read_raw_config(run_dir: Path, maker: str = TASKS[DEFAULT].maker) -> Any:
    """The JSON of RUN_DIR/config.json, unchecked: a CheckpointError (one sentence) if there is none
    (`maker`: the command that makes such runs), if it is not a regular file or not JSON."""
    path = run_dir / CONFIG
    try:
        return parse_json(read_run_file(path, "the config.json of a run").decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: no {CONFIG}, so it is not a run directory of "
                              f"`{maker}`.") from None
    except (OSError, ValueError) as err:
        detail = getattr(err, "strerror", None) or str(err).rstrip(".")
        raise CheckpointError(f"{path}: not readable JSON ({detail}).") from None


def run_section(raw: Any, path: Path) -> str | None:
    """The run id of a config.json's JSON (`RUN_SECTION`), taken out of it; None if it has none (a
    run of an earlier vaekit); a CheckpointError naming `path` if the section is not {"id": hex}."""
    if not isinstance(raw, dict) or RUN_SECTION not in raw:
        return None
    section = raw.pop(RUN_SECTION)
    found = section.get("id") if isinstance(section, dict) and set(section) == {"id"} else None
    if not isinstance(found, str) or not RUN_ID.fullmatch(found):
        raise CheckpointError(f"{path}: \"{RUN_SECTION}\" must be {{\"id\": 32 hexadecimal digits}}, the "
                              "identity vaekit gave the run; put back the config.json the run wrote.")
    return found


def trained_kinds(run_dir: Path) -> list[tuple[str, str]]:
    """(file name, kind) of RUN_DIR's model file and checkpoint, each as the config it records it
    was trained with says (its "task"; 'vae' without one); a file that cannot be read, or records no
    config, is left out (its own readers say what is wrong)."""
    found = []
    for name, key, what in ((MODEL, CONFIG_KEY, "model"), (CHECKPOINT, CHECKPOINT_KEY, "checkpoint")):
        try:
            recorded = parse_json((read_metadata(run_dir / name, what) or {}).get(key) or "null")
        except (CheckpointError, ValueError):
            continue
        config = recorded.get("config") if name == CHECKPOINT and isinstance(recorded, dict) else recorded
        task = config.get("task", DEFAULT) if isinstance(config, dict) else None
        if isinstance(task, str):
            found.append((name, task))
    return found


def weights_task(run_dir: Path) -> str | None:
    """The kind of run RUN_DIR's model file and checkpoint were trained as, where they name one
    (`trained_kinds`); None where they name none or disagree."""
    kinds = {kind for _, kind in trained_kinds(run_dir)}
    return kinds.pop() if len(kinds) == 1 else None


def _copied_config(path: Path, held: str, files: list[str], trained: str) -> CheckpointError:
    """config.json (`path`) of a `held` run in a directory whose `files` hold the weights of a
    `trained` run: the config.json is the file copied from another run."""
    what = TASKS[held]
    return CheckpointError(f"{path} is the config of {what.what} (`{what.maker}`), but "
                           f"{' and '.join(str(path.parent / n) for n in files)} hold"
                           f"{'s' * (len(files) == 1)} the weights of {TASKS[trained].what}: config.json "
                           "was copied from another run; put back the config.json the run wrote.")


def check_config_kind(run_dir: Path) -> None:
    """RUN_DIR/config.json names the kind of run its model file and checkpoint were trained with
    (`trained_kinds`): where they agree on another kind, a CheckpointError naming config.json as
    copied from another run, before anything that depends on the kind (a report's page, its
    options, eval.json) is read. A config.json that is not JSON is named so here, as every reader
    names it (the kind a reader is chosen by is not known then); one without "task" and with
    keys of no run's config is named by its first unknown key, not as a copied config. One that
    cannot be opened, names no known kind, or files that disagree among themselves, are left to
    their readers."""
    path = Path(run_dir) / CONFIG
    try:
        raw = parse_json(read_run_file(path, "a config.json").decode("utf-8"))
    except ValueError as err:
        raise CheckpointError(f"{path}: not readable JSON ({str(err).rstrip('.')}).") from None
    except (OSError, CheckpointError):
        return
    held = raw.get("task", DEFAULT) if isinstance(raw, dict) else None
    trained = trained_kinds(Path(run_dir))
    kinds = {kind for _, kind in trained}
    if isinstance(held, str) and held in TASKS and len(kinds) == 1 and held not in kinds:
        trained_as = kinds.pop()
        if "task" not in raw:  # no kind named: another kind's config only if its keys are the default kind's
            sections = {k: v for k, v in raw.items() if k != RUN_SECTION}
            if not sections:  # nothing of any kind's config: an emptied or edited file, not a copied one
                names = ", ".join(f.name for f in dataclasses.fields(TASKS[trained_as].config_type))
                raise CheckpointError(f"{path} holds none of the sections ({names}) of the config of "
                                      f"{TASKS[trained_as].what}, the kind its model file and checkpoint "
                                      "were trained as: it was emptied or edited; put back the config.json "
                                      "the run wrote.")
            _check_sections(sections, path, TASKS[held])
            if _keys_of(TASKS[trained_as], sections):  # the trained kind's own keys, "task" taken out
                raise _lacks_task(path, trained_as)
        raise _copied_config(path, held, [name for name, _ in trained], trained_as)


def _lacks_task(path: Path, kind: str) -> CheckpointError:
    """config.json (`path`) of a run of `kind` whose "task" was removed (`_keys_of`)."""
    what = TASKS[kind].what
    return CheckpointError(f"{path} lacks \"task\": \"{kind}\", which every config.json of {what} holds, "
                           f"and its keys, model file and checkpoint are of {what}: it was edited; put back "
                           "the config.json the run wrote.")


def _keys_of(task: Task, sections: dict[str, Any]) -> bool:
    """Whether the config sections of a config.json hold keys of `task`'s config only, some of which
    no config of the default kind has: a config of `task`'s with its "task" removed."""
    own = {k: set(v) for k, v in task.config_type().to_dict().items() if isinstance(v, dict)}
    default = {k: set(v) for k, v in TASKS[DEFAULT].config_type().to_dict().items() if isinstance(v, dict)}
    keys = {(section, key) for section, part in sections.items() for key in part}
    return (all(key in own.get(section, ()) for section, key in keys)
            and any(key not in default.get(section, ()) for section, key in keys))


def _check_sections(raw: dict[str, Any], path: Path, task: Task) -> None:
    """Each key of a config.json's JSON (task and run taken out) a section of `task`'s config whose
    value is an object of keys: a CheckpointError naming the first key that is not, and the keys a
    config.json of that kind may hold at its top level (task, run and the sections)."""
    sections = [f.name for f in dataclasses.fields(task.config_type)]
    for key, value in raw.items():
        if key not in sections:
            valid = ", ".join(["task", RUN_SECTION, *sections])
            raise CheckpointError(f"{path}: unknown key {spell_key(key)}; the keys of a config.json of "
                                  f"{task.what} (`{task.maker}`) are {valid}.")
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: {key} must be an object of keys (its section of the config), "
                                  f"got {spell(value)}.")


def _check_complete(raw: dict[str, Any], path: Path, task: Task) -> None:
    """Every section and key of `task`'s config in a config.json's JSON (task and run taken out):
    a config.json with a run id was written whole by this vaekit, so a key it lacks was removed by
    hand, and reading the default in its place would change the run (a resume of 2 epochs going
    on to 10). A CheckpointError names the first keys missing. (A key added to the config later
    than the run id would have to be let through here for runs written before it.)"""
    written = {k: v for k, v in task.config_type().to_dict().items() if isinstance(v, dict)}
    missing = [f"{section}.{key}" if section in raw else section
               for section, keys in written.items()
               for key in (keys if section in raw else [None]) if key not in raw.get(section, {})]
    if missing:
        listed = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise CheckpointError(f"{path} lacks {listed}, which vaekit writes into the config.json of every "
                              f"run with a run id, so it was edited (the default would change the run); "
                              "put back the config.json the run wrote.")


def config_from(raw: Any, path: Path, task: str | None = "vae", run_dir: Path | None = None,
                complete: bool = False) -> Any:
    """A config.json's JSON (its run section taken out) read through its kind, as `read_config`
    says; `run_dir` names the directory in the sentence of a run of another kind; `complete`: every
    key of its kind's config must be there (`_check_complete`)."""
    found = task_of(raw, path) if isinstance(raw, dict) else DEFAULT
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object of config sections, each an object of "
                              "keys.")
    _check_sections(raw, path, TASKS[found])
    if task is not None and found != task:
        held, where = TASKS[found], path.parent if run_dir is None else run_dir
        trained = [name for name, kind in trained_kinds(path.parent) if kind == task]
        if trained and found == DEFAULT and _keys_of(TASKS[task], raw):
            raise _lacks_task(path, task)
        if trained:
            raise _copied_config(path, found, trained, task)
        raise CheckpointError(f"{where} holds {held.what} (`{held.maker}`), not {TASKS[task].what}; "
                              f"use `{held.maker}`'s commands on it{held.hint.format(run_dir=where)}.")
    if complete:
        _check_complete(raw, path, TASKS[found])
    try:
        config = TASKS[found].read(raw, str(path))
    except ConfigError as err:
        message = str(err)
        raise CheckpointError(message if str(path) in message else f"{path}: {message}") from None
    data = getattr(config, "data", None)
    if data is not None and data.data_dir is not None and not uses_data_dir(data.name):
        data.data_dir = None  # kept by a run from before such a --data-dir was refused: it was ignored
    return config


def read_config(run_dir: Path, task: str | None = "vae") -> Any:
    """config.json of a run, checked as a config file is (sections, keys, types, ranges; its run
    section, `run_section`; with a run id, every key, `_check_complete`): a hand-edited or foreign
    file is a CheckpointError naming it. `task`
    'vae' expects a TrainConfig, 'classify' a ClassifierConfig (a run of the other kind is one
    sentence saying which command it belongs to), None either. A data directory kept for a set that
    uses none (a run trained before `vaekit.data.load.check_data_dir` refused it) is dropped, as it
    was ignored then."""
    path = run_dir / CONFIG
    raw = read_raw_config(run_dir, maker_of(task))
    found = run_section(raw, path)
    return config_from(raw, path, task, run_dir, complete=found is not None)
