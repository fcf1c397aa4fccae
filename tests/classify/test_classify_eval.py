"""vaekit.classify.evaluate and `vaekit classify eval`: eval.json's numbers held against brute-force
counts over the test images one by one, the Wilson interval against scipy and closed forms, the
file's round trip and its refusal when tampered with or stale, and one-sentence errors (exit 2)
for a missing directory, a damaged model and a run of the other kind, both ways."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from eval_runs import CLASSIFIER_LAYERS, make_classifier_run, make_run
from vaekit import runs
from vaekit.classify.evaluate import WRONG_SHOWN, evaluate_classifier, read_classifier_eval
from vaekit.classify.metrics import Z95, wilson_interval
from vaekit.cli import main
from vaekit.data.load import known_class_names, load_dataset, load_digits_dataset
from vaekit.errors import CheckpointError

# A tiny conv net on 1x8x8 digits; its cost by hand: the conv has 8 maps x 8 x 8 outputs of 3*3*1
# multiply-adds each and 8 * (9 + 1) parameters; the Linear 8*4*4 = 128 inputs -> 10 outputs.
LAYERS = CLASSIFIER_LAYERS
HAND_MACS = 8 * 8 * 8 * 9 + 128 * 10
HAND_PARAMS = 8 * 10 + 128 * 10 + 10
TEST_IMAGES = 180  # digits' test split




@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier_run(tmp_path_factory.mktemp("classify") / "run")


@pytest.fixture(scope="module")
def result(run_dir: Path) -> dict:
    return evaluate_classifier(run_dir, threads=1)


@pytest.fixture(scope="module")
def brute(run_dir: Path) -> dict:
    """Predictions, confidences and losses image by image, from the Run's own view of the test set."""
    run = runs.load_run(run_dir, "classify")
    x, y = run.images("test"), run.labels("test")
    assert y is not None
    pred, conf, loss = [], [], []
    with torch.inference_mode():
        for i in range(x.shape[0]):
            out = [float(v) for v in run.model(x[i : i + 1])[0].double()]
            top = max(range(len(out)), key=out.__getitem__)
            log_z = math.log(sum(math.exp(v - out[top]) for v in out)) + out[top]
            pred.append(top)
            conf.append(math.exp(out[top] - log_z))
            loss.append(log_z - out[int(y[i])])
    return {"y": [int(v) for v in y], "pred": pred, "conf": conf, "loss": loss, "model": run.model}


def last_error(capsys: pytest.CaptureFixture[str], status: int, command: str,
               one_sentence: Callable[..., None], *names: str) -> str:
    """Exit 2, no traceback, and a last line `vaekit COMMAND: error: SENTENCE` naming `names`."""
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    prefix = f"vaekit {command}: error: "
    assert last.startswith(prefix), err
    one_sentence(last.removeprefix(prefix), *names)
    return last


