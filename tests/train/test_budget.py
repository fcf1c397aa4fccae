"""`vaekit train --time-budget`: the duration parser, the plan and its re-plans, the probe leaving
the run untouched (a budgeted run is the run of as many epochs planned by hand), the one-sentence
refusal of a budget shorter than an epoch, and the budget's clock across --resume."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from torch_reference import lr_changes
from vaekit import runs
from vaekit.cli import main
from vaekit.config import (
    TrainConfig,
    apply,
    check_fields,
    format_duration,
    from_dict,
    load_toml,
    parse_duration,
)
from vaekit.config.values import MAX_DURATION
from vaekit.errors import CheckpointError, ConfigError
from vaekit.train import budget
from vaekit.train.fit import Progress, fit
from vaekit.train.resume import check_progress, progress_fields

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "4", "--batch-size", "128",
         "--threads", "1", "--no-progress"]


def small(**train: Any) -> TrainConfig:
    c = TrainConfig()
    c.data.name = "digits"
    c.model.hidden, c.model.latent = [16], 4
    c.optim.schedule = "cosine"
    c.train.batch_size, c.train.threads = 128, 1
    for key, value in train.items():
        setattr(c.train, key, value)
    return c


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("text", "seconds"), [
    ("60m", 3600.0), ("1h30m", 5400.0), ("90s", 90.0), ("2.5h", 9000.0), ("3600", 3600.0),
    ("45S", 45.0), ("1h0m30s", 3630.0), ("20min", 1200.0), ("0.5", 0.5), ("1e3", 1000.0), ("3.6E3", 3600.0),
    ("1e-5", 1e-5),
])
def test_parse_duration(text: str, seconds: float) -> None:
    """Seconds also as TOML and the number flags write them (1e3): a flag reads what a file does."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds", [1e-5, 0.00042, 0.5, 2e-3, 1e-300])
def test_a_short_duration_is_shown_as_a_flag_reads_it(seconds: float) -> None:
    shown = budget.shown_seconds(seconds)
    assert parse_duration(shown.removesuffix(" s")) == pytest.approx(seconds, rel=0.05)


@pytest.mark.parametrize("text", ["", "m", "-5m", "5x", "nan", "inf", "1e", "5 m", "m5", "1h-2m", "10mm",
                                  " 45s", "45s "])  # spaces around it, as around any number
