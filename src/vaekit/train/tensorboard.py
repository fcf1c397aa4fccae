"""`vaekit train --tensorboard` (the optional extra, pip install 'vaekit[tensorboard]'): each epoch's
metrics row as scalars and two image grids, through `torch.utils.tensorboard`, in
RUN_DIR/tensorboard/ beside metrics.jsonl; watch them with `tensorboard --logdir runs/NAME` (or
`--logdir runs` for all the runs).

Scalars, at global step = epoch, one per finite number of the metrics.jsonl row (`epoch` is the
step itself; booleans, NaN and infinities are left out), the tag from the key:

    train_X -> train/X    train/neg_elbo, train/recon, train/kl, ... (the engine's sums)
    val_X   -> val/X      val/neg_elbo, val/recon, val/kl
    other   -> the key    lr, beta, step, epoch_seconds

TensorBoard keeps them as float32: each equals the row's value rounded to float32.

Images, the means of p(x|z) (`vaekit.vae.draw`, clipped to [0, 1]) tiled by `grid`:

    images/reconstructions   the first 16 validation images in rows of 8, each row of originals
                             above the row of their reconstructions E[x | z = mu(x)]
    images/samples           64 draws from the model's prior in rows of 8, from a generator seeded
                             with SAMPLE_SEED: the same draws every epoch, so the grid shows learning

A resumed run appends a new event file to the same directory, opened at the first epoch it trains
(SummaryWriter's purge_step): TensorBoard hides what an earlier session wrote at that epoch or
later, as metrics.jsonl drops the rows past the checkpoint, so redone epochs replace theirs. Nothing
is written before the first epoch of a session ends (a resumed run that fails early leaves the
directory as it was).

A kind of run that can write a board is `Boarded` (the VAE's, when its config asks for it); a run
writes it through `RunBoard`, which is nothing for any other.
"""

from __future__ import annotations

import copy
import math
import numbers
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.errors import ConfigError, RunWriteError
from vaekit.vae import draw

DIR = "tensorboard"  # RUN_DIR/tensorboard/
INSTALL = "pip install 'vaekit[tensorboard]'"
MISSING = ("--tensorboard needs the tensorboard package, which is not installed; install it with "
           f"{INSTALL}.")
RECON_IMAGES = 16  # validation images whose reconstructions are shown
SAMPLES = 64  # prior samples shown
ROW = 8  # images per row of both grids
SAMPLE_SEED = 0  # the samples' generator: the same z every epoch
PAD, PAD_VALUE = 1, 0.5  # grey lines between the images of a grid


