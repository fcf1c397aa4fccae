"""A classifier's images and labels: the dataset's uint8 pixels resized once (Ex.1 Q1's large
images), scaled to [0, 1], and augmented per batch during training.

    labelled(ds, what)             the dataset's splits, refused in one sentence without labels
    class_notes(ds, what)          what the splits' classes leave untested or untrained, refused
                                   when no test image's class has a training image
    resize(images, side, mode)     uint8 (N, C, H, W) -> (N, C, side, side), nearest or bilinear
    to_unit(images)                uint8 -> float32 in [0, 1]: what the network is given
    network_input(images, side, mode)  resize, then to_unit: a classifier's x outside training
    augment(x, crop, flip, g)      random crop after zero padding, random horizontal flip
    Labelled(images, labels, ...)  the training loop's batches (`vaekit.train.loop.Batches`)

Every random draw (crop offsets, flips) comes from the loop's generator: the same seed gives the
same epochs, and a resumed run redraws exactly what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vaekit.config import spell
from vaekit.data.load import Dataset, Split
from vaekit.errors import DataError
from vaekit.train.loop import DeviceImages

RESIZE_CHUNK = 2048  # images resized at once: bounds the float copy of a 112x112 Fashion-MNIST


def labelled(ds: Dataset, what: str) -> tuple[Split, Split, Split]:
    """(train, val, test) of `ds`, each with labels; DataError naming `what` (the --data input)
    when the dataset has none, and why when its note 'labels' says (a folder read unlabelled)."""
    for split in (ds.train, ds.val, ds.test):
        if split.labels is None:
            why = f"; this folder was {ds.notes['labels']}" if ds.notes.get("labels") else ""
            raise DataError(f"{what}: the dataset has no labels, but a classifier needs one per image "
                            "(a .npz with 'labels' or 'y', a folder of class folders class/xxx.png, or a "
                            f"labelled dataset such as fashion-mnist){why}.")
    return ds.train, ds.val, ds.test


def num_classes(ds: Dataset, what: str) -> int:
    """Classes: the dataset's class names, else 1 + the largest label. A DataError naming `what`
    when the labels hold fewer than 2 classes (every image of one), that class named as the dataset
    names it (a class folder's name), else by its label."""
    train, val, test = labelled(ds, what)
    present = torch.unique(torch.cat([s.labels for s in (train, val, test)]))  # type: ignore[misc]
    if len(present) < 2:
        held = "no class," if not len(present) else f"one class, {_class_name(ds, int(present[0]))},"
        raise DataError(f"{what}: the data holds {held} but a classifier needs at least 2 (a folder of 2 "
                        "class folders or more, or labels of 2 values or more).")
    return max(len(ds.classes or ()), int(present.max()) + 1)


def _class_name(ds: Dataset, label: int) -> str:
    """The class of `label` as a sentence names it: its name where the dataset has one ("shirt", a
    class folder's), else 'label 3' (an array file's class names are its label values)."""
    names = ds.classes or ()
    return spell(names[label]) if label < len(names) and names[label] != str(label) else f"label {label}"


def _untrained(split: Split, trained: Tensor) -> tuple[int, int, int, int]:
    """(classes of `split` absent from `trained`, its classes, its images of those classes, its
    images)."""
    labels = split.labels
    assert labels is not None  # `labelled` checked
    missing = ~torch.isin(labels, trained)
    return (int(labels[missing].unique().numel()), int(labels.unique().numel()), int(missing.sum()),
            len(labels))


def class_notes(ds: Dataset, what: str) -> list[str]:
    """Notes on the classes the splits do not share: a class of the test or validation split with
    no training image can only be guessed (accuracy at chance at best), and a class with training
    images but no test image is not measured by the test accuracy (too few images to fall in
    every split). A DataError naming `what` (the --data input) when no test image's class has a
    training image: the test accuracy could only be at chance."""
    train, val, test = labelled(ds, what)
    trained = train.labels.unique()  # type: ignore[union-attr]
    classes, n_classes, images, n_images = _untrained(test, trained)
    if n_images and images == n_images:
        raise DataError(f"--data {what}: none of its {n_images:,} test images is of a class that has a "
                        "training image, so a classifier could only guess them; expected several images "
                        "per class (10 or more, so that each class has images in the training, "
                        "validation and test splits).")
    parts = []
    for name, split in (("test", test), ("validation", val)):
        classes, n_classes, images, n_images = _untrained(split, trained)
        if classes:
            parts.append(f"{classes:,} of the {name} split's {n_classes:,} classes ({images:,} of its "
                         f"{n_images:,} images)")
    notes = []
    if parts:
        notes.append(f"--data {what}: {' and '.join(parts)} have no image in the training split, so "
                     "accuracy on them is at chance at best; several images per class avoid it.")
    untested = int((~torch.isin(trained, test.labels)).sum())  # type: ignore[arg-type]
    if untested:
        notes.append(f"--data {what}: {untested:,} of the {len(trained):,} classes of the training split "
                     "have no test image (too few images to fall in every split), so the test "
                     "accuracy says nothing of them.")
    return notes


def resize(images: Tensor, side: int, mode: str = "nearest") -> Tensor:
    """uint8 images (N, C, H, W) resized to (N, C, side, side) by `F.interpolate` (mode 'nearest'
    repeats pixels, 'bilinear' interpolates with align_corners=False), rounded back to uint8;
    side 0 or the images' own size returns them unchanged."""
    if side == 0 or tuple(images.shape[2:]) == (side, side):
        return images
    out = torch.empty((images.shape[0], images.shape[1], side, side), dtype=torch.uint8)
    for start in range(0, images.shape[0], RESIZE_CHUNK):
        x = images[start : start + RESIZE_CHUNK].to(torch.float32)
        y = F.interpolate(x, size=(side, side), mode=mode,
                          **({"align_corners": False} if mode == "bilinear" else {}))
        out[start : start + RESIZE_CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def to_unit(images: Tensor) -> Tensor:
    """uint8 pixels -> float32 x = pixel / 255 in [0, 1]."""
    return images.to(torch.float32).div_(255.0)


def network_input(images: Tensor, side: int, mode: str = "nearest") -> Tensor:
    """What a classifier is given for uint8 images (N, C, H, W): `resize`d to side x side, then
    `to_unit`: float32 (N, C, side, side) = pixel / 255. The validation and test images of a run,
    the accuracies of a compare and `Run.images` all go through it (training batches are resized
    once and scaled per batch, before augmentation: `Labelled`)."""
    return to_unit(resize(images, side, mode))


def augment(x: Tensor, crop: int, flip: bool, generator: torch.Generator) -> Tensor:
    """A random crop of x (B, C, H, W) after zero padding by `crop` pixels on each side (offsets
    uniform in 0..2*crop per image, per axis), then a horizontal flip of each image with
    probability 1/2; crop 0 and flip False return x."""
    b, _, h, w = x.shape
    if crop:
        padded = F.pad(x, (crop, crop, crop, crop))
        dy = torch.randint(0, 2 * crop + 1, (b,), generator=generator, device=x.device)
        dx = torch.randint(0, 2 * crop + 1, (b,), generator=generator, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    if flip:
        flipped = torch.rand(b, generator=generator, device=x.device) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    return x


@dataclass
class Labelled(DeviceImages):
    """A classifier's training batches: x = to_unit(pixels), augmented, and the labels."""

    labels: Tensor  # int64 (N,) on the device
    crop: int = 0
    flip: bool = False

    def __call__(self, index: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        x = augment(to_unit(self.images.index_select(0, index)), self.crop, self.flip, generator)
        return x, self.labels.index_select(0, index)
