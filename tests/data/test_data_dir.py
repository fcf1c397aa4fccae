"""--data-dir and the cache against input that cannot be used: a --data-dir given for a set that
does not use it (digits, a .npy/.npz array, a folder) is refused in one sentence instead of being
silently ignored; one that does not exist is named for an IDX set, and nothing is downloaded
elsewhere; a ~/.cache that is a file makes a download one sentence, and the files already there
stay as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.cli import main
from vaekit.data import registry
from vaekit.data.load import load_dataset
from vaekit.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("places")


def user_sources(tmp_path: Path) -> dict[str, str]:
    """A name of each kind that does not use --data-dir: the bundled digits, an array, a folder."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, image in enumerate(images[:12]):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    return {"digits": "digits", "array": str(tmp_path / "x.npy"), "folder": str(folder)}


@pytest.mark.parametrize("kind", ["digits", "array", "folder"])
@pytest.mark.parametrize("exists", [True, False])
def test_a_data_dir_for_a_set_that_does_not_use_it_is_refused(tmp_path: Path, kind: str, exists: bool,
                                                              one_sentence: Callable[..., None],
                                                              cli_error: Callable[..., str]) -> None:
    name = user_sources(tmp_path)[kind]
    data_dir = tmp_path / ("here" if exists else "nonexistent")
    if exists:
        data_dir.mkdir()
    with pytest.raises(ConfigError) as info:
        load_dataset(name, str(data_dir))
    one_sentence(str(info.value), "--data-dir", str(data_dir), name)
    cli_error(main(["data", "info", name, "--data-dir", str(data_dir)]), str(data_dir))


def test_data_fetch_of_digits_refuses_a_data_dir(tmp_path: Path, cli_error: Callable[..., str]) -> None:
    cli_error(main(["data", "fetch", "digits", "--data-dir", str(tmp_path / "nonexistent")]),
              str(tmp_path / "nonexistent"))


