"""vaekit.report (figures, visualize, html): images where they belong, latent geometry
against scipy/scikit-learn, parameter tables against the torch modules, and a self-contained page."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.decomposition import PCA
from torch import Tensor, nn

from cli_refusal import cli_bad
from eval_runs import make_run, write_images
from vaekit.cli import main
from vaekit.errors import CheckpointError
from vaekit.evaluate.run import evaluate_run
from vaekit.report import figures, visualize
from vaekit.report.html import write_report
from vaekit.report.vae_html import parameter_table, render
from vaekit.runs import model_fingerprint
from vaekit.vae.linear_gaussian import LinearGaussianVAE
from vaekit.vae.models import MLPVAE, ConvVAE


class PixelDecoder(nn.Module):
    """Decoder whose 1x2x3 'image' shows z: pixel values sigmoid(z_1), sigmoid(z_2), 0..., so that
    tests can read back where each latent was decoded. Encoder: mu = first two pixels' logits."""

    likelihood = "bernoulli"
    latent_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.reshape(x.shape[0], -1)[:, :2]
        return torch.logit(flat.clamp(1e-6, 1 - 1e-6)), torch.zeros_like(flat)

    def decode(self, z: Tensor) -> Tensor:
        out = torch.full((z.shape[0], 6), -30.0, dtype=z.dtype)
        out[:, :2] = z
        return out.reshape(-1, 1, 2, 3)


@pytest.fixture(scope="module")
def run2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "r2", latent=2)


class TestFigures:
    def test_mosaic_places_image_i_at_row_i_div_ncols(self) -> None:
        imgs = np.stack([np.full((1, 2, 3), i / 10) for i in range(7)])  # (7, 1, 2, 3)
        tile = figures.mosaic(imgs, ncols=3, pad=1)
        assert tile.shape == (3 * 3 - 1, 3 * 4 - 1, 1)
        for i in range(7):
            r, c = divmod(i, 3)
            np.testing.assert_allclose(tile[r * 3 : r * 3 + 2, c * 4 : c * 4 + 3, 0], i / 10)
        np.testing.assert_allclose(tile[6:8, 4:7, 0], 1.0)  # empty cell is white
        np.testing.assert_allclose(tile[2, :, 0], 1.0)  # padding row is white

    def test_reconstruction_rows_alternate(self) -> None:
        a = np.zeros((5, 1, 2, 2)) + np.arange(5)[:, None, None, None] / 10
        b = a + 0.5
        rows = figures.interleave_rows(a, b, ncols=3)
        assert rows.shape == (12, 1, 2, 2)
        np.testing.assert_allclose(rows[:3, 0, 0, 0], [0.0, 0.1, 0.2])
        np.testing.assert_allclose(rows[3:6, 0, 0, 0], [0.5, 0.6, 0.7])
        np.testing.assert_allclose(rows[6:9, 0, 0, 0], [0.3, 0.4, 1.0])  # padded with white
        np.testing.assert_allclose(rows[9:12, 0, 0, 0], [0.8, 0.9, 1.0])

    def test_every_plot_writes_a_png(self, tmp_path: Path) -> None:
        g = np.random.default_rng(0)
        imgs = g.random((12, 1, 8, 8))
        rows = [{"epoch": e, "train_neg_elbo": 100 - e, "val_neg_elbo": 101 - e, "train_kl": e,
                 "val_kl": e + 0.5} for e in range(1, 5)]
        written = [
            figures.image_grid(imgs, tmp_path / "grid.png", ncols=4),
            figures.reconstructions(imgs, imgs[::-1], tmp_path / "rec.png", ncols=5),
            figures.interpolations(g.random((3, 6, 1, 8, 8)), tmp_path / "interp.png"),
            figures.manifold(g.random((5, 5, 1, 8, 8)), [0.1, 0.3, 0.5, 0.7, 0.9], tmp_path / "man.png"),
            figures.latent_scatter(g.standard_normal((50, 2)), tmp_path / "lat.png",
                                   labels=np.arange(50) % 3, classes=["a", "b", "c"]),
            figures.kl_per_dim([0.5, 2.0, 0.0], tmp_path / "kl.png", active=[True, True, False]),
            figures.learning_curves(rows, tmp_path / "curves.png"),
            figures.image_grid(g.random((4, 3, 8, 8)), tmp_path / "rgb.png"),
        ]
        for path in written:
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
            pixels = mpimg.imread(path)
            assert pixels.shape[0] > 50 and pixels.shape[1] > 50
            assert pixels[..., :3].std() > 0.01, f"{path} is blank"


