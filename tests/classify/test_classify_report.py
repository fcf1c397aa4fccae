"""`vaekit report` on a classifier run: figures/*.png and one self-contained report.html holding
the accuracy with its interval, the per-class table, the confusion matrix, the most confidently
wrong images, the learning curves and the layer table with receptive fields; eval.json reused when
it is the model's, evaluated first when missing or stale, nothing written when an input is bad."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from eval_runs import CLASSIFIER_LAYERS, make_classifier_run
from vaekit import runs
from vaekit.arch.table import dims
from vaekit.cli import main
from vaekit.errors import CheckpointError
from vaekit.report import figures
from vaekit.report.html import write_report

LAYERS = CLASSIFIER_LAYERS
PNG = b"\x89PNG\r\n\x1a\n"




@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier_run(tmp_path_factory.mktemp("classify") / "trained")


@pytest.fixture(scope="module")
def reported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the run reported by `vaekit report` (no eval.json: it evaluates first)."""
    run = shutil.copytree(trained, tmp_path_factory.mktemp("report") / "run")
    assert main(["report", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def page(reported: Path) -> str:
    return (reported / "report.html").read_text()


def fresh(trained: Path, tmp_path: Path) -> Path:
    return shutil.copytree(trained, tmp_path / "run")


class TestPage:
    def test_files_are_written(self, reported: Path) -> None:
        assert (reported / "report.html").is_file() and (reported / "eval.json").is_file()
        names = sorted(p.name for p in (reported / "figures").iterdir())
        assert names == ["confusion.png", "learning_curves.png", "most_wrong.png"]
        for name in names:
            image = mpimg.imread(reported / "figures" / name)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    def test_self_contained(self, page: str) -> None:
        links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, re.I)
        assert links and all(link.startswith("data:image/png;base64,") for link in links), links
        assert "<link" not in page and "<script" not in page and "url(" not in page
        for link in links:
            assert base64.b64decode(link.split(",", 1)[1]).startswith(PNG)
        assert len(links) == 3

    def test_headline_is_eval_json(self, reported: Path, page: str) -> None:
        ev = json.loads((reported / "eval.json").read_text())
        lo, hi = ev["accuracy_ci95"]
        assert f"<b id='accuracy'>{100 * ev['accuracy']:.2f}%</b>" in page
        assert f"95% CI {100 * lo:.2f}&ndash;{100 * hi:.2f}%" in page
        assert f"{ev['images']} test images of digits" in page and ev["model_sha256"] in page

    def test_per_class_and_confusion_tables(self, reported: Path, page: str) -> None:
        ev = json.loads((reported / "eval.json").read_text())
        section = page.split("id='per-class'")[1].split("<h2")[0]
        for r in ev["per_class"]:
            assert f'<td class="num">{100 * r["accuracy"]:.2f}%</td>' in section
        assert "id='fig-confusion'" in page
        table = page.split("id='confusion-table'")[1].split("</table>")[0]
        rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]  # after the header
        cells = [[int(c) for c in re.findall(r'<td class="num">([\d,]+)</td>', r)] for r in rows]
        assert cells == ev["confusion"]

    def test_most_wrong_images(self, reported: Path, page: str) -> None:
        ev = json.loads((reported / "eval.json").read_text())
        assert ev["most_wrong"] and "id='fig-most_wrong'" in page
        section = page.split("id='mistakes'")[1].split("<h2")[0]
        rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>(\w+)</td><td>(\w+)</td>", section)
        assert [(int(i), int(t), int(p)) for i, t, p in rows] == [
            (w["index"], w["true"], w["predicted"]) for w in ev["most_wrong"]]

    def test_learning_curves_from_metrics(self, reported: Path, page: str) -> None:
        assert "id='fig-learning_curves'" in page
        section = page.split("id='curves'")[1].split("<h2")[0]
        for row in runs.read_metrics(reported):
            assert f"{row['val_accuracy']:,.4f}" in section and f"{row['train_loss']:,.4f}" in section

    def test_layer_table_with_receptive_fields(self, reported: Path, page: str) -> None:
        rows = runs.load_run(reported, "classify").model.rows
        table = page.split("id='layer-table'")[1].split("</table>")[0]
        lines = re.findall(r"<tr>(.*?)</tr>", table)[1:]
        assert len(lines) == len(rows) + 1  # and the totals
        for line, r in zip(lines, rows, strict=False):
            cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", line)]
            assert cells[1] == r.layer and cells[2] == dims(r.output_shape)
            assert cells[3] == f"{r.params:,}" and cells[4] == f"{r.macs:,}"
            assert cells[5] == dims(r.receptive_field) and cells[6] == dims(r.jump)
        # by hand: a 3x3 conv sees 3x3 pixels; the 2x2 pooling after it sees 4x4, with jump 2
        assert [dims(r.receptive_field) for r in rows[:3]] == ["3x3", "3x3", "4x4"]
        assert dims(rows[2].jump) == "2x2"


