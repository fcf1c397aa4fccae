"""vaekit.classify.data: augmentation against a per-image loop of padding and slicing, resizing
against repeat_interleave and PIL-free closed forms, labels required."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaekit.classify.data import Labelled, augment, labelled, num_classes, resize, to_unit
from vaekit.data.load import Dataset, Split
from vaekit.errors import DataError


def test_no_augmentation_is_the_identity() -> None:
    x = torch.rand(5, 1, 6, 7)
    assert torch.equal(augment(x, 0, False, torch.Generator().manual_seed(0)), x)


def test_crop_and_flip_equal_a_per_image_loop() -> None:
    x = torch.rand(9, 3, 6, 7)
    crop = 2
    out = augment(x, crop, True, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order
    dy = torch.randint(0, 2 * crop + 1, (9,), generator=g)
    dx = torch.randint(0, 2 * crop + 1, (9,), generator=g)
    flip = torch.rand(9, generator=g) < 0.5
    for i in range(9):
        padded = F.pad(x[i], (crop,) * 4)
        expected = padded[:, dy[i] : dy[i] + 6, dx[i] : dx[i] + 7]
        if flip[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)
    assert 0 < int(flip.sum()) < 9  # both branches were exercised


def test_augmentation_is_seeded() -> None:
    x = torch.rand(16, 1, 8, 8)
    a, b = (augment(x, 3, True, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(x, 3, True, torch.Generator().manual_seed(8)))


def test_nearest_resize_repeats_pixels() -> None:
    images = torch.randint(0, 256, (4, 1, 7, 7), dtype=torch.uint8)
    big = resize(images, 28, "nearest")
    assert torch.equal(big, images.repeat_interleave(4, 2).repeat_interleave(4, 3))
    assert resize(images, 0) is images and resize(images, 7) is images


def test_bilinear_resize_of_a_constant_and_of_a_ramp() -> None:
    constant = torch.full((2, 1, 5, 5), 77, dtype=torch.uint8)
    assert torch.equal(resize(constant, 13, "bilinear"), torch.full((2, 1, 13, 13), 77, dtype=torch.uint8))
    ramp = (torch.arange(8) * 30).to(torch.uint8).expand(1, 1, 8, 8).contiguous()  # 0, 30, ..., 210
    out = resize(ramp, 16, "bilinear")[0, 0, 0].to(torch.float64)
    # align_corners=False: output j samples input position (j + 0.5) / 2 - 0.5, clamped at the edges
    pos = ((torch.arange(16, dtype=torch.float64) + 0.5) / 2 - 0.5).clamp(0, 7)
    torch.testing.assert_close(out, (pos * 30).round(), rtol=0, atol=1)


def test_batches_are_unit_pixels_and_labels() -> None:
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    labels = torch.arange(10)
    batches = Labelled(images, labels)
    index = torch.tensor([3, 1, 4])
    x, y = batches(index, torch.Generator())
    assert torch.equal(x, images[index].float() / 255) and torch.equal(y, labels[index])  # type: ignore[arg-type]
    assert len(batches) == 10 and torch.equal(to_unit(images), images.float() / 255)


def test_a_dataset_without_labels_is_one_sentence(one_sentence) -> None:  # type: ignore[no-untyped-def]
    split = Split(torch.zeros(3, 1, 2, 2, dtype=torch.uint8))
    ds = Dataset("pics.npy", split, split, split)
    with pytest.raises(DataError) as err:
        labelled(ds, "pics.npy")
    one_sentence(str(err.value), "pics.npy", "labels")


def test_classes_from_the_labels() -> None:
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    ds = Dataset("x", Split(images, torch.tensor([0, 1, 4, 1])), Split(images[:1], torch.tensor([2])),
                 Split(images[:1], torch.tensor([0])))
    assert num_classes(ds, "x") == 5
    zero = Split(images, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(DataError):
        num_classes(Dataset("x", zero, zero, zero), "x")