class TestModelArrays:
    def test_prior_quantiles_against_scipy(self) -> None:
        p, z = visualize.prior_quantiles(7)
        np.testing.assert_allclose(z.numpy(), norm.ppf(p.numpy()), rtol=1e-10, atol=1e-12)

    def test_manifold_grid_decodes_the_quantile_grid(self) -> None:
        grid, quantiles = visualize.manifold_grid(PixelDecoder(), n=5)
        assert grid.shape == (5, 5, 1, 2, 3)
        z = norm.ppf(quantiles)
        sig = 1 / (1 + np.exp(-z))
        for i in range(5):
            for j in range(5):  # column j: z_1 = q_j; row i: z_2 = q_{n-1-i} (up is larger)
                np.testing.assert_allclose(grid[i, j, 0, 0, 0].item(), sig[j], rtol=1e-6)
                np.testing.assert_allclose(grid[i, j, 0, 0, 1].item(), sig[4 - i], rtol=1e-6)

    def test_interpolation_ends_at_the_two_latent_means(self) -> None:
        m = PixelDecoder()
        xa = torch.tensor([[0.2, 0.7, 0, 0, 0, 0]]).reshape(1, 1, 2, 3)
        xb = torch.tensor([[0.9, 0.1, 0, 0, 0, 0]]).reshape(1, 1, 2, 3)
        rows = visualize.interpolate(m, xa, xb, steps=5)  # (1, 5, 1, 2, 3)
        first = rows[0, :, 0, 0, :2]
        torch.testing.assert_close(first[0], torch.tensor([0.2, 0.7]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(first[-1], torch.tensor([0.9, 0.1]), rtol=1e-5, atol=1e-6)
        logit_a, logit_b = torch.logit(torch.tensor([0.2, 0.7])), torch.logit(torch.tensor([0.9, 0.1]))
        mid = torch.sigmoid((logit_a + logit_b) / 2)
        torch.testing.assert_close(first[2], mid, rtol=1e-5, atol=1e-6)

    def test_pca_matches_scikit_learn(self) -> None:
        g = torch.Generator().manual_seed(0)
        pts = torch.randn(200, 5, generator=g) * torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1])
        proj, ratio = visualize.pca_2d(pts)
        ref = PCA(n_components=2).fit(pts.numpy())
        np.testing.assert_allclose(np.abs(proj), np.abs(ref.transform(pts.numpy())), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-5)

    def test_reconstruct_is_the_decoder_mean_at_mu(self) -> None:
        m = PixelDecoder()
        x = torch.rand(4, 1, 2, 3) * 0.8 + 0.1
        rec = visualize.reconstruct(m, x)
        torch.testing.assert_close(rec[:, 0, 0, :2], x[:, 0, 0, :2], rtol=1e-5, atol=1e-6)


class TestParameterTable:
    @pytest.mark.parametrize("model", [
        MLPVAE((1, 28, 28), [400], 20),
        MLPVAE((1, 8, 8), [32, 16], 3, likelihood="gaussian", variance="pixel"),
        ConvVAE((1, 28, 28), [32, 64], 16, hidden=[128]),
        ConvVAE((3, 9, 7), [8], 4, likelihood="gaussian", variance="global", activation="elu"),
    ], ids=["mlp", "mlp-gauss", "conv", "conv-odd"])
    def test_rows_add_up_to_the_torch_count(self, model: nn.Module) -> None:
        rows, source = parameter_table(model)
        assert source.startswith("vaekit.arch.arith")
        assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
        # every Linear row: params = in*out + out and MACs = in*out, as torch's module has
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        lrows = [r for r in rows if r.layer.startswith("Linear")]
        assert [r.params for r in lrows] == [m.weight.numel() + m.bias.numel() for m in linears]
        assert [r.macs for r in lrows] == [m.weight.numel() for m in linears]
        # the decoder's last row has the image's shape
        assert [r for r in rows if r.part == "p_dec"][-1].output_shape == "x".join(
            map(str, model.image_shape))

    def test_unknown_models_fall_back_to_named_parameters(self) -> None:
        rows, source = parameter_table(LinearGaussianVAE(5, 2))
        assert source == "the model's named parameters"
        assert {r.layer for r in rows} == {"W", "b", "log_s2", "A", "c", "l"}