def test_parse_duration_refuses(text: str, one_sentence: Callable[..., None]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_duration(text)
    one_sentence(str(err.value), "--time-budget")


@pytest.mark.parametrize("text", ["1h1h", "30m1h", "10s5m", "1m30min", "1h30m10s1h", "5s5s"])
def test_parse_duration_refuses_units_repeated_or_out_of_order(
        text: str, one_sentence: Callable[..., None]) -> None:
    """'1h1h' is a typo, not two hours: each unit once, hours then minutes then seconds (the order
    '1h30m10s' reads in); the sentence says so rather than listing the forms a duration takes."""
    with pytest.raises(ConfigError) as err:
        parse_duration(text)
    one_sentence(str(err.value), "--time-budget", "at most once")


def budget_refusals(seconds: float, tmp_path: Path) -> list[str]:
    """The refusals of a time budget of `seconds` given each way: the flag's text, a TOML file's
    text and number, the Python API's field; '' where it is taken."""
    texts = []
    toml = tmp_path / "b.toml"
    for give in (lambda: parse_duration(f"{seconds!r}s"),
                 lambda: toml.write_text(f'[train]\ntime_budget = "{seconds!r}s"\n') and load_toml(toml),
                 lambda: toml.write_text(f"[train]\ntime_budget = {seconds!r}\n") and load_toml(toml),
                 lambda: check_fields(small(time_budget=seconds))):
        try:
            give()
            texts.append("")
        except ConfigError as err:
            texts.append(str(err))
    return texts


def test_a_time_budget_has_one_limit_in_one_sentence_however_given(tmp_path: Path) -> None:
    """The flag's parser took 1e9 s and the setting's range 1e8, in other words: 2e8 s passed the one
    and not the other. Now the limit is the duration's, the same sentence each way."""
    for taken in (2e8, MAX_DURATION):
        assert budget_refusals(taken, tmp_path) == ["", "", "", ""]
    refusals = budget_refusals(math.nextafter(MAX_DURATION, math.inf), tmp_path)
    assert all(f"must be a duration of at most {MAX_DURATION:.0e} seconds (about 30 years)" in text
               for text in refusals), refusals


# -5 and nan were told "must be at least 0" and "in [0, 1000000000]", a bound 0 itself is refused by
@pytest.mark.parametrize("written", ["0", "0.0", '"0s"', '"0h0m"', "-5", "nan", "-inf", '"-5m"', '"nan"'])
def test_a_time_budget_of_0_in_a_config_file_is_refused_as_the_flag_is(
        written: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    """`time_budget = 0` in a TOML file was taken as no budget without a word, while `--time-budget 0`
    is refused: no budget is the setting left out either way. A run's config.json, which records the
    default 0 of a run without a budget, still reads back as none."""
    path = tmp_path / "c.toml"
    path.write_text(f"[train]\ntime_budget = {written}\n")
    capsys.readouterr()
    assert main([*TRAIN, "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().removeprefix("vaekit train: error: ")
    one_sentence(err, f"{path}: train.time_budget must be more than 0 seconds", "leave train.time_budget out")
    assert not (tmp_path / "run").exists()
    none = TrainConfig().train.time_budget
    assert from_dict({"train": {"time_budget": 0.0}}).train.time_budget == 0.0 == none


def test_format_duration() -> None:
    assert format_duration(9.5) == "9.5 s"
    assert format_duration(65) == "1 min 05 s"
    assert format_duration(3725) == "1 h 02 min 05 s"


# ----------------------------------------------------------------------------- the plan


def test_first_plan_fits_the_budget_with_its_margin() -> None:
    plan = budget.Plan.first(600.0, 10.0, 5.0, 0, 20.0, "measured")
    assert plan.epochs == math.floor(590.0 / (5.0 * budget.FIRST_MARGIN))
    assert plan.epochs * 5.0 + 10.0 <= 600.0
    assert plan.warmup == 20.0  # 20 <= 0.2 x 109: kept
    short = budget.Plan.first(60.0, 0.0, 5.0, 0, 20.0, "measured")
    assert short.warmup == pytest.approx(budget.WARMUP_SHARE * short.epochs)  # capped
    assert budget.Plan.first(60.0, 0.0, 5.0, 0, 0.0, "measured").warmup == 0.0


def test_first_plan_counts_epochs_already_done() -> None:
    plan = budget.Plan.first(100.0, 50.0, 10.0, 7, 0.0, "measured")
    assert plan.epochs == 7 + math.floor(50.0 / (10.0 * budget.FIRST_MARGIN))


def test_a_budget_shorter_than_one_epoch_is_one_sentence(one_sentence: Callable[..., None]) -> None:
    with pytest.raises(ConfigError) as err:
        budget.Plan.first(3.0, 0.5, 4.0, 0, 0.0, "the probe measured")
    one_sentence(str(err.value), "--time-budget", "is too short for this run", "4.0 s")


def test_a_resumed_budget_too_short_says_what_its_seconds_are(one_sentence: Callable[..., None]) -> None:
    """A resume was told the run had spent its whole wall time (start-up and data included) "on its
    epochs", and that 0 s were "left" of nothing named: both are said for what they are."""
    with pytest.raises(budget.BudgetTooShort) as err:
        budget.Plan.first(2.0, 10.1, 0.018, 1, 0.0, "the probe measured", 9.5)
    one_sentence(str(err.value), "0.018 s an epoch", "spent 10.1 s of wall time in its sessions so far "
                 "(start-up, data and epochs) and this probe, leaving 0 s of the budget", "at least 11.0 s")
    assert "on its epochs" not in str(err.value)


@pytest.mark.parametrize(("before", "session"), [(41.4, 0.6), (40.0, 2.0), (50.0, 5.0), (1.0, 0.2)])
def test_the_budget_a_resumed_refusal_advises_fits_the_next_session(before: float, session: float) -> None:
    """A resume of a run that had spent 41.4 s was advised 42 s, then refused at 42.1 s advising 43 s:
    the next session starts and probes again. The advice now holds for a session half as long
    again, and counts the earlier sessions once (not half as much again)."""
    with pytest.raises(budget.BudgetTooShort) as err:
        budget.Plan.first(before, before + session, 0.018, 1, 0.0, "the probe measured", before)
    advised = float(str(err.value).split("give at least ")[1].split(" s")[0])
    assert budget.Plan.first(advised, before + session * 1.5, 0.018, 1, 0.0, "measured", before).epochs >= 2
    assert advised <= math.ceil(before + session * 1.5 + 0.018 * budget.FIRST_MARGIN * 1.1)


@pytest.mark.parametrize(("seconds", "shown"), [(0.001, "0.001 s"), (1e-300, "1e-300 s"), (0.25, "0.25 s")])
def test_a_budget_under_a_second_is_shown_as_given(seconds: float, shown: str,
                                                   one_sentence: Callable[..., None]) -> None:
    """format_duration showed 0.001 s as '0.0 s', which is not what was given."""
    with pytest.raises(budget.BudgetTooShort) as err:
        budget.Plan.first(seconds, 3.0, 0.012, 0, 0.0, "the probe measured")
    one_sentence(str(err.value), f"--time-budget {shown} is too short", "0.012 s an epoch",
                 "spent 3.0 s starting and probing", "at least 5.0 s")
    assert isinstance(err.value, ConfigError) and err.value.detail.startswith(f"{shown} is too short")


@pytest.mark.parametrize(("spent", "epoch"), [(3.2, 0.0059), (3.0, 0.012), (0.5, 4.0), (12.0, 30.0),
                                              (2.0, 0.9)])
def test_the_budget_a_refusal_advises_fits_a_run_that_starts_slower(spent: float, epoch: float) -> None:
    """The budget is quoted as given (2.95 s, not 3.0 s), and the advice holds for a run whose
    start takes half as long again (it varies from run to run): 2.9 s was refused advising 2.9 s."""
    with pytest.raises(budget.BudgetTooShort) as err:
        budget.Plan.first(2.95, spent, epoch, 0, 0.0, "the probe measured")
    assert err.value.detail.startswith("2.95 s is too short for this run"), err.value.detail
    advised = float(str(err.value).split("give at least ")[1].split(" s")[0])
    assert advised > 2.95 and advised == int(advised)
    assert budget.Plan.first(advised, spent * 1.5, epoch, 0, 0.0, "the probe measured").epochs >= 1


def test_replan_shrinks_when_the_epochs_left_do_not_fit() -> None:
    plan = budget.Plan(100.0, 20, 0.0)
    assert plan.replan(5, 40.0, 8.0)  # 60 s left / 8 s = 7 more: 12 < 20
    assert plan.epochs == 12
    assert not plan.replan(6, 48.0, 8.0)  # 52 / 8 = 6 more: 12, unchanged
    assert plan.replan(10, 99.5, 9.95)  # nothing more fits: end now
    assert plan.epochs == 10


def test_replan_grows_only_past_the_margin() -> None:
    plan = budget.Plan(100.0, 20, 0.0)
    assert not plan.replan(2, 10.0, 4.7)  # 2 + floor(90 / 4.7) = 21, within 5% of 20: unchanged
    assert plan.epochs == 20
    assert plan.replan(2, 9.0, 4.5)  # 2 + floor(91 / 4.5) = 22 > 21: grows
    assert plan.epochs == 22
    assert plan.replan(2, 10.0, 3.0) and plan.epochs == 32  # 2 + 30


# ----------------------------------------------------------------------------- runs


def test_budgeted_run_is_the_run_of_its_planned_epochs(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe trains copies with its own generator: with the plan held fixed (no re-plan), a run
    under --time-budget ends with the same weights, metrics and RNG state as the same run given
    --epochs N and the planned warm-up by hand."""
    monkeypatch.setattr(budget.Plan, "replan", lambda self, done, spent, mean: False)
    a = fit(small(time_budget=1.5, warmup=1e6), tmp_path / "a", show_bar=False, log=lambda _: None)
    config = json.loads((tmp_path / "a" / runs.CONFIG).read_text())
    n, warm = config["train"]["epochs"], config["train"]["warmup"]
    assert a["epochs"] == n >= 2 and warm == pytest.approx(budget.WARMUP_SHARE * n)  # 1e6 capped
    assert 0 < a["train_seconds"] and a["time_budget"] == 1.5
    b = fit(small(epochs=n, warmup=warm), tmp_path / "b", show_bar=False, log=lambda _: None)
    assert b["epochs"] == n
    ta, tb = (runs.read_tensors(tmp_path / d / runs.CHECKPOINT, "t")[0] for d in "ab")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    ma, mb = ([{k: v for k, v in r.items() if k != "epoch_seconds"} for r in runs.read_metrics(tmp_path / d)]
              for d in "ab")
    assert ma == mb
    sa, sb = (runs.load_checkpoint(tmp_path / d)[2] for d in "ab")
    assert sa["rng"] == sb["rng"]


def test_budgeted_run_says_its_plan_and_keeps_config_in_step(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = fit(small(time_budget=1.5), tmp_path / "r", show_bar=False, log=lines.append)
    assert lines[0].startswith("time budget 1.5 s:") and "planned" in lines[0] and "epochs" in lines[0]
    config = json.loads((tmp_path / "r" / runs.CONFIG).read_text())
    assert config["train"]["epochs"] == summary["epochs"] == len(runs.read_metrics(tmp_path / "r"))
    state = runs.load_checkpoint(tmp_path / "r")[2]
    assert state["progress"]["train_seconds"] == pytest.approx(summary["train_seconds"], abs=1e-3)
    replans = [line for line in lines if "re-planned to" in line]
    last = int(replans[-1].split("re-planned to ")[1].split()[0]) if replans else None
    said = lines[0].split("planned ")[1].split()[0] if last is None else last  # the plan last said
    assert abs(int(said) - summary["epochs"]) <= max(1, 0.02 * int(said)) + 1


def test_cli_budget_too_short_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         one_sentence: Callable[..., None]) -> None:
    out = tmp_path / "run"
    capsys.readouterr()
    assert main([*TRAIN, "--time-budget", "0.001s", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    one_sentence(err.removeprefix("vaekit train: error: "), "--time-budget", "is too short for this run")
    assert not out.exists()  # vaekit made it for the run, and removes it empty when refused


def test_budget_refused_in_a_directory_that_existed_keeps_it_and_what_it_holds(tmp_path: Path) -> None:
    empty, kept = tmp_path / "empty", tmp_path / "kept"
    empty.mkdir()
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    for out in (empty, kept):
        assert main([*TRAIN, "--time-budget", "0.001s", "--out", str(out)]) == 2
    assert empty.is_dir() and not list(empty.iterdir())
    assert [p.name for p in kept.iterdir()] == ["notes.txt"] and (kept / "notes.txt").read_text() == "mine"


def test_cli_budget_too_short_from_a_config_file_names_its_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """The budget came from c.toml's train.time_budget, not from the flag --time-budget."""
    path = tmp_path / "c.toml"
    path.write_text('[train]\ntime_budget = "0.001s"\n')
    capsys.readouterr()
    assert main([*TRAIN, "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--time-budget" not in err, err
    one_sentence(err.removeprefix("vaekit train: error: "),
                 f"{path}, train.time_budget: 0.001 s is too short")


def test_a_resumed_budget_is_named_by_the_file_it_came_from(tmp_path: Path) -> None:
    import argparse

    from vaekit.commands.train import budget_name

    out = tmp_path / "run"
    fit(small(time_budget=1.5), out, show_bar=False, log=lambda _: None)
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\ntime_budget = "1s"\n')
    args = argparse.Namespace(time_budget=None, resume=True, config=None)
    assert budget_name(args, out) == f"{out / runs.CONFIG}, train.time_budget:"
    assert budget_name(argparse.Namespace(time_budget=None, resume=True, config=str(toml)), out) == (
        f"{toml}, train.time_budget:")
    assert budget_name(argparse.Namespace(time_budget=1.0, resume=True, config=str(toml)), out) == (
        "--time-budget")


@pytest.mark.parametrize("value", ["soon", "-1m", "10 parsecs", ""])
def test_cli_bad_budget_is_one_sentence(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        one_sentence: Callable[..., None]) -> None:
    capsys.readouterr()
    assert main([*TRAIN, "--time-budget", value, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    one_sentence(err.split("error: ", 1)[1], "--time-budget")
    assert not (tmp_path / "r").exists()


def test_config_file_budget_reads_a_duration_or_seconds(tmp_path: Path,
                                                        one_sentence: Callable[..., None]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[train]\ntime_budget = "1h30m"\n')
    assert load_toml(path).train.time_budget == 5400.0
    path.write_text("[train]\ntime_budget = 90\n")
    assert load_toml(path).train.time_budget == 90.0
    path.write_text('[train]\ntime_budget = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_toml(path)
    one_sentence(str(err.value), str(path), "train.time_budget")


def test_config_file_budget_is_range_checked() -> None:
    with pytest.raises(ConfigError, match="train.time_budget"):
        apply(TrainConfig(), {"train": {"time_budget": -5}}, "test.toml")
    with pytest.raises(ConfigError, match="train.time_budget"):
        apply(TrainConfig(), {"train": {"time_budget": float("nan")}}, "test.toml")


def test_resume_counts_the_seconds_already_spent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r"
    fit(small(epochs=2), out, show_bar=False, log=lambda _: None)
    spent = runs.load_checkpoint(out)[2]["progress"]["train_seconds"]
    assert spent > 0
    seen: list[tuple[float, float]] = []
    first = budget.Plan.first

    def spy(budget_s: float, spent_s: float, *args: Any) -> budget.Plan:
        seen.append((budget_s, spent_s))
        return first(budget_s, spent_s, *args)

    monkeypatch.setattr(budget.Plan, "first", staticmethod(spy))
    config = small(epochs=2, time_budget=spent + 0.5)
    summary = fit(config, out, resume=True, show_bar=False, log=lambda _: None)
    assert seen and seen[0][1] > spent  # the checkpoint's seconds, plus the probe's
    assert summary["epochs"] >= 2 and summary["train_seconds"] > spent


def test_a_resumed_plan_keeps_the_warmup_the_run_was_trained_with() -> None:
    """Only a run's first plan shortens the warm-up to WARMUP_SHARE of its epochs: after epochs done,
    beta_at of the warm-up kept goes on from the step the run stopped at."""
    first = budget.Plan.first(60.0, 0.0, 5.0, 0, 300.0, "measured")
    assert first.warmup == pytest.approx(budget.WARMUP_SHARE * first.epochs)
    resumed = budget.Plan.first(60.0, 10.0, 5.0, 2, 300.0, "measured")
    assert resumed.epochs < 300 and resumed.warmup == 300.0


def test_a_budget_on_resume_keeps_the_warmup_and_the_weights_check(tmp_path: Path) -> None:
    """A run trained with a warm-up, resumed under a budget whose first plan would shorten it: the run
    trains on (config.json, the checkpoint and the model file agree), its warm-up as trained."""
    out = tmp_path / "r"
    fit(small(epochs=1, warmup=1e6), out, show_bar=False, log=lambda _: None)
    spent = runs.load_checkpoint(out)[2]["progress"]["train_seconds"]
    lines: list[str] = []
    summary = fit(small(epochs=1, warmup=1e6, time_budget=spent + 0.5), out, resume=True, show_bar=False,
                  log=lines.append)
    assert summary["epochs"] >= 2
    assert json.loads((out / runs.CONFIG).read_text())["train"]["warmup"] == 1e6
    assert runs.load_checkpoint(out)[2]["config"]["train"]["warmup"] == 1e6
    assert "kept at the 1e+06 epochs the run was trained with" in lines[0]


def test_checkpoint_of_an_earlier_vaekit_without_train_seconds_is_accepted(tmp_path: Path) -> None:
    record = {k: v for k, v in Progress().__dict__.items() if k != "train_seconds"}
    assert "train_seconds" not in check_progress(record, tmp_path / "c.json", progress_fields(Progress))
    for bad in (-1.0, float("inf"), "soon", True):
        with pytest.raises(CheckpointError, match="train_seconds"):
            check_progress({**record, "train_seconds": bad}, tmp_path / "c.json", progress_fields(Progress))


@pytest.mark.parametrize(("flags", "toml"), [
    (["--epochs", "1", "--time-budget", "5s"], None),
    (["--epochs", "3"], '[train]\ntime_budget = "5s"\n'),
    ([], '[train]\ntime_budget = "5s"\nepochs = 3\n'),
])
def test_epochs_beside_the_budget_that_plans_them_are_refused(
        flags: list[str], toml: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Any) -> None:
    """The budget replaces train.epochs by its plan (a run of --epochs 1 --time-budget 5s trained
    hundreds): given together, the epochs would do nothing."""
    config = []
    if toml is not None:
        (tmp_path / "c.toml").write_text(toml)
        config = ["--config", str(tmp_path / "c.toml")]
    capsys.readouterr()
    assert main([*TRAIN, *flags, *config, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    one_sentence(err.removeprefix("vaekit train: error: "), "train.epochs", "time budget")
    assert not (tmp_path / "r").exists()


def test_a_files_epochs_under_a_budget_from_the_command_line_stay(tmp_path: Path) -> None:
    """configs/fashion-mnist-best.toml's epochs are its run without a budget; `--time-budget` plans."""
    from vaekit.cli import build_parser
    from vaekit.commands.train import build_config

    (tmp_path / "c.toml").write_text("[train]\nepochs = 1000\n")
    args = build_parser().parse_args([*TRAIN, "--config", str(tmp_path / "c.toml"), "--time-budget", "5m"])
    config, _ = build_config(args)
    assert config.train.epochs == 1000 and config.train.time_budget == 300


# ----------------------------------------------------------------------------- settings held against the plan


def _planned(lines: list[str]) -> int:
    """The epochs the budget's first log line says it planned."""
    return int(lines[0].split("planned ")[1].split()[0])


@pytest.mark.parametrize("setting", ["patience", "step_size"])
def test_a_setting_the_plan_leaves_idle_is_noted_not_refused(
        setting: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--patience, or a step schedule's step size, of at least the epochs the budget plans would do
    nothing (as with --epochs of as many): one note naming the setting, its value and the plan the
    budget's log reports, and the run trains. It was refused with a bound from the measured plan,
    which differs from run to run: a patience just below it was refused by the next run's plan."""
    monkeypatch.setattr("vaekit.commands.train.process_seconds", lambda: 0.0)  # not pytest's seconds so far
    flags = ["--patience", "1000000"]
    if setting == "step_size":
        (tmp_path / "c.toml").write_text("[optim]\nstep_size = 1000000\n")
        flags = ["--schedule", "step", "--config", str(tmp_path / "c.toml")]
    capsys.readouterr()
    assert main([*TRAIN, "--time-budget", "3s", *flags, "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    planned = _planned([line for line in captured.out.splitlines() if line.startswith("time budget")])
    assert planned < 1000000
    key = "train.patience" if setting == "patience" else "optim.step_size"
    notes = [line for line in captured.err.splitlines() if line.startswith("note: ") and key in line]
    assert len(notes) == 1, captured.err
    one_sentence(notes[0].removeprefix("note: "), key, "is 1000000 epochs",
                 f"run's {planned} epochs (the time budget's plan)", "the plan is measured")
    assert runs.load_checkpoint(tmp_path / "r")[2]["epoch"] >= 1


class _Planned(Exception):
    pass


@pytest.mark.parametrize("setting", ["patience", "step_size"])
@pytest.mark.parametrize("short", [0, 1])  # the plan's epochs, less `short`
def test_the_plan_holds_patience_and_step_size_as_epochs_would(
        setting: str, short: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the plan held at 3 epochs: a patience (a step size) of the planned epochs is noted as
    idle, one below is not, exactly where early stopping could stop the run (the first epoch is the
    best so far: at most N - 1 worse follow) and where torch's StepLR decays within the planned
    epochs (and the run's metrics.jsonl shows it did)."""
    first, plans = budget.Plan.first, []

    def three(*args: Any) -> budget.Plan:
        plan = first(*args)
        plan.epochs = min(plan.epochs, 3)
        plans.append(plan.epochs)
        if len(plans) == 1:
            raise _Planned  # a first run only to learn the plan
        return plan

    monkeypatch.setattr(budget.Plan, "first", staticmethod(three))
    monkeypatch.setattr(budget.Plan, "replan", lambda self, done, spent, mean: False)
    config = small(time_budget=20.0)
    with pytest.raises(_Planned):
        fit(small(time_budget=20.0), tmp_path / "n", show_bar=False, log=lambda _: None)
    n = plans[0]
    value = n - short
    if setting == "patience":
        config.train.patience, idle = value, value >= n
    else:
        config.optim.schedule, config.optim.step_size = "step", value
        idle = not lr_changes(value, config.optim.gamma, n)
    out = tmp_path / "r"
    noted: list[str] = []
    monkeypatch.setattr("vaekit.train.fit.say_notes", noted.extend)
    summary = fit(config, out, show_bar=False, log=lambda _: None)
    said = [note for note in noted if f"is {value} epochs, as many as the run's {n} epochs" in note]
    assert len(said) == idle, noted
    if idle:
        return
    assert summary["epochs"] <= n
    if setting == "step_size":
        assert summary["epochs"] == n
        assert len({row["lr"] for row in runs.read_metrics(out)}) == 2


def test_a_re_plan_that_leaves_the_patience_idle_is_noted(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A patience below the first plan, which a re-plan then shrank below it, said nothing."""
    first = budget.Plan.first

    def five(*args: Any) -> budget.Plan:
        plan = first(*args)
        plan.epochs = 5
        return plan

    def shrink(self: budget.Plan, done: int, spent: float, mean: float) -> bool:
        changed, self.epochs = self.epochs != 2, 2
        return changed

    monkeypatch.setattr(budget.Plan, "first", staticmethod(five))
    monkeypatch.setattr(budget.Plan, "replan", shrink)
    noted: list[str] = []
    monkeypatch.setattr("vaekit.train.fit.say_notes", noted.extend)
    config = small(time_budget=20.0)
    config.train.patience = 3
    fit(config, tmp_path / "r", show_bar=False, log=lambda _: None)
    said = [note for note in noted if "train.patience" in note]
    assert len(said) == 1 and "as many as the run's 2 epochs" in said[0], noted


@pytest.mark.parametrize("batches", [1, 2, 3, 4, 5, 9])
def test_the_probe_times_an_epoch_of_any_number_of_batches(batches: int) -> None:
    """Of 2 to 4 steps the probe divided by 0 (every step but the last taken as warm-up)."""
    from vaekit.train.engines import make_engine
    from vaekit.train.loop import Pixels, validate
    from vaekit.vae.models import build_model

    c = small()
    c.model.image_shape = [1, 8, 8]
    torch.manual_seed(0)
    model = build_model(c)
    images = (torch.rand(16 * batches, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 255).byte()
    val_x = (images[:10] > 127).float()
    p = budget.probe(model, c.optim, make_engine(model, c.train), Pixels(images, "dynamic"), 16, None,
                     lambda m: validate(m, val_x))  # type: ignore[arg-type]
    assert math.isfinite(p.step_seconds) and p.step_seconds > 0
    assert p.epoch_seconds == pytest.approx(p.step_seconds * batches + p.validation_seconds)
