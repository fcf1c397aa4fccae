"""vaekit.runs' kinds of run and its one eval.json reader: a third kind registers without touching
runs (its config is read, its model built, its sentences said through its entry), `task_in` peeks
at config.json, and `read_eval` gives None, the kind's sentence, or the stale-weights sentence."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

import vaekit  # noqa: F401  (registers 'classify', as every user of vaekit has it)
from vaekit import runs
from vaekit.errors import CheckpointError, ConfigError


@dataclass
class ToyConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"width": 3})

    def to_dict(self) -> dict[str, Any]:
        return {"task": "toy", "model": dict(self.model)}


def read_toy(raw: dict[str, Any], origin: str) -> ToyConfig:
    if set(raw) != {"model"} or not isinstance(raw["model"].get("width"), int):
        raise ConfigError(f"{origin}: a toy config has [model] width.")
    return ToyConfig(dict(raw["model"]))


TOY = runs.Task("toy", "toy train", "a toy run", ToyConfig, read_toy,
                lambda config: torch.nn.Linear(config.model["width"], 1),
                lambda config, pixels: pixels.float() / 255, hint=" (`toy eval {run_dir}`)")


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> runs.Task:
    monkeypatch.setitem(runs.TASKS, TOY.name, TOY)
    return TOY


def toy_run(tmp_path: Path, width: int = 3) -> Path:
    run = tmp_path / "toy"
    run.mkdir()
    config = ToyConfig({"width": width})
    runs.write_config(run, config)
    torch.manual_seed(0)
    runs.save_weights(run, dict(torch.nn.Linear(width, 1).state_dict()), config.to_dict())
    return run


def test_a_third_kind_is_read_built_and_loaded_through_its_entry(toy: runs.Task, tmp_path: Path) -> None:
    run = toy_run(tmp_path)
    config = runs.read_config(run, None)
    assert isinstance(config, ToyConfig) and runs.task_for(config) is toy
    loaded = runs.load_run(run)
    assert loaded.task == "toy" and isinstance(loaded.model, torch.nn.Linear)
    torch.manual_seed(0)
    assert torch.equal(loaded.model.weight, torch.nn.Linear(3, 1).weight)
    assert runs.task_in(run) is toy
    # its own sentences, from its entry: which command it belongs to, and the hint
    with pytest.raises(CheckpointError) as err:
        runs.load_run(run, "vae")
    assert str(err.value) == (f"{run} holds a toy run (`toy train`), not a VAE run; use `toy train`'s "
                              f"commands on it (`toy eval {run}`).")
    (run / runs.CONFIG).write_text(json.dumps({"task": "toy", "model": {"width": "3"}}))
    with pytest.raises(CheckpointError, match="a toy config has"):
        runs.read_config(run, "toy")


def test_a_vae_run_read_as_another_kind_says_so_without_a_hint(toy: runs.Task, tmp_path: Path) -> None:
    run = tmp_path / "vae"
    run.mkdir()
    runs.write_config(run, runs.TASKS["vae"].config_type())
    with pytest.raises(CheckpointError) as err:
        runs.read_config(run, "toy")
    assert str(err.value) == (f"{run} holds a VAE run (`vaekit train`), not a toy run; use `vaekit train`'s "
                              "commands on it.")


@pytest.mark.parametrize("text,expected", [
    (None, "vae"), ("not json", "vae"), ("[1]", "vae"), ('{"task": ["classify"]}', "vae"),
    ('{"task": "nonesuch"}', "vae"), ('{"model": {}}', "vae"), ('{"task": "classify"}', "classify"),
])
def test_task_in_peeks_at_config_json(tmp_path: Path, text: str | None, expected: str) -> None:
    if text is not None:
        (tmp_path / runs.CONFIG).write_text(text)
    assert runs.task_in(tmp_path).name == expected


def check_fields(result: Any, path: Path) -> None:
    if not isinstance(result, dict) or "score" not in result:
        raise CheckpointError(f"{path}: not a toy eval.json.")


def test_read_eval_none_sentences_and_stale_weights(toy: runs.Task, tmp_path: Path) -> None:
    run = toy_run(tmp_path)
    path = run / runs.EVAL
    assert runs.read_eval(run, check_fields, "toy eval") is None
    for text in ("{not json", json.dumps({"other": 1})):  # not vaekit's: the kind's check is not asked
        path.write_text(text)
        with pytest.raises(CheckpointError, match="vaekit wrote; `toy eval` replaces only an eval.json of"):
            runs.read_eval(run, check_fields, "toy eval")
    path.write_text(json.dumps({"other": 1, "model_sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="not a toy eval.json"):
        runs.read_eval(run, check_fields, "toy eval")
    sha = hashlib.sha256((run / runs.MODEL).read_bytes()).hexdigest()
    good = {"score": 1.5, "model_sha256": sha}
    path.write_text(json.dumps(good))
    assert runs.read_eval(run, check_fields, "toy eval") == good
    path.write_text(json.dumps({**good, "model_sha256": "0" * 64}))
    with pytest.raises(CheckpointError) as err:
        runs.read_eval(run, check_fields, "toy eval")
    assert str(err.value) == (f"{path} was computed for other weights than {run / runs.MODEL}; run "
                              f"`toy eval {run}` again.")