class TestReport:
    def test_report_is_self_contained_and_has_the_numbers(self, run2d: Path) -> None:
        evaluation = evaluate_run(run2d, k=20, progress=False)
        path = write_report(run2d, log=lambda _m: None)
        page = path.read_text()
        assert path == run2d / "report.html"
        srcs = re.findall(r'<img src="([^"]+)"', page)
        expected = {"learning_curves", "reconstructions", "samples", "interpolations", "manifold",
                    "latent_space", "kl_per_dim"}
        assert {p.stem for p in (run2d / "figures").glob("*.png")} == expected
        assert len(srcs) == len(expected)
        for src in srcs:
            assert src.startswith("data:image/png;base64,")
            assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
        assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch
        assert f"{evaluation['test_nll']:,.4f}" in page
        assert f"{evaluation['test_neg_elbo']:,.4f}" in page
        assert "Parameters: " in page and "Time spent" in page and "hidden" in page
        text = re.sub(r"data:image/png;base64,[^\"]+", "", page)  # base64 may spell anything
        assert "PCA" not in text  # a 2-D latent is shown as it is

    def test_text_is_escaped(self) -> None:
        ev = {"test_nll": 1.0, "bits_per_dim": 0.1, "k": 5, "images": 3, "test_neg_elbo": 2.0,
              "test_recon": 1.5, "test_kl": 0.5, "active_units": 1, "latent_dim": 2,
              "dataset": "<script>alert(1)</script>"}
        page = render("a&b", {"data": {"name": "<b>x</b>"}}, ev, [], {}, ([], "none"))
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "vaekit report: a&amp;b" in page and "&lt;b&gt;x&lt;/b&gt;" in page

    def test_missing_eval_is_computed_with_the_given_k_or_refused(self, tmp_path: Path) -> None:
        run = make_run(tmp_path / "r", latent=3, epochs=1)
        with pytest.raises(CheckpointError, match="no eval.json"):
            write_report(run, evaluate_missing=False)
        write_report(run, k=7, limit=50, log=lambda _m: None)
        result = json.loads((run / "eval.json").read_text())
        assert result["k"] == 7 and result["images"] == 50
        assert "PCA projection" in (run / "report.html").read_text()
        assert (run / "figures" / "latent_space.png").is_file()
        assert not (run / "figures" / "manifold.png").exists()  # 3-D latent: PCA, no manifold

    def test_conv_gaussian_run_end_to_end(self, tmp_path: Path) -> None:
        """A convolutional VAE with a Gaussian decoder: dequantized test pixels (seed 0), the
        likelihood of 8-bit images said on the page, arith's table."""
        run = make_run(tmp_path / "r", latent=2, epochs=1, kind="conv", channels=[4],
                       likelihood="gaussian", variance="global")
        result = evaluate_run(run, k=8, limit=40, progress=False, probe=False)
        assert result["binarization"] == "dequantize" and result["binarization_seed"] == 0
        assert "8-bit images" in result["likelihood_of"]
        assert np.isfinite(result["test_nll"]) and result["test_nll"] <= result["test_neg_elbo"] + 1.0
        page = write_report(run, log=lambda _m: None).read_text()
        assert "The likelihood is of 8-bit images" in page
        assert "ConvTranspose2d" in page and "vaekit.arch.arith" in page and "p_logvar" in page
        assert len(list((run / "figures").glob("*.png"))) == 7

    def test_eval_json_of_other_weights_is_refused(self, tmp_path: Path) -> None:
        run = make_run(tmp_path / "r", latent=2, epochs=1)
        evaluate_run(run, k=3, limit=20, progress=False, probe=False)
        result = json.loads((run / "eval.json").read_text())
        assert result["model_sha256"] == model_fingerprint(run)
        (run / "eval.json").write_text(json.dumps({**result, "model_sha256": "0" * 64}))
        with pytest.raises(CheckpointError, match="other weights"):
            write_report(run)


