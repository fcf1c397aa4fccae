"""Run directories damaged at random, read by the library's entry points: `load_run`,
`evaluate_run` (k and the images few), `read_config`, `read_eval`, `read_metrics`, a resume
(`fit(..., resume=True)`, up to the run's epochs or one more) and a new run into the directory.
A tiny real run (digits, a few seconds) is made once; each example copies it and damages one
file: cut at a random byte, replaced by another run's file, given a non-finite or huge value, made
a directory, a FIFO, a dangling or looping symbolic link, or a random edit of its JSON. Each entry
point must succeed with finite results, or raise a `VaekitError` with a one-line message: never
another exception, never a hang.

Derandomized and bounded for CI (HYPOTHESIS_PROFILE=explore searches with fresh examples).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from eval_runs import make_run
from hang import deadline
from vaekit import runs
from vaekit.errors import VaekitError
from vaekit.evaluate.run import FINITE_FIELDS, evaluate_run, read_eval
from vaekit.train.fit import fit

EXPLORE = os.environ.get("HYPOTHESIS_PROFILE", "vaekit") != "vaekit"
FUZZ = settings(max_examples=600 if EXPLORE else 60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FILES = [runs.CONFIG, runs.MODEL, runs.CHECKPOINT, runs.CHECKPOINT_JSON, runs.METRICS, runs.EVAL]
DAMAGES = ["cut", "other", "not-finite", "directory", "fifo", "dangling", "loop", "json", "state", "delete"]
ENTRIES = ["load_run", "evaluate_run", "read_config", "read_eval", "read_metrics", "resume", "resume+1",
           "train"]
HANG_SECONDS = 60


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(a run with eval.json, another run of other shapes and seed, a folder for the copies)."""
    base = tmp_path_factory.mktemp("fuzz-runs")
    run = make_run(base / "run")
    evaluate_run(run, k=2, limit=10, progress=False, probe=False, threads=1)
    other = make_run(base / "other", latent=3, epochs=1, seed=1)
    evaluate_run(other, k=2, limit=10, progress=False, probe=False, threads=1)
    return run, other, base


def _random_json(draw: Any) -> Any:
    return draw(st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=5)),
        lambda children: st.one_of(st.lists(children, max_size=3),
                                   st.dictionaries(st.text(max_size=5), children, max_size=3)),
        max_leaves=6))


def _edit(obj: Any, value: Any, pick: int) -> Any:
    """Replace, delete or add a value at a random place of a JSON object (or replace it whole)."""
    if not isinstance(obj, dict) or not obj or pick % 5 == 0:
        return value
    target = obj
    while True:
        keys = sorted(target)
        key = keys[pick % len(keys)]
        pick //= len(keys)
        if isinstance(target[key], dict) and target[key] and pick % 2:
            target = target[key]
            pick //= 2
            continue
        break
    mode = pick % 3
    if mode == 0:
        target[key] = value
    elif mode == 1:
        del target[key]
    else:
        target[f"extra{pick % 7}"] = value
    return obj


def _not_finite(tensors: dict[str, torch.Tensor], pick: int, value: float) -> dict[str, torch.Tensor]:
    names = sorted(k for k, v in tensors.items() if v.is_floating_point() and v.numel())
    name = names[pick % len(names)]
    t = tensors[name].clone()
    if pick % 2:
        t.view(-1)[pick % t.numel()] = value
    else:
        t.fill_(value)
    return {**tensors, name: t}


@st.composite
def damages(draw: Any) -> tuple[str, str, Any, int, float]:
    name = draw(st.sampled_from(FILES))
    damage = draw(st.sampled_from(DAMAGES))
    return (name, damage, _random_json(draw), draw(st.integers(0, 2**32)),
            draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e38, -3e38, 10.0**30])))


def damage_file(run: Path, other: Path, name: str, damage: str, value: Any, pick: int, number: float) -> None:
    path = run / name
    if damage == "cut":
        data = path.read_bytes()
        path.write_bytes(data[: pick % (len(data) + 1)])
    elif damage == "other":
        shutil.copy(other / name, path)
    elif damage in ("directory", "fifo", "dangling", "loop", "delete"):
        path.unlink()
        if damage == "directory":
            path.mkdir()
        elif damage == "fifo":
            os.mkfifo(path)
        elif damage == "dangling":
            path.symlink_to(run / "nowhere")
        elif damage == "loop":
            path.symlink_to(path)
    elif name.endswith(".safetensors"):
        tensors, metadata = runs.read_tensors(path, "test")
        if damage == "not-finite":
            tensors = _not_finite(tensors, pick, number)
        elif damage == "state" and "checkpoint" in metadata:
            state = _edit(json.loads(metadata["checkpoint"]), value, pick)
            metadata = {"checkpoint": json.dumps(state)}
        elif damage == "json":
            metadata = {**metadata, **{f"k{pick % 3}": json.dumps(value)}}
        save_file(tensors, str(path), metadata=metadata)
    elif name == runs.METRICS:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows[pick % len(rows)] = _edit(rows[pick % len(rows)], number if damage == "not-finite" else value,
                                       pick // 7)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        obj = json.loads(path.read_text())
        path.write_text(json.dumps(_edit(obj, number if damage == "not-finite" else value, pick)))


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    if isinstance(value, list):
        return all(map(_finite, value))
    return True


def call(entry: str, run: Path) -> None:
    """The entry point on the run; its results checked finite where it computes any."""
    if entry == "load_run":
        model = runs.load_run(run).model
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    elif entry == "evaluate_run":
        result = evaluate_run(run, k=2, limit=10, progress=False, probe=False, threads=1)
        assert all(_finite(result.get(f)) for f in FINITE_FIELDS), result
        json.loads((run / runs.EVAL).read_text(), parse_constant=lambda c: pytest.fail(f"{c} in eval.json"))
    elif entry == "read_config":
        runs.read_config(run, None)
    elif entry == "read_eval":
        assert _finite(read_eval(run))
    elif entry == "read_metrics":
        runs.read_metrics(run)
    elif entry == "train":  # a new run into the directory: refused, as it holds one
        config = runs.read_config(run)
        config.train.threads, config.train.epochs = 1, 1
        fit(config, run, show_bar=False, log=lambda _: None)
        assert runs.load_checkpoint(run)[2]["epoch"] == 1
    else:  # up to the run's epochs (the checkpoint checked, nothing to do), or one more epoch
        config = runs.read_config(run)
        config.train.threads = 1
        config.train.epochs += entry == "resume+1"
        summary = fit(config, run, resume=True, show_bar=False, log=lambda _: None)
        assert _finite(summary["best_val_neg_elbo"]) and summary["epochs"] <= config.train.epochs


@FUZZ
@given(damage=damages(), entry=st.sampled_from(ENTRIES))
def test_entry_points_on_a_damaged_run(made: tuple[Path, Path, Path],
                                       damage: tuple[str, str, Any, int, float], entry: str) -> None:
    run, other, base = made
    copy = Path(tempfile.mkdtemp(dir=base)) / "run"
    shutil.copytree(run, copy)
    damage_file(copy, other, *damage)
    threads = torch.get_num_threads()
    try:
        with deadline(HANG_SECONDS):
            call(entry, copy)
        event(f"{entry}: done")
    except VaekitError as err:
        event(f"{entry}: refused")
        message = str(err)
        assert message.strip() and "\n" not in message, (damage, entry, message)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(copy.parent, ignore_errors=True)