def test_train_refuses_a_data_dir_for_an_array_and_writes_nothing(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    name = user_sources(tmp_path)["array"]
    out = tmp_path / "run"
    status = main(["train", "--data", name, "--data-dir", str(tmp_path / "nonexistent"), "--epochs", "1",
                   "--hidden", "8", "--latent", "2", "--threads", "1", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and "--data-dir" in err
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("name", ["digits", "fashion-mnist"])
def test_a_data_dir_from_a_config_file_is_named_as_its_key(tmp_path: Path, name: str,
                                                           capsys: pytest.CaptureFixture[str],
                                                           one_sentence: Callable[..., None]) -> None:
    """A data_dir of a TOML config: the sentence names the key, not only a flag never given."""
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nname = "{name}"\ndata_dir = "{tmp_path / "nonexistent"}"\n')
    status = main(["train", "--config", str(config), "--epochs", "1", "--threads", "1", "--no-progress",
                   "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("vaekit train: error: "), err
    one_sentence(err.removeprefix("vaekit train: error: "), str(tmp_path / "nonexistent"), "[data] data_dir")


def test_a_missing_data_dir_for_an_idx_set_is_named_and_nothing_is_downloaded(
        tmp_path: Path, places: object, fake_registry: Callable[..., object],
        one_sentence: Callable[..., None], cli_error: Callable[..., str]) -> None:
    fake_registry()
    missing = tmp_path / "nonexistent"
    with pytest.raises(DataError) as info:
        load_dataset("fake", str(missing))
    one_sentence(str(info.value), str(missing), "no such directory")
    cli_error(main(["data", "info", "fake", "--data-dir", str(missing)]), str(missing))
    assert not registry.cache_dir("fake").exists()


def test_a_run_trained_with_a_data_dir_evaluates_on_another_source(
        tmp_path: Path, fake_set: object, fake_registry: Callable[..., object],
        capsys: pytest.CaptureFixture[str]) -> None:
    """`vaekit eval RUN --dataset OTHER`: the run's --data-dir belongs to its own set and is not
    carried to a set that does not use one."""
    fake_registry()
    d = fake_set.write(tmp_path / "fake")  # type: ignore[attr-defined]
    out = tmp_path / "run"
    assert main(["train", "--data", "fake", "--data-dir", str(d), "--epochs", "1", "--hidden", "8",
                 "--latent", "2", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    other = user_sources(tmp_path)["array"]
    status = main(["eval", str(out), "--dataset", other, "--k", "2", "--no-progress"])
    assert status == 0, capsys.readouterr().err


# ----------------------------------------------------------------------------- a cache that is a file


def test_a_download_into_a_cache_that_is_a_file_is_one_sentence(
        places: object, fake_registry: Callable[..., object], one_sentence: Callable[..., None],
        cli_error: Callable[..., str]) -> None:
    fake_registry()
    cache = Path(registry.cache_dir("fake")).parents[1]  # ~/.cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("a file where the cache would be")
    for call in (lambda: load_dataset("fake"), lambda: registry.fetch("fake")):
        with pytest.raises(DataError) as info:
            call()
        one_sentence(str(info.value), str(cache))
    cli_error(main(["data", "fetch", "fake"]), str(cache))
    assert cache.read_text() == "a file where the cache would be"


def test_a_run_that_stored_an_unused_data_dir_still_loads(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A run trained before --data-dir was refused for an array kept it in config.json, where it
    was ignored: it is ignored again (eval, the run's images), never an error on a saved run."""
    from vaekit.runs import load_run  # as the tests of runs: vaekit loads on use

    name = user_sources(tmp_path)["array"]
    out = tmp_path / "run"
    assert main(["train", "--data", name, "--epochs", "1", "--hidden", "8", "--latent", "2",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "nonexistent")
    (out / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(out), "--k", "2", "--no-progress"]) == 0, capsys.readouterr().err
    assert load_run(out).images().shape[1:] == (1, 6, 5)


@pytest.mark.parametrize("kind, words", [("fifo", "a FIFO (named pipe)"), ("device", "a character device"),
                                         ("dangling", "a link to nothing"), ("folder", "a directory")])
@pytest.mark.parametrize("inside", [False, True])
def test_a_file_of_the_set_that_is_no_regular_file_is_named(
        tmp_path: Path, fake_set, fake_registry: Callable[..., object], one_sentence: Callable[..., None],
        cli_error: Callable[..., str], deadline, kind: str, words: str, inside: bool) -> None:
    """Three of the four files written by the set's writer and the fourth (train images, .gz) a
    FIFO, a link to /dev/zero, a link to nothing or a folder, in the data directory or in its
    sub-folder named as the set: that file is named and said not to be a regular file, never
    opened (a FIFO would block the reader), not 'no data there'."""
    import os

    fake_registry()
    data_dir = tmp_path / "fx"
    where = fake_set.write(data_dir / "fake" if inside else data_dir)
    odd = where / f"{registry.REGISTRY['fake'].files['train_images'].name}.gz"
    odd.unlink()
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "device":
        odd.symlink_to("/dev/zero")
    elif kind == "dangling":
        odd.symlink_to(tmp_path / "gone")
    else:
        odd.mkdir()
    with deadline(20):
        with pytest.raises(DataError) as info:
            load_dataset("fake", str(data_dir), download=False)
        status = main(["data", "info", "fake", "--data-dir", str(data_dir), "--no-download"])
    one_sentence(str(info.value), str(odd), words, *(["not a regular file"] if kind != "dangling" else []))
    cli_error(status, str(odd))
    assert "no fake data there" not in str(info.value)
    if kind == "folder":
        odd.rmdir()
    else:
        odd.unlink()
    fake_set.write(where)  # the same directory with the file as the set's writer makes it: read
    assert len(load_dataset("fake", str(data_dir), download=False).train) > 0
