"""`vaekit eval`, `vaekit sample` and `vaekit report` through the CLI: output, files, and one
sentence with exit status 2 for each bad input of the issue."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch

from eval_runs import make_run, write_images
from vaekit.cli import main
from vaekit.errors import CheckpointError
from vaekit.evaluate.run import REQUIRED_FIELDS, read_eval

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("cli") / "run", latent=2)


def _error(capsys: pytest.CaptureFixture[str], status: int, command: str,
           one_sentence: Callable[..., None], *names: str) -> str:
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1].split("\r")[-1]
    prefix = f"vaekit {command}: error: "
    assert last.startswith(prefix), err
    one_sentence(last.removeprefix(prefix), *names)
    return last


class TestEval:
    def test_json_has_exactly_the_issue_fields_and_eval_json_matches(
            self, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["eval", str(run), "--k", "50", "--json", "--no-progress"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert set(REQUIRED_FIELDS) <= set(printed)
        assert printed == json.loads((run / "eval.json").read_text())
        assert printed["k"] == 50 and printed["images"] == 180 and printed["latent_dim"] == 2
        assert printed["binarization"] == "fixed" and printed["dataset"] == "digits"
        assert 0.0 <= printed["probe_accuracy"] <= 1.0 and printed["probe_train_images"] == 1437
        assert printed["test_nll"] <= printed["test_neg_elbo"]
        assert isinstance(printed["active_units"], int) and isinstance(printed["images"], int)

    def test_same_seed_same_numbers_other_seed_other_numbers(
            self, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        def once(seed: int) -> dict:
            assert main(["eval", str(run), "--k", "20", "--limit", "40", "--json", "--no-probe",
                         "--no-progress", "--seed", str(seed), "--threads", "1"]) == 0
            out = json.loads(capsys.readouterr().out)
            out.pop("seconds")
            return out

        a, b, c = once(1), once(1), once(2)
        assert a == b
        assert a["test_nll"] != c["test_nll"]
        assert a["test_kl"] == c["test_kl"]  # closed form, no sampling

    def test_table_output(self, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["eval", str(run), "--k", "10", "--limit", "30", "--no-progress"]) == 0
        out = capsys.readouterr().out
        result = json.loads((run / "eval.json").read_text())
        assert f"{result['test_nll']:.2f} nats" in out and "k = 10" in out
        assert f"active units       {result['active_units']} of 2" in out
        assert out.strip().endswith(f"wrote {run}/eval.json")

    def test_bad_inputs(self, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        one_sentence: Callable[..., None]) -> None:
        missing = tmp_path / "nope"
        _error(capsys, main(["eval", str(missing)]), "eval", one_sentence, str(missing))
        empty = tmp_path / "empty"
        empty.mkdir()
        _error(capsys, main(["eval", str(empty)]), "eval", one_sentence, str(empty))
        no_model = tmp_path / "no_model"
        no_model.mkdir()
        shutil.copy(run / "config.json", no_model / "config.json")
        _error(capsys, main(["eval", str(no_model)]), "eval", one_sentence, "model.safetensors")
        for k in ("0", "-3"):
            msg = _error(capsys, main(["eval", str(run), "--k", k]), "eval", one_sentence)
            assert "k must be at least 1" in msg
        msg = _error(capsys, main(["eval", str(run), "--k", str(10**20)]), "eval", one_sentence)
        assert msg.startswith("vaekit eval: error: --k must be 1 to"), msg  # the flag typed, not `k`
        other = write_images(tmp_path / "other.npz", (1, 10, 10))
        msg = _error(capsys, main(["eval", str(run), "--dataset", str(other)]), "eval", one_sentence,
                     "1x10x10", "1x8x8")
        rgb = write_images(tmp_path / "rgb.npz", (3, 8, 8))
        _error(capsys, main(["eval", str(run), "--dataset", str(rgb)]), "eval", one_sentence, "3x8x8")

    def test_a_limit_past_the_test_set_is_refused_with_its_size(
            self, run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
        """--limit is read as 'the first N': one more than the test set holds is refused, naming how
        many it holds (counted by an evaluation without --limit), not run on fewer without a word."""
        assert main(["eval", str(run), "--k", "1", "--json", "--no-probe", "--no-progress"]) == 0
        n = json.loads(capsys.readouterr().out)["images"]
        for limit in (n + 1, 10**9):
            msg = _error(capsys, main(["eval", str(run), "--k", "1", "--limit", str(limit), "--no-probe",
                                       "--no-progress"]), "eval", one_sentence, "--limit", f"{n:,}")
            assert f"at most {n:,}" in msg
        assert main(["eval", str(run), "--k", "1", "--limit", str(n), "--json", "--no-probe",
                     "--no-progress"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == n

    def test_force_without_a_large_k_is_refused(self, run: Path, capsys: pytest.CaptureFixture[str],
                                                one_sentence: Callable[..., None]) -> None:
        """--force exists to allow more than MAX_K importance samples: with fewer it would do nothing."""
        from vaekit.evaluate.run import MAX_K

        for k in ("5", str(MAX_K)):
            msg = _error(capsys, main(["eval", str(run), "--k", k, "--force", "--no-progress"]), "eval",
                         one_sentence, "--force", f"{MAX_K:,}")
            assert "leave it out" in msg

    def test_device(self, run: Path, capsys: pytest.CaptureFixture[str],
                    one_sentence: Callable[..., None]) -> None:
        def once(*flags: str) -> dict:
            assert main(["eval", str(run), "--k", "20", "--limit", "40", "--json", "--no-probe",
                         "--no-progress", "--threads", "1", *flags]) == 0
            out = json.loads(capsys.readouterr().out)
            out.pop("seconds")
            return out

        plain, cpu = once(), once("--device", "cpu")
        assert plain == cpu and cpu["device"] == "cpu"  # the default is the cpu, as for `vaekit train`
        assert read_eval(run)["device"] == "cpu"
        auto = once("--device", "auto")
        assert auto["device"] == ("cpu" if NO_CUDA else "cuda")
        assert auto == plain if NO_CUDA else auto["test_nll"] == pytest.approx(plain["test_nll"], rel=1e-5)
        written = (run / "eval.json").read_bytes()
        msg = _error(capsys, main(["eval", str(run), "--device", "bogus"]), "eval", one_sentence, "--device",
                     "bogus")
        assert "cpu" in msg and "cuda" in msg and "auto" in msg
        if NO_CUDA:
            _error(capsys, main(["eval", str(run), "--device", "cuda"]), "eval", one_sentence,
                   "--device cuda", "CUDA")
        assert (run / "eval.json").read_bytes() == written  # a refused device writes nothing

    def test_eval_json_device_must_be_text(self, run: Path, tmp_path: Path) -> None:
        copy = tmp_path / "copy"
        shutil.copytree(run, copy)
        if not (copy / "eval.json").is_file():
            assert main(["eval", str(copy), "--k", "5", "--limit", "10", "--no-probe", "--no-progress"]) == 0
        result = json.loads((copy / "eval.json").read_text())
        for value in ("cuda", None):
            (copy / "eval.json").write_text(json.dumps({**result, "device": value}))
            assert read_eval(copy)["device"] == value
        (copy / "eval.json").write_text(json.dumps({**result, "device": 0}))
        with pytest.raises(CheckpointError, match="device must be text"):
            read_eval(copy)

    def test_a_dataset_of_the_same_shape_is_accepted(self, run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
        same = write_images(tmp_path / "same.npz", (8, 8), n=60)
        assert main(["eval", str(run), "--dataset", str(same), "--k", "5", "--json", "--no-progress"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["dataset"] == "same.npz" and out["images"] == 6


class TestSample:
    def test_writes_a_grid_of_n_samples(self, run: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "s.png"
        assert main(["sample", str(run), "-n", "16", "--out", str(out), "--seed", "3"]) == 0
        assert capsys.readouterr().out.strip() == str(out)
        assert mpimg.imread(out).shape[0] > 100
        out2 = tmp_path / "s2.png"
        assert main(["sample", str(run), "-n", "16", "--out", str(out2), "--seed", "3"]) == 0
        assert out.read_bytes() == out2.read_bytes()  # same seed, same picture

    def test_bad_inputs(self, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        one_sentence: Callable[..., None]) -> None:
        _error(capsys, main(["sample", str(run), "-n", "0"]), "sample", one_sentence)
        _error(capsys, main(["sample", str(run), "--out", str(tmp_path / "a.jpg")]), "sample",
               one_sentence, "a.jpg")
        _error(capsys, main(["sample", str(tmp_path / "none")]), "sample", one_sentence, "none")
        _error(capsys, main(["sample", str(run), "--device", "gpu"]), "sample", one_sentence, "--device",
               "gpu")
        if NO_CUDA:
            _error(capsys, main(["sample", str(run), "--device", "cuda"]), "sample", one_sentence, "CUDA")

    def test_on_the_cpu_device_the_picture_of_no_flag(self, run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
        a, b = tmp_path / "a.png", tmp_path / "b.png"
        assert main(["sample", str(run), "-n", "9", "--out", str(a), "--seed", "5"]) == 0
        assert main(["sample", str(run), "-n", "9", "--out", str(b), "--seed", "5", "--device", "cpu"]) == 0
        assert a.read_bytes() == b.read_bytes()


class TestReport:
    def test_writes_report_and_figures_and_prints_the_path(
            self, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["eval", str(run), "--k", "10", "--no-progress"]) == 0
        capsys.readouterr()
        assert main(["report", str(run)]) == 0
        captured = capsys.readouterr()
        assert captured.out.strip() == str(run / "report.html")
        assert "evaluating" not in captured.err  # eval.json was there and current
        assert len(list((run / "figures").glob("*.png"))) == 7
        page = (run / "report.html").read_text()
        nll = json.loads((run / "eval.json").read_text())["test_nll"]
        assert re.search(rf">{nll:,.4f}<", page)

    def test_bad_inputs(self, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        one_sentence: Callable[..., None]) -> None:
        copy = tmp_path / "copy"
        shutil.copytree(run, copy)
        result = json.loads((copy / "eval.json").read_text())
        (copy / "eval.json").write_text(json.dumps({**result, "model_sha256": "f" * 64}))
        _error(capsys, main(["report", str(copy)]), "report", one_sentence, "eval.json")
        (copy / "eval.json").unlink()
        _error(capsys, main(["report", str(copy), "--no-eval"]), "report", one_sentence, "vaekit eval")
        _error(capsys, main(["report", str(copy), "--k", "0"]), "report", one_sentence)
        _error(capsys, main(["report", str(tmp_path / "gone")]), "report", one_sentence, "gone")
        _error(capsys, main(["report", str(copy), "--device", "tpu"]), "report", one_sentence, "--device",
               "tpu")
        if NO_CUDA:
            _error(capsys, main(["report", str(copy), "--device", "cuda"]), "report", one_sentence, "CUDA")
        assert not (copy / "eval.json").exists()  # nothing was evaluated for the refused devices


class TestServe:
    def test_bad_devices(self, run: Path, capsys: pytest.CaptureFixture[str],
                         one_sentence: Callable[..., None]) -> None:
        _error(capsys, main(["serve", str(run), "--port", "0", "--device", "bogus"]), "serve", one_sentence,
               "--device", "bogus")
        if NO_CUDA:  # refused before a socket is opened
            _error(capsys, main(["serve", str(run), "--port", "0", "--device", "cuda"]), "serve",
                   one_sentence, "CUDA")
