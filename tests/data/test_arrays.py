"""Degenerate user arrays. Empty images are refused; channel-last arrays are
converted to (N, C, H, W) and shapes that cannot be decided are refused; a NaN or infinite float
array gets its sentence and no numpy warning; a file that is not .npy/.npz is told so (never
pointed at pickle); integers in 0..255 and bool are converted. Each held against numpy arrays
built here, or against a second load of the same images in another layout."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.data.arrays import check_images, load_array_dataset
from vaekit.data.load import load_dataset
from vaekit.errors import DataError


def save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def distinct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint8 images of `shape` whose rows differ (image i's first value is i)."""
    images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    images.reshape(shape[0], -1)[:, 0] = np.arange(shape[0])
    return images


def everything(ds) -> torch.Tensor:
    return torch.cat([ds.train.images, ds.val.images, ds.test.images])


def same_splits(a, b) -> bool:
    return all(torch.equal(x.images, y.images) for x, y in
               ((a.train, b.train), (a.val, b.val), (a.test, b.test)))


def refused(path: Path, one_sentence, cli_error, *words: str) -> str:
    """`path` is refused by the library and by `vaekit data info` (exit 2), in one sentence
    naming it, with no numpy warning on the way."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would become an exception here
        with pytest.raises(DataError) as info:
            load_dataset(str(path))
        status = main(["data", "info", str(path)])
    message = str(info.value)
    one_sentence(message, path, *words)
    cli_error(status, path)
    assert "pickle" not in message.replace(str(path), "").lower()
    return message


# ----------------------------------------------------------------------------- empty images


@pytest.mark.parametrize("shape", [(20, 0, 8, 8), (20, 1, 0, 8), (20, 3, 8, 0), (20, 0, 8),
                                   (20, 8, 0), (20, 8, 8, 0)])
def test_images_without_pixels_are_refused(tmp_path, one_sentence, cli_error, shape):
    path = save(tmp_path / "empty.npy", np.zeros(shape, np.uint8))
    message = refused(path, one_sentence, cli_error, str(shape))
    assert "no pixels" in message


@pytest.mark.parametrize("shape", [(0, 8, 8), (0, 1, 8, 8), (0, 0, 0)])
def test_no_images_at_all_is_refused(tmp_path, one_sentence, cli_error, shape):
    path = save(tmp_path / "none.npy", np.zeros(shape, np.float32))
    refused(path, one_sentence, cli_error)


@pytest.mark.parametrize("n, said", [(1, "1 image;"), (9, "9 images;")])
def test_fewer_than_ten_images_are_counted_in_words(tmp_path, one_sentence, cli_error, n, said):
    path = save(tmp_path / "few.npy", np.zeros((n, 8, 8), np.uint8))
    assert said in refused(path, one_sentence, cli_error, "at least 10")


# ----------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("hwc", [(5, 7, 3), (5, 7, 1), (6, 6, 3), (28, 28, 3), (9, 8, 1),
                                 (4, 4, 3), (3, 3, 1)])
def test_channel_last_is_converted_to_channels_first(tmp_path, hwc):
    """(N, H, W, C) loads exactly as the same images saved (N, C, H, W) by numpy."""
    h, w, c = hwc
    last = distinct((30, h, w, c))
    first = np.ascontiguousarray(last.transpose(0, 3, 1, 2))  # (N, C, H, W)
    ds_last = load_array_dataset(save(tmp_path / "last.npy", last))
    ds_first = load_array_dataset(save(tmp_path / "first.npy", first))
    assert ds_last.image_shape == ds_first.image_shape == (c, h, w)
    assert same_splits(ds_last, ds_first)
    # and against numpy directly: image i (whose pixel (0, 0) of channel 0 is i) is first[i]
    for img in everything(ds_last):
        assert np.array_equal(img.numpy(), first[int(img[0, 0, 0])])
    assert sorted(r.numpy().tobytes() for r in everything(ds_last)) == sorted(
        r.tobytes() for r in first)


@pytest.mark.parametrize("chw", [(3, 8, 8), (1, 28, 28), (3, 5, 7), (1, 6, 6), (3, 4, 4),
                                 (1, 1, 1), (3, 2, 2)])
def test_channels_first_is_kept(tmp_path, chw):
    images = distinct((20, *chw))
    ds = load_array_dataset(save(tmp_path / "first.npy", images))
    assert ds.image_shape == chw
    assert sorted(r.numpy().tobytes() for r in everything(ds)) == sorted(
        r.tobytes() for r in images)


@pytest.mark.parametrize("shape", [(20, 3, 4, 1), (20, 3, 3, 3), (20, 1, 5, 2), (20, 4, 2, 3),
                                   (20, 2, 2, 2)])
def test_a_shape_that_could_be_either_layout_is_refused(tmp_path, one_sentence, cli_error, shape):
    path = save(tmp_path / "which.npy", np.zeros(shape, np.uint8))
    message = refused(path, one_sentence, cli_error, str(shape), "(N, C, H, W)", "(N, H, W, C)",
                      "(N, H, W)")
    assert "ambiguous" in message


@pytest.mark.parametrize("shape", [(20, 8, 8, 8), (20, 5, 6, 7), (20, 28, 28, 16)])
def test_a_shape_with_no_channel_dimension_is_refused(tmp_path, one_sentence, cli_error, shape):
    path = save(tmp_path / "volume.npy", np.zeros(shape, np.uint8))
    refused(path, one_sentence, cli_error, str(shape), "(N, C, H, W)", "(N, H, W, C)")


@pytest.mark.parametrize("shape, keep", [((20, 8, 8, 2), (..., slice(0, 1))),
                                         ((20, 8, 8, 4), (..., slice(0, 3))),
                                         ((20, 2, 8, 8), (slice(None), slice(0, 1))),
                                         ((20, 4, 5, 7), (slice(None), slice(0, 3))),
                                         ((20, 9, 8, 2), (..., slice(0, 1)))])
def test_two_or_four_channels_are_refused_and_the_named_cut_loads(tmp_path, one_sentence, cli_error,
                                                                   shape, keep):
    """Grey + alpha and RGBA are no images of vaekit's (a model of them trained, then crashed in
    matplotlib); the sentence names the file, its shape and 1 or 3 channels, and the cut it
    suggests (as numpy slices it) loads as the grey or RGB images numpy's own slice holds."""
    images = distinct(shape)
    path = save(tmp_path / "planes.npy", images)
    c = shape[-1] if shape[-1] in (2, 4) else shape[1]
    message = refused(path, one_sentence, cli_error, str(shape), f"{c} channels", "grey (1 channel)",
                      "RGB (3 channels)", "RGBA" if c == 4 else "grey with alpha")
    cut = "images[..., " if keep[0] is ... else "images[:, "
    assert f"{cut}:{keep[1].stop}]" in message
    kept = images[keep]
    ds = load_array_dataset(save(tmp_path / "kept.npy", kept))
    first = kept.transpose(0, 3, 1, 2) if keep[0] is ... else kept
    assert ds.image_shape == first.shape[1:]
    assert sorted(r.numpy().tobytes() for r in everything(ds)) == sorted(r.tobytes() for r in first)


