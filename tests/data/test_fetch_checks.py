"""`vaekit data fetch` of a user's file or folder refuses what `vaekit data info` refuses of it by
what a header or a listing shows, in the same sentence (held against `data info`, which reads the
whole file or decodes the whole folder), and decodes nothing to say so."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit import cli
from vaekit.data import image_decode

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path


def png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)
    return path


def last_error(capsys: pytest.CaptureFixture[str], status: int) -> str:
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1].split("\r")[-1].split(": error: ", 1)[1]


def bad_sources(root: Path) -> list[Path]:
    """A text file named .npy, a cut .npy, an .npz of wrong names, an .npz whose member is not .npy
    data, an empty folder, a folder of .npy files only, a folder of 3 images."""
    (root / "fake.npy").write_text("hello\n")
    np.save(root / "cut.npy", np.zeros((10, 4, 4), np.uint8))
    (root / "cut.npy").write_bytes((root / "cut.npy").read_bytes()[:-7])
    np.savez(root / "names.npz", z=np.zeros((10, 4, 4), np.uint8))
    with zipfile.ZipFile(root / "raw.npz", "w") as z:
        z.writestr("images.npy", b"not an array at all")
    (root / "empty").mkdir()
    (root / "arrays").mkdir()
    np.save(root / "arrays" / "a.npy", np.zeros((10, 4, 4), np.uint8))
    for i in range(3):
        png(root / "few" / f"{i}.png", i)
    return [root / n for n in ("fake.npy", "cut.npy", "names.npz", "raw.npz", "empty", "arrays", "few")]


def test_fetch_refuses_what_info_refuses_in_its_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in bad_sources(tmp_path):
        said = last_error(capsys, cli.main(["data", "info", str(path)]))
        assert last_error(capsys, cli.main(["data", "fetch", str(path)])) == said, path


def test_fetch_of_a_good_folder_decodes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(10):
        png(tmp_path / "good" / f"{i}.png", i)
    np.savez(tmp_path / "good.npz", images=np.zeros((10, 4, 4), np.uint8), labels=np.arange(10))

    def no(*_args: object) -> None:
        raise AssertionError("decoded an image")

    monkeypatch.setattr(image_decode.Image, "open", no)
    for path in (tmp_path / "good", tmp_path / "good.npz"):
        assert cli.main(["data", "fetch", str(path)]) == 0
        assert capsys.readouterr().out.strip().endswith("read where it lies; nothing to fetch.")
    assert not (tmp_path / "home" / ".cache").exists()  # no folder cache written


@pytest.mark.parametrize("argv", [["fetch", ""], ["info", ""], ["info", "", "--image-size", "8"],
                                  ["fetch", " "], ["info", " "]])
def test_an_empty_name_asks_for_a_name(argv: list[str], capsys: pytest.CaptureFixture[str],
                                       one_sentence: Callable[..., None]) -> None:
    """`data info ''` named "command line: data.name", a key the user never typed, not the name."""
    message = last_error(capsys, cli.main(["data", *argv]))
    one_sentence(message, "the dataset name is", "fashion-mnist")
    assert not message.startswith(":") and "neither" not in message and "data.name" not in message