class TestEvalJsonUse:
    def test_a_valid_eval_json_is_reused(self, trained: Path, tmp_path: Path) -> None:
        run = fresh(trained, tmp_path)
        assert main(["classify", "eval", str(run), "--limit", "40"]) == 0
        before = (run / "eval.json").read_bytes()
        write_report(run, log=lambda m: None)
        assert (run / "eval.json").read_bytes() == before
        assert "on 40 test images" in (run / "report.html").read_text()

    def test_a_stale_eval_json_is_evaluated_again(self, trained: Path, tmp_path: Path) -> None:
        run = fresh(trained, tmp_path)
        assert main(["classify", "eval", str(run), "--json", "--limit", "40"]) == 0
        ev = json.loads((run / "eval.json").read_text())
        (run / "eval.json").write_text(json.dumps({**ev, "model_sha256": "f" * 64}))
        said: list[str] = []
        write_report(run, log=said.append)
        assert said and "evaluating" in said[0]
        assert json.loads((run / "eval.json").read_text())["model_sha256"] == runs.model_fingerprint(run)

    def test_no_eval_says_so_and_writes_nothing(self, trained: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                one_sentence: Callable[..., None]) -> None:
        run = fresh(trained, tmp_path)
        with pytest.raises(CheckpointError) as info:
            write_report(run, evaluate_missing=False)
        one_sentence(str(info.value), str(run), f"vaekit classify eval {run}")
        assert not (run / "report.html").exists() and not (run / "figures").exists()


