"""A folder of the user's own colour images through every command: patches of
scikit-learn's two sample photographs (`load_sample_images`: china.jpg, flower.jpg) written as PNG
files in two class folders, then `vaekit train` a Gaussian conv VAE on them (x dequantized, bits
per dimension of the 8-bit images), `eval`, `sample`, `report`, the explorer's API and `vaekit
classify` on the same folder."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit import cli
from vaekit.data.load import load_dataset
from vaekit.serve import app

SIDE = 16
PER_CLASS = 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_sample_images

    root = tmp_path_factory.mktemp("photos") / "photos"
    rng = np.random.default_rng(0)
    bunch = load_sample_images()
    for name, photo in zip(bunch.filenames, bunch.images, strict=True):
        cls = root / Path(name).stem
        cls.mkdir(parents=True)
        for i in range(PER_CLASS):
            top, left = rng.integers(0, photo.shape[0] - SIDE), rng.integers(0, photo.shape[1] - SIDE)
            Image.fromarray(photo[top : top + SIDE, left : left + SIDE]).save(cls / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def run(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "photos-conv"
    code = cli.main(["train", "--data", str(folder), "--model", "conv", "--likelihood", "gaussian",
                     "--channels", "8,16", "--hidden", "none", "--latent", "4", "--epochs", "2",
                     "--batch-size", "16", "--threads", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_the_folder_is_a_labelled_colour_dataset(folder: Path) -> None:
    ds = load_dataset(str(folder))
    assert ds.image_shape == (3, SIDE, SIDE)
    assert ds.classes == ("china", "flower")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 2 * PER_CLASS


def test_gaussian_conv_vae_reports_bits_per_dim_of_8_bit_images(run: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["image_shape"] == [3, SIDE, SIDE]
    capsys.readouterr()
    assert cli.main(["eval", str(run), "--k", "20", "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "bits per dim" in out and "8-bit images" in out and "D log 256" in out
    result = json.loads((run / "eval.json").read_text())
    dims = 3 * SIDE * SIDE
    assert result["binarization"] == "dequantize"
    assert result["bits_per_dim"] == pytest.approx(result["test_nll"] / (dims * math.log(2)))
    # a density on [0, 1)^D that is better than uniform gives fewer than 8 bits per 8-bit pixel;
    # 2 epochs on 64 images need not, but the number is a finite, positive log-probability
    assert 0 < result["bits_per_dim"] < 20
    assert result["test_nll"] > 0  # -log P of a discrete image is never negative


def test_sample_report_and_explorer_on_the_folder_run(run: Path, tmp_path: Path) -> None:
    png = tmp_path / "samples.png"
    assert cli.main(["sample", str(run), "-n", "8", "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.mode in ("RGB", "RGBA")
    if not (run / "eval.json").is_file():
        assert cli.main(["eval", str(run), "--k", "5", "--no-progress", "--threads", "1"]) == 0
    assert cli.main(["report", str(run)]) == 0
    html = (run / "report.html").read_text() if (run / "report.html").is_file() else \
        next(run.rglob("*.html")).read_text()
    assert "8-bit images" in html and "bits/dim" in html
    server = app.make_server(run, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        import http.client

        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
        conn.request("GET", "/api/info")
        info = json.loads(conn.getresponse().read())
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert info["image_shape"] == [3, SIDE, SIDE]
    assert info["classes"] == ["china", "flower"]


def test_classify_the_folder(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "photos-cnn"
    capsys.readouterr()
    assert cli.main(["classify", "--data", str(folder), "--epochs", "1", "--batch-size", "16",
                     "--threads", "1", "--out", str(out), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["image_shape"] == [3, SIDE, SIDE] and config["model"]["classes"] == 2


def test_image_size_resizes_for_the_conv_vae(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "small"
    assert cli.main(["train", "--data", str(folder), "--image-size", "8", "--image-channels", "1",
                     "--model", "conv", "--likelihood", "gaussian", "--channels", "4", "--hidden", "none",
                     "--latent", "2", "--epochs", "1", "--threads", "1", "--out", str(out),
                     "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["image_shape"] == [1, 8, 8]
    assert config["data"]["image_size"] == "8" and config["data"]["image_channels"] == 1
