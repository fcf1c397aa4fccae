"""A URL given where vaekit expects a dataset name, a local file or folder, or a data directory
(`--data https://...`, `vaekit data info https://...`, `--data-dir https://...`): one sentence
naming the text as the user typed it (its '//' kept, not a path that collapsed it) and saying
that a URL is not read, exit 2, nothing written. A local path of the same text, where one is
there, is read as the path it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.data.load import load_dataset
from vaekit.errors import DataError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path

URLS = ["https://example.com/x.npz", "https://x/y.npy", "http://example.com/images/", "file:///tmp/x.npy"]


def said(capsys: pytest.CaptureFixture[str], status: int, text: str, one_sentence) -> str:
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1].split(": error: ", 1)[1]
    one_sentence(last, text, "a URL, which vaekit does not read")
    return last


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", [
    ["train", "--data", "{url}", "--epochs", "1", "--out", "{out}", "--no-progress"],
    ["classify", "--data", "{url}", "--epochs", "1", "--out", "{out}", "--no-progress"],
    ["data", "info", "{url}"],
    ["data", "fetch", "{url}"],
])
def test_a_url_as_the_data_is_named_as_given(tmp_path, capsys, one_sentence, url, command) -> None:
    out = tmp_path / "run"
    status = main([a.format(url=url, out=out) for a in command])
    message = said(capsys, status, url, one_sentence)
    assert "local files and folders" in message and "fashion-mnist" in message
    assert not out.exists()
    with pytest.raises(DataError, match="a URL"):
        load_dataset(url)


@pytest.mark.parametrize("command", [
    ["train", "--data-dir", "{url}", "--epochs", "1", "--out", "{out}", "--no-progress"],
    ["data", "list", "--data-dir", "{url}"],
    ["data", "fetch", "mnist", "--data-dir", "{url}"],
])
def test_a_url_as_the_data_directory_is_named_as_given(tmp_path, capsys, one_sentence, command) -> None:
    url, out = "https://example.com/mnist/", tmp_path / "run"
    status = main([a.format(url=url, out=out) for a in command])
    assert "local folder" in said(capsys, status, url, one_sentence)
    assert not out.exists()


def test_a_local_path_spelled_like_a_url_is_read(tmp_path, monkeypatch) -> None:
    """'https://x/y.npy' is the relative path https:/x/y.npy to the file system: where a file is
    there, it is the user's file, read as numpy wrote it."""
    monkeypatch.chdir(tmp_path)
    Path("https:/x").mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.save("https:/x/y.npy", images)
    ds = load_dataset("https://x/y.npy")
    got = np.concatenate([ds.train.images, ds.val.images, ds.test.images])[:, 0]
    assert sorted(map(bytes, got)) == sorted(map(bytes, images))