def require() -> type:
    """`torch.utils.tensorboard.SummaryWriter`; ConfigError (one sentence naming the install
    command) when it cannot be imported: tensorboard not installed, or an install that fails."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # ImportError, or a broken install (protobuf, ...) failing on import
        raise ConfigError(MISSING) from None
    return SummaryWriter


def tag(key: str) -> str:
    """The scalar tag of a metrics.jsonl key: train_X -> train/X, val_X -> val/X, else the key."""
    for prefix in ("train_", "val_"):
        if key.startswith(prefix) and len(key) > len(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return key


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """Tag -> value of every finite number in a metrics row except `epoch` (the step)."""
    return {tag(k): float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(v)}


def grid(images: Tensor, nrow: int, pad: int = PAD, value: float = PAD_VALUE) -> Tensor:
    """Images (N, C, H, W) in [0, 1] tiled left to right, top to bottom, `nrow` to a row (N if
    fewer), with `pad` pixels of `value` between and around them: (C, R (H + pad) + pad,
    nrow (W + pad) + pad) for R = ceil(N / nrow) rows; cells past the N-th are all `value`."""
    if images.dim() != 4 or images.shape[0] == 0 or nrow < 1 or pad < 0:
        raise ValueError(f"grid needs images (N >= 1, C, H, W), nrow >= 1 and pad >= 0, got shape "
                         f"{tuple(images.shape)}, nrow {nrow}, pad {pad}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cells = images.new_full((rows * cols, c, h + pad, w + pad), value)
    cells[:n, :, pad:, pad:] = images  # each cell: pad lines above and to the left of its image
    tiled = (cells.reshape(rows, cols, c, h + pad, w + pad).permute(2, 0, 3, 1, 4)
             .reshape(c, rows * (h + pad), cols * (w + pad)))
    return F.pad(tiled, (0, pad, 0, pad), value=value)  # and the lines below and right of the last


def reconstruction_grid(x: Tensor, recon: Tensor, nrow: int = ROW) -> Tensor:
    """Rows of `nrow` originals, each above the row of their reconstructions: (C, H', W')."""
    rows = [t for i in range(0, x.shape[0], nrow) for t in (x[i : i + nrow], recon[i : i + nrow])]
    return grid(torch.cat(rows), nrow)


class Board:
    """The event log of one session of a run, in RUN_DIR/tensorboard/: `epoch` after each metrics
    row, `close` at the end. The SummaryWriter is opened by the first `epoch`, with purge_step at
    that epoch; the tensorboard package is checked when the board is made (`require`)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir) / DIR
        self._summary_writer = require()
        self._writer: Any = None

    def epoch(self, epoch: int, row: dict[str, Any], model: nn.Module, images: Tensor) -> None:
        """Write epoch `epoch`: the scalars of its metrics `row`, the reconstructions of the first
        RECON_IMAGES of the validation `images` (N, C, H, W) and SAMPLES prior samples of `model`,
        then flush, so that a kill loses nothing written. The model's train/eval mode, the global
        RNG and the run's generator are left as they were: a run trains the same with or without a
        board."""
        try:
            if self._writer is None:
                self._writer = self._summary_writer(log_dir=str(self.dir), purge_step=epoch)
            for name, value in scalars(row).items():
                self._writer.add_scalar(name, value, global_step=epoch)
            recon, samples = self._images(model, images)
            self._writer.add_image("images/reconstructions", recon, global_step=epoch, dataformats="CHW")
            self._writer.add_image("images/samples", samples, global_step=epoch, dataformats="CHW")
            self._writer.flush()
        except OSError as err:
            raise RunWriteError(f"{self.dir}: cannot write the TensorBoard events "
                                f"({(err.strerror or str(err)).rstrip('.')}).") from None

    @staticmethod
    def _images(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
        """The two grids, on the CPU: (reconstructions, samples)."""
        training = model.training
        model.eval()
        try:
            param = next(iter(model.parameters()), None)
            on_cpu = model
            if param is not None and param.device.type != "cpu":
                on_cpu = copy.deepcopy(model).cpu()  # drawn on the CPU: the same draws on any device
            dtype = param.dtype if param is not None else torch.float32
            n = min(RECON_IMAGES, images.shape[0])
            cols = min(ROW, n)
            x = images[: n - n % cols].detach().cpu().to(dtype)  # whole rows of originals
            recon = draw.reconstruct(on_cpu, x).clamp(0.0, 1.0)  # type: ignore[arg-type]
            samples = draw.sample_prior(on_cpu, SAMPLES, SAMPLE_SEED)  # type: ignore[arg-type]
        finally:
            model.train(training)
        return (reconstruction_grid(x.float().clamp(0.0, 1.0), recon.float(), cols),
                grid(samples.float().clamp(0.0, 1.0), ROW))

    def close(self) -> None:
        """Flush and close the event file (if one was opened). Every epoch was flushed by `epoch`,
        so an error here loses nothing and is not raised over the run's own outcome."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass


@runtime_checkable
class Boarded(Protocol):
    """A kind of run that can also write TensorBoard: the VAE's (`vaekit.train.fit.VAETask`), when
    its config asks for it (`--tensorboard`); a classifier run has none."""

    def board(self, out: Path) -> Board | None: ...  # None: this run writes no board

    def board_images(self) -> Tensor: ...  # the validation images it reconstructs (after prepare)


class RunBoard:
    """The board of one session of a run into `out`, if its task writes one (`Boarded`) and this
    process is the `writer`: `epoch` after each metrics row (before the checkpoint), `close` at the
    end and on any error."""

    def __init__(self, task: object, out: Path, writer: bool) -> None:
        self._task = task if isinstance(task, Boarded) else None
        self._board = self._task.board(out) if writer and self._task is not None else None

    def epoch(self, epoch: int, row: dict[str, Any], model: nn.Module) -> None:
        if self._board is not None and self._task is not None:
            self._board.epoch(epoch, row, model, self._task.board_images())

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