def test_check_images_states_the_layout_it_returns():
    """Channel-last in, channels-first out, contiguous, without touching the input."""
    last = distinct((12, 5, 6, 3))
    before = last.copy()
    out = check_images(Path("x.npy"), last)
    assert out.shape == (12, 3, 5, 6) and out.flags["C_CONTIGUOUS"]
    assert np.array_equal(out[:, 2, 4, 5], last[:, 4, 5, 2])
    assert np.array_equal(last, before)


# ----------------------------------------------------------------------------- not finite


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("fill", ["all-nan", "one-nan", "inf", "-inf", "nan-and-inf"])
def test_non_finite_floats_get_one_sentence_and_no_warning(tmp_path, one_sentence, cli_error,
                                                           capsys, dtype, fill):
    images = np.full((20, 4, 4), 0.5, dtype)
    if fill == "all-nan":
        images[:] = np.nan
    elif fill == "one-nan":
        images[3, 1, 2] = np.nan
    elif fill == "inf":
        images[0, 0, 0] = np.inf
    elif fill == "-inf":
        images[-1, -1, -1] = -np.inf
    else:
        images[0] = np.nan
        images[1, 0] = np.inf
    path = save(tmp_path / f"{fill}.npy", images)
    n_nan = int(np.isnan(images).sum())
    n_inf = int(np.isinf(images).sum())
    message = refused(path, one_sentence, cli_error, f"{n_nan} NaN", f"{n_inf} infinite")
    assert "finite" in message
    assert "Warning" not in capsys.readouterr().err


