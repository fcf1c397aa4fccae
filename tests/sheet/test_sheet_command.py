"""`vaekit sheet`: the page answers every question in the sheet's order with the library's numbers
(a changed input changes the page), `--json` carries them, and bad input is one sentence, exit 2,
nothing written."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sheet_build import Built
from vaekit.arch import sheet as arch_sheet
from vaekit.cli import main
from vaekit.runs import load_run
from vaekit.sheet import exercise1, exercise2, page
from vaekit.sheet.build import Sheet, run_errata
from vaekit.sheet.questions import QUESTIONS


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_page_answers_every_question_in_order(built: Built) -> None:
    html = built.page.read_text()
    positions = [html.index(f"id='{q.id}'") for q in QUESTIONS]
    assert positions == sorted(positions)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    links = re.findall(r"""(?:src|href)=["']([^"']*)""", html)
    assert links and all(link.startswith(("data:", "#")) for link in links), links[:3]
    assert html.count("<math") > 40 and "data:image/png;base64," in html
    text = _text(html)
    a = arch_sheet.exercise1()
    for number in (f"{a.q1_params:,}", f"{a.q2_weights} weights", "8x8x20", "4x4x20"):
        assert number in text, number
    assert text.count("The sheet writes") == len(built.data["errata"]) >= 8
    assert "FAIL" not in text


def test_json_holds_every_answer_and_erratum(built: Built) -> None:
    data = built.data
    assert [a["question"] for a in data["answers"]] == [q.id for q in QUESTIONS]
    assert data["passed"] and data["page"] == str(built.page)
    q1 = data["answers"][0]["numbers"]
    assert q1["params"] == q1["torch_params"] == 600_000
    assert [r["side"] for r in q1["compare"]] == [8, 16, 8, 16]
    q6 = data["answers"][-1]["numbers"]
    assert q6["run"] == str(built.run) and not q6["trained_here"] and q6["k"] == 100
    assert q6["one_sample"]["k"] == 100 and abs(q6["one_sample"]["z"]) <= 4
    assert {e["supports"] for e in data["errata"]} == {"correction"}
    assert not (built.run / "eval.json").exists()  # the given run is read, never written


def test_q6_labels_the_run_with_the_set_it_was_trained_on(built: Built) -> None:
    """The run here was trained on digits (its config.json says so): Q6's table names that set for the
    run's numbers, and Fashion-MNIST only for the published ones."""
    trained_on = json.loads((built.run / "config.json").read_text())["data"]["name"]
    assert trained_on == "digits"
    q6 = built.data["answers"][-1]
    caption = q6["tables"][0]["caption"]
    assert "8x8 digits" in caption and not caption.startswith("Test nats per image on Fashion-MNIST"), caption
    assert q6["numbers"]["data"] == trained_on
    assert exercise2.nats_caption("fashion-mnist").startswith("Test nats per image on Fashion-MNIST")


def test_a_changed_input_changes_the_page(built: Built, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    """Ex.1 with 16 output maps instead of 20, and the errata with another seed: the page follows."""
    run = load_run(built.run)
    model, x = run.model, run.images("test", limit=64)

    def answers() -> list:
        return [exercise1.question1(tmp_path), exercise1.question2(), exercise2.question3({})]

    before = page.render(Sheet(answers(), run_errata(model, x, 0), True, 0))
    monkeypatch.setattr(arch_sheet, "MAPS", 16)
    after = page.render(Sheet(answers(), run_errata(model, x, 1), True, 1))
    assert "600,000 weights" in _text(before) and "600,000 weights" not in _text(after)
    assert f"{300 * 1600:,} weights" in _text(after) and f"{3 * 3 * 3 * 16} weights" in _text(after)
    moment = re.compile(r"Monte Carlo E\[z\^2\] = ([0-9.]+)")
    assert moment.search(before) and moment.search(after)
    assert moment.search(before).group(1) != moment.search(after).group(1)  # type: ignore[union-attr]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    status = main(["sheet", *argv])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith("vaekit sheet: error: ") and err.rstrip().endswith(".")
    for word in words:
        assert word in err, (word, err)
    return err


def test_bad_input_is_one_sentence_and_nothing_written(built: Built, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sheet.html"
    classifier = built.compare / "dense-8"
    _refused(capsys, ["--vae-run", str(classifier), "--out", str(out)], "classifier run", str(classifier))
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(capsys, ["--vae-run", str(empty), "--out", str(out)], "holds no trained model",
             "`vaekit train --out")  # as eval says it
    folder = tmp_path / "runs"  # a folder of runs: one named, as eval names it
    shutil.copytree(built.run, folder / "a")
    _refused(capsys, ["--vae-run", str(folder), "--out", str(out)], "holds runs (a)",
             f"such as {folder / 'a'}")
    shutil.rmtree(folder)
    _refused(capsys, ["--vae-run", str(tmp_path / "missing"), "--out", str(out)], "not a directory")
    for kind in ("fifo", "directory"):  # a model file that is no regular file: named as `eval` names it
        odd = Path(shutil.copytree(built.run, tmp_path / f"odd-{kind}"))
        (odd / "model.safetensors").unlink()
        os.mkfifo(odd / "model.safetensors") if kind == "fifo" else (odd / "model.safetensors").mkdir()
        _refused(capsys, ["--vae-run", str(odd), "--out", str(out)], str(odd / "model.safetensors"),
                 "not a regular file")
        shutil.rmtree(odd)
    _refused(capsys, ["--out", str(tmp_path)], "is a directory")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _refused(capsys, ["--out", str(blocker / "sheet.html")], "not a directory")
    _refused(capsys, ["--out", "/proc/sheet.html"], "/proc")
    _refused(capsys, ["--out", str(tmp_path / "sheet.txt")], ".html")
    _refused(capsys, ["--compare", str(empty), "--vae-run", str(built.run), "--out", str(out)],
             "compare.json", str(empty))
    _refused(capsys, ["--compare", str(blocker), "--out", str(out)], "not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file"]
    assert list(empty.iterdir()) == []


def test_full_says_its_cost_before_it_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import vaekit.sheet
    from vaekit.errors import ConfigError

    def stop(*_args: object, **_kwargs: object) -> None:
        raise ConfigError("stopped before any work.")

    monkeypatch.setattr(vaekit.sheet, "build_sheet", stop)
    assert main(["sheet", "--full", "--out", str(tmp_path / "sheet.html")]) == 2
    err = capsys.readouterr().err
    cost, error = err.splitlines()
    assert cost.startswith("vaekit sheet --full: 100 epochs of 55,000 images") and "k = 5,000" in cost
    assert "stopped before any work" in error and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("made", ["an empty folder", "a folder of an array", "no such folder"])
def test_a_data_dir_without_fashion_mnist_is_refused_before_any_work(
        made: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    """`sheet --data-dir npy` (a folder that is no dataset) started training Ex.1's classifiers before
    the loader refused it; now the command and `build_sheet` find the set first."""
    import numpy as np

    import vaekit.sheet
    from vaekit.errors import DataError
    from vaekit.sheet import build

    def started(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("work started")

    data_dir = tmp_path / "npy"
    if made != "no such folder":
        data_dir.mkdir()
    if made == "a folder of an array":
        np.save(data_dir / "x.npy", np.zeros((4, 8, 8), np.uint8))
    monkeypatch.setattr(vaekit.sheet, "build_sheet", started)
    out = tmp_path / "sheet.html"
    assert main(["sheet", "--data-dir", str(data_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().removeprefix("vaekit sheet: error: ")
    one_sentence(err, str(data_dir), "no such directory" if made == "no such folder" else "no fashion-mnist")
    assert not out.exists()
    monkeypatch.setattr(build.exercise1, "question1", started)
    with pytest.raises(DataError):
        build.build_sheet(tmp_path / "work", data_dir=str(data_dir))


def test_a_data_dir_is_held_to_the_sets_the_page_reads_from_it(
        built: Built, tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    """--data-dir is where the page finds its IDX sets: with a --vae-run of digits (no data
    directory) it is Ex.1's Fashion-MNIST only, and the run reads its own data; with --compare too,
    nothing would read it, which is said."""
    from vaekit.errors import ConfigError, DataError
    from vaekit.sheet import build
    from vaekit.sheet import vae_run as vr

    empty = tmp_path / "idx"
    empty.mkdir()
    with pytest.raises(DataError) as err:  # the compare's set is looked for there, the run's is not
        build.check_sheet_data(str(empty), built.run, None)
    one_sentence(str(err.value), str(empty), "fashion-mnist")
    assert "digits" not in str(err.value)
    with pytest.raises(ConfigError) as refused:
        build.check_sheet_data(str(empty), built.run, built.compare)
    one_sentence(str(refused.value), f"--data-dir {empty}", "digits", "leave --data-dir out")
    run = vr.prepare(built.run, tmp_path / "work", 1, 2, 0, str(empty), 1, lambda _: None)
    assert run.dataset.image_shape == (1, 8, 8) and not run.trained_here


@pytest.mark.parametrize(("edit", "fault"), [
    (lambda rows: rows[0].pop("side"), "row 0: side is missing"),
    (lambda rows: rows[0].update(side="s"), "row 0: side is \"s\""),
    (lambda rows: rows[1].update(params=-5), "row 1: params is -5"),
    (lambda rows: rows[0].update(test_accuracy=1.7), "row 0: test_accuracy is 1.7, not a fraction"),
    (lambda rows: rows[0].update(train_accuracy="high"), "row 0: train_accuracy is \"high\""),
    (lambda rows: rows[0].update(epoch_seconds=-1.0), "row 0: epoch_seconds is -1.0, not a number"),
    (lambda rows: rows[0].update(model="resnet"), "row 0: model is 'resnet'"),
    (lambda rows: rows.clear(), "it holds no row"),
    (lambda rows: rows.append(dict(rows[0])), "row 4: dense at side 8 again (row 0)"),  # one per side
    (lambda rows: rows[0].update(gap="x"), "row 0: gap is \"x\""),
    (lambda rows: rows[0].update(gap=0.5), "row 0: gap is 0.5, not train_accuracy - test_accuracy"),
    # past a float's range, or a side no figure can place: named, not an OverflowError
    (lambda rows: rows[0].update(epoch_seconds=10**400), "row 0: epoch_seconds is a 401-digit number"),
    (lambda rows: rows[1].update(side=10**200), "row 1: side is a 201-digit number, not a whole number"),
    (lambda rows: rows[1].update(params=10**400), "row 1: params is a 401-digit number"),
    (lambda rows: rows[0].update(peak_memory_mb=1e308), "row 0: peak_memory_mb is 1e+308, not a number from"),
    (lambda rows: rows[0].update(test_interval=[0.9, 0.1]), "row 0: test_interval is [0.9, 0.1]"),
    # a network that failed or was refused measured nothing: its row cannot also hold accuracies
    (lambda rows: rows[0].update(error="boom", refused=True), "row 0: error is \"boom\", but train_accuracy"),
    (lambda rows: rows[1].update(refused=True), "row 1: refused is true, but error"),
    (lambda rows: rows.pop(), "no row of cnn at side 16"),  # a network dropped: its check went missing
])
def test_a_compare_json_not_as_classify_wrote_it_is_refused(
        built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[list[Any]], Any],
        fault: str) -> None:
    """`sheet --compare DIR` read rows holding only a params key: a missing side or a text accuracy
    was a traceback, a params of -5 or an accuracy of 170% a page whose checks all passed."""
    from vaekit.classify.compare_table import rows_fault

    rows = json.loads((built.compare / "compare.json").read_text())
    assert rows_fault(rows) is None  # what `classify --compare` wrote is its own rows
    edit(rows)
    folder = tmp_path / "compare"
    folder.mkdir()
    (folder / "compare.json").write_text(json.dumps(rows))
    out = tmp_path / "sheet.html"
    _refused(capsys, ["--compare", str(folder), "--vae-run", str(built.run), "--out", str(out)],
             f"--compare {folder}: compare.json is not the rows of `vaekit classify --compare` ({fault}")
    assert not out.exists()


def test_a_compare_json_in_another_order_is_read_by_side(built: Built, tmp_path: Path) -> None:
    """Rows reversed by hand (each valid, none twice) made a page whose check failed: 'from 10 to 8
    px the dense's parameters go 12,442 -> 8,410', read in file order. The rows are read in the
    compare's own order."""
    from vaekit.sheet import exercise1
    from vaekit.sheet.answer import Answer

    rows = json.loads((built.compare / "compare.json").read_text())
    folder = tmp_path / "compare"
    folder.mkdir()
    (folder / "compare.json").write_text(json.dumps(rows[::-1]))
    read, figure = exercise1.compare_rows(folder, tmp_path, True, 0, None, 1, lambda _: None)
    assert read == rows  # in the order `classify --compare` writes them: by model, then side
    answer = Answer("q", [], "")
    exercise1.compare_part(answer, read, figure)
    (check,) = answer.checks
    assert check.passed, check
    sides = sorted({r["side"] for r in rows})
    assert f"from {sides[0]} to {sides[-1]} px" in check.summary