class TestNumbers:
    def test_accuracy_is_a_count_of_argmax_hits_image_by_image(self, result: dict, brute: dict) -> None:
        correct = sum(p == t for p, t in zip(brute["pred"], brute["y"], strict=True))
        assert result["images"] == len(brute["y"]) == TEST_IMAGES
        assert result["correct"] == correct
        assert result["accuracy"] == correct / TEST_IMAGES
        assert 0 < correct < TEST_IMAGES  # two epochs: neither untrained nor perfect, so the test bites

    def test_loss_is_the_mean_negative_log_softmax_of_the_label(self, result: dict, brute: dict) -> None:
        assert result["test_loss"] == pytest.approx(sum(brute["loss"]) / len(brute["loss"]), rel=1e-5)

    def test_confusion_matrix_is_the_double_loop_count(self, result: dict, brute: dict) -> None:
        k = 10
        pairs = list(zip(brute["y"], brute["pred"], strict=True))
        expected = [[sum(1 for t, p in pairs if (t, p) == (row, col)) for col in range(k)]
                    for row in range(k)]
        assert result["confusion"] == expected
        counts = Counter(brute["y"])
        assert [sum(r) for r in result["confusion"]] == [counts[c] for c in range(k)]
        assert sum(result["confusion"][c][c] for c in range(k)) == result["correct"]

    def test_per_class_rows_follow_from_the_confusion_matrix(self, result: dict) -> None:
        m = np.array(result["confusion"])
        assert [r["class"] for r in result["per_class"]] == list(range(10))
        assert [r["name"] for r in result["per_class"]] == [str(c) for c in range(10)]  # digits' classes
        for c, row in enumerate(result["per_class"]):
            assert row["images"] == m[c].sum() and row["correct"] == m[c, c]
            assert row["predicted"] == m[:, c].sum()
            assert row["accuracy"] == pytest.approx(m[c, c] / m[c].sum())
            if m[:, c].sum():
                assert row["precision"] == pytest.approx(m[c, c] / m[:, c].sum())
            else:
                assert row["precision"] is None
        # the images-weighted mean of the per-class accuracies is the overall accuracy
        assert sum(r["accuracy"] * r["images"] for r in result["per_class"]) / result["images"] == \
            pytest.approx(result["accuracy"])

    def test_most_wrong_are_the_most_confident_mistakes(self, result: dict, brute: dict) -> None:
        wrong = [i for i, (p, t) in enumerate(zip(brute["pred"], brute["y"], strict=True)) if p != t]
        expected = sorted(wrong, key=lambda i: -brute["conf"][i])[:WRONG_SHOWN]
        got = result["most_wrong"]
        assert len(got) == min(WRONG_SHOWN, len(wrong)) > 0
        assert [w["index"] for w in got] == expected
        for w in got:
            i = w["index"]
            assert (w["true"], w["predicted"]) == (brute["y"][i], brute["pred"][i])
            assert w["true"] != w["predicted"]
            assert w["confidence"] == pytest.approx(brute["conf"][i], rel=1e-5)

    def test_params_and_macs_by_hand_and_by_torch(self, result: dict, brute: dict) -> None:
        assert result["params"] == HAND_PARAMS == sum(p.numel() for p in brute["model"].parameters())
        assert result["macs"] == HAND_MACS

    def test_interval_and_fingerprint(self, result: dict, run_dir: Path) -> None:
        lo, hi = result["accuracy_ci95"]
        assert (lo, hi) == wilson_interval(result["correct"], result["images"])
        assert lo < result["accuracy"] < hi
        assert result["model_sha256"] == runs.model_fingerprint(run_dir)
        assert result["split"] == "test" and result["dataset"] == "digits" and result["seconds"] > 0

    def test_limit_takes_the_first_images(self, run_dir: Path, brute: dict, tmp_path: Path) -> None:
        copy = shutil.copytree(run_dir, tmp_path / "run")
        small = evaluate_classifier(copy, limit=50, threads=1)
        assert small["images"] == 50
        first = zip(brute["pred"][:50], brute["y"][:50], strict=True)
        assert small["correct"] == sum(p == t for p, t in first)
        assert json.loads((copy / "eval.json").read_text()) == small


class TestWilson:
    """The Wilson score interval (Wilson 1927): the p with (k/n - p)^2 = z^2 p (1 - p) / n."""

    @pytest.mark.parametrize("k, n", [(0, 1), (1, 10), (5, 10), (7, 9), (81, 263), (9_123, 10_000)])
    def test_roots_of_the_score_equation_and_scipy(self, k: int, n: int) -> None:
        lo, hi = wilson_interval(k, n)
        # (1 + z^2/n) p^2 - (2 k/n + z^2/n) p + (k/n)^2 = 0
        z2, phat = Z95 ** 2, k / n
        roots = sorted(np.roots([1 + z2 / n, -(2 * phat + z2 / n), phat**2]).real)
        assert (lo, hi) == pytest.approx(roots, abs=1e-12)
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)

    def test_known_values(self) -> None:
        # statsmodels' proportion_confint(5, 10, method="wilson") and (1, 10), as published
        assert wilson_interval(5, 10) == pytest.approx((0.2365930905, 0.7634069095), abs=1e-9)
        assert wilson_interval(1, 10) == pytest.approx((0.0178762131, 0.4041500268), abs=1e-9)

    @pytest.mark.parametrize("n", [1, 10, 180, 10_000])
    def test_all_wrong_and_all_right_in_closed_form(self, n: int) -> None:
        z2 = Z95 ** 2
        assert wilson_interval(0, n) == pytest.approx((0.0, z2 / (n + z2)), abs=1e-12)
        assert wilson_interval(n, n) == pytest.approx((n / (n + z2), 1.0), abs=1e-12)