def test_all_nan_warns_in_plain_numpy():
    """The warning the old check let escape is real: numpy's nanmin warns on an all-NaN array."""
    with pytest.warns(RuntimeWarning):
        np.nanmin(np.full((3, 3), np.nan))


# ----------------------------------------------------------------------------- not an array


TEXT_FILES = {
    "text": b"hello, this is not an array\n",
    "csv": b"label,pixel0,pixel1\n3,0,255\n",
    "pgm": b"P5\n28 28\n255\n" + bytes(784),
    "empty": b"",
    "pickle": b"\x80\x04\x95" + bytes(20),
}


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
@pytest.mark.parametrize("case", list(TEXT_FILES))
def test_a_file_that_is_not_an_array_says_so_and_never_suggests_pickle(
    tmp_path, one_sentence, cli_error, case, suffix
):
    path = tmp_path / f"{case}{suffix}"
    path.write_bytes(TEXT_FILES[case])
    message = refused(path, one_sentence, cli_error)
    assert "not a readable .npy/.npz array" in message
    # numpy itself points at allow_pickle for the same file
    if case != "empty" and suffix == ".npy":
        with pytest.raises(ValueError, match="allow_pickle"):
            np.load(path, allow_pickle=False)


def test_an_object_array_is_refused_without_suggesting_pickle(tmp_path, one_sentence, cli_error):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    message = refused(path, one_sentence, cli_error)
    assert "objects" in message


def test_an_npz_member_that_is_not_npy_data_is_refused(tmp_path, one_sentence, cli_error):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", b"not npy data at all")
    message = refused(path, one_sentence, cli_error, "'images'")
    assert ".npy" in message


def test_an_npz_with_a_good_npy_member_still_loads(tmp_path):
    images = distinct((20, 4, 4))
    buf = io.BytesIO()
    np.save(buf, images)
    path = tmp_path / "handmade.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue())
    ds = load_array_dataset(path)
    assert sorted(r[0].numpy().tobytes() for r in everything(ds)) == sorted(
        r.tobytes() for r in images)


# ----------------------------------------------------------------------------- dtypes


INTEGER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.uint64,
                  ">u2", ">i4"]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=str)
def test_integers_in_0_255_are_converted(tmp_path, dtype):
    levels = distinct((20, 4, 4)).astype(np.int64)
    if np.dtype(dtype) == np.int8:
        levels %= 128  # int8 holds 0..127 of the range
    levels[0, 0, :2] = (0, 255 if np.dtype(dtype) != np.int8 else 127)
    ds = load_array_dataset(save(tmp_path / "ints.npy", levels.astype(dtype)))
    uint8 = load_array_dataset(save(tmp_path / "uint8.npy", levels.astype(np.uint8)))
    assert same_splits(ds, uint8)
    assert everything(ds).dtype == torch.uint8


@pytest.mark.parametrize("dtype,value", [(np.int8, -1), (np.int16, 256), (np.int32, -7),
                                         (np.int64, 2**40), (np.uint16, 256),
                                         (np.uint64, 2**63)], ids=str)
def test_integers_outside_0_255_are_refused(tmp_path, one_sentence, cli_error, dtype, value):
    images = np.zeros((20, 4, 4), dtype)
    images[5, 2, 1] = value
    path = save(tmp_path / "wide.npy", images)
    lo, hi = min(0, value), max(0, value)
    refused(path, one_sentence, cli_error, "0..255", f"[{lo}, {hi}]", str(np.dtype(dtype)))


def test_bool_images_are_0_and_255(tmp_path):
    images = np.random.default_rng(3).random((20, 5, 5)) < 0.5
    ds = load_array_dataset(save(tmp_path / "binary.npy", images))
    expected = load_array_dataset(save(tmp_path / "as-uint8.npy",
                                       np.where(images, 255, 0).astype(np.uint8)))
    assert same_splits(ds, expected)
    assert set(everything(ds).unique().tolist()) == {0, 255}


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int8, ">u2"], ids=str)
def test_integer_images_of_0_and_1_are_binary_like_bool(tmp_path, capsys, dtype):
    """0/1 integer images (binarized data as it is often saved) read as the bool array of the same
    pattern, not as 8-bit pixels of 0 and 1/255 (all but black), and said in the data's notes."""
    images = np.random.default_rng(4).random((20, 5, 5)) < 0.5
    ds = load_array_dataset(save(tmp_path / "ones.npy", images.astype(dtype)))
    as_bool = load_array_dataset(save(tmp_path / "bool.npy", images))
    assert same_splits(ds, as_bool)
    assert set(everything(ds).unique().tolist()) == {0, 255}
    assert "binary" in ds.notes and "binary" not in as_bool.notes
    assert main(["data", "info", str(tmp_path / "ones.npy")]) == 0
    assert "read as binary images" in capsys.readouterr().out
    twos = images.astype(dtype)
    twos[0, 0, 0] = 2  # one pixel of 2: 8-bit pixels as they are, no note
    plain = load_array_dataset(save(tmp_path / "twos.npy", twos))
    assert int(everything(plain).max()) == 2 and "binary" not in plain.notes