def test_a_run_whose_name_is_not_utf8_gets_a_page_that_is_utf8(run2d: Path, tmp_path: Path) -> None:
    """A byte of the run's path that is not UTF-8 (Python keeps it as a lone surrogate) is shown in
    the page as U+FFFD, as a browser shows such a name; the file decodes as the UTF-8 it says."""
    run = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"run\xff\xfe")))
    shutil.copytree(run2d, run)
    (run / "eval.json").unlink(missing_ok=True)  # evaluated here, whatever ran on run2d before
    page = write_report(run, k=2, limit=20, log=lambda _m: None).read_bytes().decode("utf-8")
    assert "run\ufffd\ufffd" in page and "<html" in page


def test_evaluation_flags_that_would_go_unused_are_refused(run2d: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           one_sentence: Callable[..., None]) -> None:
    """--k and --limit say how a run without eval.json is evaluated: with --no-eval, or with an
    eval.json of the model there, they would be ignored; past 100,000 samples only `eval --force`
    goes (report has no --force). Each is one sentence, and nothing is written."""
    run = Path(shutil.copytree(run2d, tmp_path / "run"))
    for name in ("report.html", "eval.json"):  # what other tests of the shared run wrote
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "figures", ignore_errors=True)

    def refused(argv: list[str], *names: str) -> None:
        status = main(["report", str(run), *argv])
        err = capsys.readouterr().err.strip()
        assert status == 2 and err.startswith("vaekit report: error: "), err
        one_sentence(err.removeprefix("vaekit report: error: "), *names)
        assert not (run / "report.html").exists() and not (run / "figures").exists()

    refused(["--no-eval", "--k", "5"], "--k", "--no-eval")
    refused(["--no-eval", "--limit", "5"], "--limit", "--no-eval")
    refused(["--k", "200000"], "--k", "100000")
    evaluate_run(run, k=3, limit=20, progress=False, probe=False)
    refused(["--k", "5"], "--k", str(run / "eval.json"))
    refused(["--limit", "5"], "--limit", str(run / "eval.json"))
    assert main(["report", str(run)]) == 0