def test_known_class_names_are_those_of_the_loaded_sets() -> None:
    assert known_class_names("digits") == load_digits_dataset().classes
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        assert known_class_names("fashion-mnist") == load_dataset("fashion-mnist", download=False).classes
    assert known_class_names("./my_images.npz") is None


def uncounted_prediction(e: dict) -> int:
    """A wrong class for most_wrong[0]'s image that the confusion matrix counts no image of its
    class as."""
    t = e["most_wrong"][0]["true"]
    return next(p for p, count in enumerate(e["confusion"][t]) if p != t and count == 0)


def list_a_cell_twice(e: dict) -> None:
    """Put a second image of a confusion cell that counts one beside the entry of that cell (same
    confidence, so the order holds; an index no entry lists)."""
    wrong = e["most_wrong"]
    j = next(j for j, w in enumerate(wrong) if e["confusion"][w["true"]][w["predicted"]] == 1)
    spare = next(i for i in range(e["images"]) if i not in {w["index"] for w in wrong})
    wrong[j + 1 if j + 1 < len(wrong) else j - 1] = {**wrong[j], "index": spare}


class TestEvalJson:
    def test_round_trip(self, result: dict, run_dir: Path) -> None:
        on_disk = json.loads((run_dir / "eval.json").read_text())
        assert on_disk == result
        assert read_classifier_eval(run_dir) == on_disk

    @pytest.mark.parametrize("field, tamper", [
        ("accuracy", lambda e: e.update(accuracy=e["accuracy"] + 0.01)),
        ("accuracy", lambda e: e.update(accuracy=0.9)),
        ("correct", lambda e: e.update(correct=e["correct"] + 1)),
        ("correct", lambda e: e.update(correct=500)),
        ("images", lambda e: e.update(images=0)),
        ("test_loss", lambda e: e.update(test_loss=-3)),
        ("classes", lambda e: e.update(classes=3)),
        ("confusion", lambda e: e["confusion"][0].__setitem__(0, e["confusion"][0][0] + 1)),
        ("per_class[3].images", lambda e: e["per_class"][3].update(images=0)),
        ("per_class[0].precision", lambda e: e["per_class"][0].update(precision=7.0)),
        ("accuracy_ci95", lambda e: e.update(accuracy_ci95=[0.0])),
        ("images", lambda e: e.update(images="180")),
        ("params", lambda e: e.update(params=True)),
        ("task", lambda e: e.update(task="vae")),
        ("most_wrong", lambda e: e.pop("most_wrong")),
        ("most_wrong[0]", lambda e: e["most_wrong"][0].update(predicted=e["most_wrong"][0]["true"])),
        ("most_wrong[0]", lambda e: e["most_wrong"][0].update(index=10_000)),
        ("dataset", lambda e: e.update(dataset="fashion-mnist")),
        ("params", lambda e: e.update(params=5)),
        ("params", lambda e: e.update(params=HAND_PARAMS + 1)),
        ("macs", lambda e: e.update(macs=1)),
        ("test_loss", lambda e: e.update(test_loss=1e300)),
        ("per_class[0].name", lambda e: e["per_class"][0].update(name="x")),
        ("threads", lambda e: e.update(threads=0)),
        ("ci_method", lambda e: e.update(ci_method="made up")),
        ("most_wrong[0]", lambda e: e["most_wrong"][0].update(predicted=uncounted_prediction(e))),
        ("most_wrong[1]", lambda e: e["most_wrong"][1].update(index=e["most_wrong"][0]["index"])),
        ("most_wrong[0]", lambda e: e["most_wrong"][0].update(confidence=0.01)),
        ("most_wrong[5]", lambda e: e["most_wrong"][5].update(confidence=0.99)),
        ("most_wrong[", list_a_cell_twice),
        ("test_loss", lambda e: e.update(test_loss=0.001)),
        ("test_loss", lambda e: e.update(test_loss=0)),
        ("test_loss", lambda e: e.update(test_loss=(e["images"] - e["correct"]) / e["images"] * 0.69)),
        ("threads is 1.0", lambda e: e.update(threads=1.0)),
        ("most_wrong lists 0 images", lambda e: e.update(most_wrong=[])),
        ("most_wrong lists 1 images", lambda e: e.update(most_wrong=e["most_wrong"][:1])),
    ], ids=["accuracy", "accuracy-0.9", "correct", "correct-500", "images-0", "negative-loss", "classes",
            "confusion", "per_class", "precision", "ci", "images-text", "params-bool", "task", "missing",
            "wrong-is-right", "index-out-of-range", "other-dataset", "params-5", "params-plus-one", "macs",
            "loss-past-float32", "class-name", "threads-0", "ci-method",
            "wrong-cell-of-no-count", "wrong-index-twice", "confidence-below-1/K", "wrong-out-of-order",
            "wrong-cell-past-its-count", "loss-below-its-counts",
            "loss-0", "loss-just-below-ln2-per-wrong-image",
            "threads-1.0", "most-wrong-emptied", "most-wrong-cut"])
    def test_a_tampered_file_is_refused_naming_the_field(self, result: dict, tmp_path: Path, run_dir: Path,
                                                         one_sentence: Callable[..., None], field: str,
                                                         tamper: Callable[[dict], None]) -> None:
        """An edited eval.json is named, with the field that disagrees, not taken for none (which
        `vaekit report` would evaluate again and write over)."""
        copy = shutil.copytree(run_dir, tmp_path / "run")
        changed = json.loads(json.dumps(result))
        tamper(changed)
        (copy / "eval.json").write_text(json.dumps(changed))
        with pytest.raises(CheckpointError) as info:
            read_classifier_eval(copy)
        one_sentence(str(info.value), str(copy / "eval.json"))
        said = str(info.value).removeprefix(f"{copy / 'eval.json'}: ").split(";")[0]
        assert field in said, said

    def test_an_eval_json_of_other_weights_is_none(self, result: dict, tmp_path: Path, run_dir: Path) -> None:
        copy = shutil.copytree(run_dir, tmp_path / "run")
        (copy / "eval.json").write_text(json.dumps({**result, "model_sha256": "0" * 64}))
        assert read_classifier_eval(copy) is None

    def test_garbage_and_vae_files_are_refused_a_missing_one_is_none(
            self, tmp_path: Path, run_dir: Path, one_sentence: Callable[..., None]) -> None:
        copy = shutil.copytree(run_dir, tmp_path / "run")
        for text in ("{not json", "[1, 2]", json.dumps({"test_nll": 90.0, "k": 5000, "images": 180})):
            (copy / "eval.json").write_text(text)
            with pytest.raises(CheckpointError) as info:
                read_classifier_eval(copy)
            one_sentence(str(info.value), str(copy / "eval.json"))
        (copy / "eval.json").unlink()
        assert read_classifier_eval(copy) is None

    def test_new_weights_make_it_stale(self, tmp_path: Path, run_dir: Path) -> None:
        copy = shutil.copytree(run_dir, tmp_path / "run")
        assert read_classifier_eval(copy) is not None
        run = runs.load_run(copy, "classify")
        with torch.no_grad():
            next(run.model.parameters()).add_(0.01)
        runs.save_weights(copy, dict(run.model.state_dict()), run.config.to_dict())
        for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):  # it records the trained model file
            (copy / name).unlink()
        assert read_classifier_eval(copy) is None
        fresh = evaluate_classifier(copy, threads=1)
        assert read_classifier_eval(copy) == fresh