class TestBadInput:
    @pytest.mark.parametrize("no_eval", [False, True])
    def test_an_edited_eval_json_is_named_and_kept(self, trained: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   one_sentence: Callable[..., None], no_eval: bool) -> None:
        """accuracy edited to 0.9 beside correct / images of another value: `vaekit report` (and
        with --no-eval) names eval.json and the field, and writes nothing; not 'no eval.json'."""
        run = fresh(trained, tmp_path)
        assert main(["classify", "eval", str(run), "--limit", "40"]) == 0
        ev = json.loads((run / "eval.json").read_text())
        assert ev["correct"] / ev["images"] != 0.9
        (run / "eval.json").write_text(json.dumps({**ev, "accuracy": 0.9}))
        before = (run / "eval.json").read_bytes()
        capsys.readouterr()
        assert main(["report", str(run), *(["--no-eval"] if no_eval else [])]) == 2
        out, err = capsys.readouterr()
        assert err.startswith("vaekit report: error: ") and len(err.strip().splitlines()) == 1, err
        sentence = err.strip().removeprefix("vaekit report: error: ")
        one_sentence(sentence, str(run / "eval.json"))
        assert "accuracy is 0.9" in sentence and "evaluating" not in out
        assert (run / "eval.json").read_bytes() == before
        assert not (run / "report.html").exists() and not (run / "figures").exists()

    def test_damaged_metrics_write_nothing(self, trained: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           one_sentence: Callable[..., None]) -> None:
        run = fresh(trained, tmp_path)
        lines = (run / "metrics.jsonl").read_text().splitlines()
        (run / "metrics.jsonl").write_text("\n".join(["{oops", *lines]) + "\n")
        status = main(["report", str(run)])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert status == 2 and err.startswith("vaekit report: error: ")
        one_sentence(err.removeprefix("vaekit report: error: "), str(run / "metrics.jsonl"))
        assert not (run / "report.html").exists() and not (run / "figures").exists()
        assert not (run / "eval.json").exists()

    def test_a_limit_past_the_test_set_writes_nothing(self, trained: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      one_sentence: Callable[..., None]) -> None:
        """With no eval.json the report evaluates first: --limit one past the test set (its size
        counted by `vaekit classify eval` of another copy) is `vaekit eval`'s refusal, exit 2."""
        counted = shutil.copytree(trained, tmp_path / "counted")
        assert main(["classify", "eval", str(counted), "--json"]) == 0
        n = json.loads(capsys.readouterr().out)["images"]
        run = fresh(trained, tmp_path)
        for limit in (n + 1, 100_000):
            status = main(["report", str(run), "--limit", str(limit)])
            err = capsys.readouterr().err.strip().splitlines()[-1]
            assert status == 2 and err.startswith("vaekit report: error: "), err
            one_sentence(err.removeprefix("vaekit report: error: "), f"--limit {limit:,}", f"at most {n:,}")
            assert not (run / "report.html").exists() and not (run / "figures").exists()
            assert not (run / "eval.json").exists()

    @pytest.mark.parametrize("flag, value", [("--dataset", "digits"), ("--k", "5")])
    def test_vae_flags_are_for_vae_runs(self, trained: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        one_sentence: Callable[..., None], flag: str, value: str) -> None:
        run = fresh(trained, tmp_path)
        status = main(["report", str(run), flag, value])
        err = capsys.readouterr().err.strip()
        assert status == 2
        one_sentence(err.removeprefix("vaekit report: error: "), flag, str(run))
        assert not (run / "report.html").exists()


class TestFigures:
    def test_confusion_figure_with_an_empty_row(self, tmp_path: Path) -> None:
        path = figures.confusion_figure([[3, 1, 0], [0, 0, 0], [2, 0, 5]], ["a", "b", "c"],
                                        tmp_path / "c.png")
        image = mpimg.imread(path)
        assert image.ndim == 3 and path.read_bytes().startswith(PNG)

    def test_captioned_grid_needs_one_caption_per_image(self, tmp_path: Path) -> None:
        images = np.random.default_rng(0).random((5, 1, 8, 8))
        assert figures.captioned_grid(images, list("abcde"), tmp_path / "g.png", ncols=3).is_file()
        with pytest.raises(ValueError, match="5 images but 4 captions"):
            figures.captioned_grid(images, list("abcd"), tmp_path / "h.png")
        assert not (tmp_path / "h.png").exists()

    def test_classifier_curves(self, tmp_path: Path) -> None:
        rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 1 - 0.5 / e,
                 "val_accuracy": 1 - 0.6 / e} for e in range(1, 4)]
        assert mpimg.imread(figures.classifier_curves(rows, tmp_path / "l.png")).ndim == 3


@pytest.mark.parametrize(("text", "said"), [("my notes\n", "not readable JSON"),
                                            ('{"x": 1}\n', "unknown key x")])
def test_a_config_json_of_no_run_is_named_not_taken_for_a_vae_runs(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None], text: str, said: str) -> None:
    """A classifier run whose config.json is a user's text, or JSON of no run's keys: `report`
    names config.json as `classify eval` does, not an eval.json 'of a classifier in a VAE's run'
    nor a config.json 'copied from a VAE run'."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    (run / runs.CONFIG).write_text(text)
    for argv in (["report", str(run)], ["classify", "eval", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        one_sentence(err.split(": error: ", 1)[1], str(run / runs.CONFIG), said)
        assert "eval.json" not in err and "copied" not in err, err