@pytest.mark.parametrize("dtype", [np.float16, ">f4", ">f8"], ids=str)
def test_other_float_widths_round_like_float64(tmp_path, dtype):
    levels = distinct((20, 3, 3))
    values = (levels / 255.0).astype(dtype)
    ds = load_array_dataset(save(tmp_path / "f.npy", values))
    expected = np.rint(values.astype(np.float64) * 255.0).astype(np.uint8)
    assert np.array_equal(np.sort([r.tobytes() for r in everything(ds)[:, 0].numpy()]),
                          np.sort([r.tobytes() for r in expected]))


@pytest.mark.parametrize("dtype", [np.complex64, "U3", "S2", "datetime64[s]",
                                   [("a", "u1"), ("b", "u1")]], ids=str)
@pytest.mark.parametrize("shape", [(20, 4, 4), (20,), (20, 4, 4, 4, 4)])
def test_other_dtypes_are_refused(tmp_path, one_sentence, cli_error, dtype, shape):
    """Whatever its shape, an array of no pixel values is refused for its dtype (not a shape that
    would be refused next)."""
    path = save(tmp_path / "odd.npy", np.zeros(shape, dtype))
    message = refused(path, one_sentence, cli_error)
    assert "dtype" in message and "dimensions" not in message, message


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("side", ["above 1", "below 0"])
def test_floats_just_outside_the_unit_interval_show_it(tmp_path, one_sentence, cli_error, dtype, side):
    """A float array one step outside [0, 1] (the next float above 1, numpy's nextafter; the
    negative normal float nearest 0) is refused with its range written with the digits that tell
    each end from its neighbours: read back in its dtype, each bound is the array's min and max,
    so the sentence shows the value outside."""
    one, zero = dtype(1), dtype(0)
    out = np.nextafter(one, dtype(2)) if side == "above 1" else -np.finfo(dtype).smallest_normal
    images = np.full((20, 4, 4), out, dtype)
    images[0, 0, 0] = dtype(0.5)
    message = refused(save(tmp_path / "f.npy", images), one_sentence, cli_error, "[0, 1]")
    low, high = message.removesuffix("].").rsplit("[", 1)[1].split(", ")
    assert (dtype(low), dtype(high)) == (images.min(), images.max())
    assert dtype(high) > one if side == "above 1" else dtype(low) < zero


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.int8])
@pytest.mark.parametrize("values", [(0, 2), (1, 3, 4), (0, 99), (0, 1, 2), (5,)])
def test_class_k_is_named_by_its_own_label_where_labels_skip_numbers(tmp_path: Path, values: tuple[int, ...],
                                                                      dtype: type) -> None:
    """An array file's class k is named "k" (its label) whatever numbers no image has: the name a
    class's row, legend or column shows is its own, never a neighbour's; a gap is noted. Labels of
    any integer dtype, signed or not, read alike."""
    labels = np.array(values * 10, dtype=dtype)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (len(labels), 6, 6), dtype=np.uint8),
             labels=labels)
    ds = load_array_dataset(tmp_path / "d.npz")
    assert ds.classes is not None and len(ds.classes) == max(values) + 1
    assert all(ds.classes[int(k)] == str(int(k)) for k in np.unique(labels))
    gaps = max(values) + 1 - len(values)
    assert ("labels" in ds.notes) == (gaps > 0)
    if gaps:
        assert f"{gaps:,} number" in ds.notes["labels"], ds.notes
        assert f"{len(values)} class{'es occur' if len(values) > 1 else ' occurs'}," in ds.notes["labels"]