class TestErrors:
    def test_missing_dir_damaged_model_and_a_vae_run(self, tmp_path: Path, run_dir: Path,
                                                     one_sentence: Callable[..., None]) -> None:
        with pytest.raises(CheckpointError) as info:
            evaluate_classifier(tmp_path / "nowhere")
        one_sentence(str(info.value), str(tmp_path / "nowhere"))
        copy = shutil.copytree(run_dir, tmp_path / "run")
        (copy / "eval.json").unlink()
        (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes()[:100])
        with pytest.raises(CheckpointError) as info:
            evaluate_classifier(copy)
        one_sentence(str(info.value), str(copy / "model.safetensors"))
        assert not (copy / "eval.json").exists()


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("vae") / "vae", latent=2, epochs=1)


class TestCli:
    def test_text(self, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["classify", "eval", str(run_dir)]) == 0
        out = capsys.readouterr().out
        on_disk = json.loads((run_dir / "eval.json").read_text())
        first = out.splitlines()[0]
        found = re.match(r"test accuracy (\d+\.\d\d)% \(95% CI (\d+\.\d\d)-(\d+\.\d\d)%, 180 images\)", first)
        assert found, first
        lo, hi = on_disk["accuracy_ci95"]
        assert [float(v) for v in found.groups()] == pytest.approx(
            [100 * on_disk["accuracy"], 100 * lo, 100 * hi], abs=0.006)
        for row in on_disk["per_class"]:
            assert re.search(rf"^{row['class']}\s+{row['images']}\s+{100 * row['accuracy']:.2f}%", out, re.M)
        assert f"{HAND_PARAMS:,} parameters" in out and f"{HAND_MACS:,} multiply-adds" in out
        assert f"wrote {run_dir}/eval.json" in out

    def test_json_is_eval_json(self, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["classify", "eval", str(run_dir), "--json", "--limit", "60"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads((run_dir / "eval.json").read_text())
        assert printed["images"] == 60 and len(printed["confusion"]) == 10
        assert main(["classify", "eval", str(run_dir), "--json"]) == 0  # back to the whole test set
        assert json.loads(capsys.readouterr().out)["images"] == TEST_IMAGES

    def test_vae_eval_on_a_classifier_run(self, run_dir: Path, capsys: pytest.CaptureFixture[str],
                                          one_sentence: Callable[..., None]) -> None:
        status = main(["eval", str(run_dir), "--k", "2", "--no-progress"])
        last_error(capsys, status, "eval", one_sentence, str(run_dir), "`vaekit classify")

    def test_classify_eval_on_a_vae_run(self, vae_run: Path, capsys: pytest.CaptureFixture[str],
                                        one_sentence: Callable[..., None]) -> None:
        status = main(["classify", "eval", str(vae_run)])
        last_error(capsys, status, "classify", one_sentence, str(vae_run), "`vaekit train`")
        assert not (vae_run / "eval.json").exists()

    def test_missing_dir_and_damaged_model(self, tmp_path: Path, run_dir: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           one_sentence: Callable[..., None]) -> None:
        status = main(["classify", "eval", str(tmp_path / "nope")])
        last_error(capsys, status, "classify", one_sentence, str(tmp_path / "nope"))
        copy = shutil.copytree(run_dir, tmp_path / "run")
        (copy / "model.safetensors").write_bytes(b"\x00" * 16)
        status = main(["classify", "eval", str(copy)])
        last_error(capsys, status, "classify", one_sentence, str(copy / "model.safetensors"))

    def test_a_limit_past_the_test_set_is_refused_as_vae_eval_refuses_it(
            self, run_dir: Path, vae_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            one_sentence: Callable[..., None]) -> None:
        """--limit is 'the first N': one more than the test set holds (counted by an evaluation
        without --limit) is refused in the very sentence `vaekit eval` gives a VAE run of the same
        digits, and eval.json is left as it was; exactly N is taken."""
        copy = shutil.copytree(run_dir, tmp_path / "run")
        assert main(["classify", "eval", str(copy), "--json"]) == 0
        n = json.loads(capsys.readouterr().out)["images"]
        before = (copy / "eval.json").read_bytes()
        for limit in (n + 1, 100_000):
            mine = last_error(capsys, main(["classify", "eval", str(copy), "--limit", str(limit)]),
                              "classify", one_sentence, "--limit", f"{n:,}")
            vae = last_error(capsys, main(["eval", str(vae_run), "--k", "1", "--limit", str(limit),
                                           "--no-probe", "--no-progress"]), "eval", one_sentence)
            assert mine.removeprefix("vaekit classify: error: ") == vae.removeprefix("vaekit eval: error: ")
            assert (copy / "eval.json").read_bytes() == before
        assert main(["classify", "eval", str(copy), "--limit", str(n), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == n

    def test_limit_zero_is_a_flag_error(self, run_dir: Path, capsys: pytest.CaptureFixture[str],
                                        one_sentence: Callable[..., None]) -> None:
        status = main(["classify", "eval", str(run_dir), "--limit", "0"])
        last_error(capsys, status, "classify", one_sentence, "--limit", "at least 1")


@pytest.mark.parametrize("flags", [["--epochs", "3"], ["--lr", "0.1"],
                                   ["--layers", "Flatten()", "Linear(10)", "--seed", "1"],
                                   ["--out", "elsewhere"], ["--resume"], ["--flip"], ["--no-progress"],
                                   ["--compare", "--sides", "8"], ["--config", "none.toml"]])
def test_training_flags_before_eval_are_one_sentence(flags: list[str], run_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     one_sentence: Callable[..., None]) -> None:
    """`classify --epochs 3 eval RUN` evaluated and dropped --epochs without a word: refused, naming
    each flag, and eval.json as it was."""
    copy = shutil.copytree(run_dir, tmp_path / "run")
    (copy / "eval.json").unlink(missing_ok=True)
    (tmp_path / "none.toml").write_text("")
    status = main(["classify", *[f.replace("none.toml", str(tmp_path / "none.toml")) for f in flags],
                   "eval", str(copy)])
    named = [f for f in flags if f.startswith("--")]
    last_error(capsys, status, "classify", one_sentence, *named, "`vaekit classify eval RUN_DIR`")
    assert not (copy / "eval.json").exists()


def test_data_dir_and_json_before_eval_are_eval_s(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The two options classify and eval share still reach eval when given before it."""
    assert main(["classify", "--json", "eval", str(run_dir), "--limit", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 30
    assert main(["classify", "--data-dir", "/nonexistent-dir", "eval", str(run_dir), "--limit", "30"]) == 2
    assert "/nonexistent-dir" in capsys.readouterr().err


def test_eval_in_several_processes_is_one_sentence(run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str],
                                                   one_sentence: Callable[..., None]) -> None:
    """`classify --nproc 2 eval RUN` started ranks that locked the run against each other: refused
    before torchrun, and a rank of torchrun's refuses it too."""
    from vaekit import distributed

    monkeypatch.setattr(distributed, "launch", lambda *_: pytest.fail("torchrun started"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    status = main(["classify", "--nproc", "2", "eval", str(run_dir)])
    last_error(capsys, status, "classify", one_sentence, "--nproc", "`vaekit classify eval`", "one process")
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9"}.items():
        monkeypatch.setenv(name, value)
    status = main(["classify", "eval", str(run_dir)])
    last_error(capsys, status, "classify", one_sentence, "`vaekit classify eval`", "torchrun")