def test_the_figures_are_of_the_dataset_eval_json_was_computed_on(run2d: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   one_sentence: Callable[..., None]) -> None:
    """The eval table is eval.json's: a --dataset other than the one it was computed on is refused
    (one sentence naming both, nothing rewritten), the same file by another path is taken, a report
    without --dataset draws its figures from eval.json's file, as the report that evaluated it did,
    and is refused once that file is gone."""
    run = Path(shutil.copytree(run2d, tmp_path / "run"))
    for name in ("report.html", "eval.json"):  # what other tests of the shared run wrote
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "figures", ignore_errors=True)
    first, other = (write_images(tmp_path / f"{c}.npz", (8, 8), seed=s) for c, s in (("a", 1), ("b", 2)))
    assert main(["report", str(run), "--dataset", str(first), "--k", "3"]) == 0
    capsys.readouterr()
    assert json.loads((run / "eval.json").read_text())["data_source"] == os.path.abspath(first)
    drawn = {p.name: p.read_bytes() for p in (run / "figures").iterdir()}
    page = (run / "report.html").read_bytes()

    status = main(["report", str(run), "--dataset", str(other)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("vaekit report: error: "), err
    one_sentence(err.removeprefix("vaekit report: error: "), f"--dataset {other}", str(first),
                 f"vaekit eval {run} --dataset {other}", "leave --dataset out")
    assert (run / "report.html").read_bytes() == page
    assert {p.name: p.read_bytes() for p in (run / "figures").iterdir()} == drawn
    for missing in ("nonesuch", str(tmp_path / "nothing.npz")):  # named as not there, not sent to eval
        assert main(["report", str(run), "--dataset", missing]) == 2
        err = capsys.readouterr().err.strip()
        one_sentence(err.removeprefix("vaekit report: error: "), missing)
        assert "vaekit eval" not in err and ("unknown dataset" in err or "no such file" in err), err

    assert main(["report", str(run), "--dataset", str(tmp_path / "." / "a.npz")]) == 0
    assert main(["report", str(run)]) == 0
    assert str(first) in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (run / "figures").iterdir()} == drawn
    first.rename(tmp_path / "moved.npz")
    status = main(["report", str(run)])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    one_sentence(err.removeprefix("vaekit report: error: "), str(first), f"vaekit eval {run}")


def test_a_refused_report_says_only_why(run2d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        one_sentence: Callable[..., None]) -> None:
    """A report without --dataset of a run whose eval.json is of another file notes that file,
    but only when the report is made: refused (--limit or --k with an eval.json there, the file
    changed since), stderr holds the error sentence and nothing else."""
    run = Path(shutil.copytree(run2d, tmp_path / "run"))
    for name in ("report.html", "eval.json"):  # what other tests of the shared run wrote
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "figures", ignore_errors=True)
    data = write_images(tmp_path / "a.npz", (8, 8), seed=1)
    assert main(["eval", str(run), "--k", "2", "--no-probe", "--no-progress", "--dataset", str(data)]) == 0
    cli_bad(capsys, one_sentence, ["report", str(run), "--limit", "5"], "--limit", str(run / "eval.json"))
    cli_bad(capsys, one_sentence, ["report", str(run), "--k", "5"], "--k", str(run / "eval.json"))
    write_images(data, (8, 8), seed=2)  # same path, other images
    cli_bad(capsys, one_sentence, ["report", str(run), "--no-eval"], str(data), str(run / "eval.json"))
    assert not (run / "report.html").exists() and not (run / "figures").exists()
    write_images(data, (8, 8), seed=1)
    assert main(["report", str(run), "--no-eval"]) == 0
    assert capsys.readouterr().err.strip() == (f"{run}: eval.json is of {os.path.abspath(data)}; the "
                                               "figures are drawn from its test images")


def test_a_report_refuses_data_changed_since_eval_json(run2d: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       one_sentence: Callable[..., None]) -> None:
    """eval.json records the SHA-256 of the test split it evaluated, by the law each checkpoint
    records its own (the run's data: the same digest); a file changed in place since (same path,
    other images) is refused by `vaekit report` in one sentence naming eval.json, the file and
    `vaekit eval RUN --dataset FILE`, nothing written; evaluated again, the report is made, and
    an eval.json of an earlier vaekit, with no digest, is taken as before."""
    run = Path(shutil.copytree(run2d, tmp_path / "run"))
    for name in ("report.html", "eval.json"):  # what other tests of the shared run wrote
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "figures", ignore_errors=True)
    evaluate = ["eval", str(run), "--k", "2", "--no-probe", "--no-progress"]
    assert main(evaluate) == 0
    state = json.loads((run / "checkpoint.json").read_text())
    assert json.loads((run / "eval.json").read_text())["test_sha256"] == state["test_sha256"]

    data = write_images(tmp_path / "a.npz", (8, 8), seed=1)
    assert main([*evaluate, "--dataset", str(data)]) == 0
    write_images(data, (8, 8), seed=2)  # same path, other images
    capsys.readouterr()
    status = main(["report", str(run), "--no-eval", "--dataset", str(data)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("vaekit report: error: "), err
    one_sentence(err.removeprefix("vaekit report: error: "), str(data), str(run / "eval.json"),
                 f"vaekit eval {run} --dataset {data}")
    assert not (run / "report.html").exists() and not (run / "figures").exists()
    assert main(["report", str(run), "--no-eval"]) == 2  # eval.json's file, by its path: the same

    assert main([*evaluate, "--dataset", str(data)]) == 0
    assert main(["report", str(run), "--no-eval", "--dataset", str(data)]) == 0
    write_images(data, (8, 8), seed=3)
    result = json.loads((run / "eval.json").read_text())
    del result["test_sha256"]
    (run / "eval.json").write_text(json.dumps(result))
    assert main(["report", str(run), "--no-eval", "--dataset", str(data)]) == 0
