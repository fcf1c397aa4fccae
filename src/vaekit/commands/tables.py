"""Flag tables that several commands share: a dataset's image options (`vaekit train`, `data`,
`classify`) and how a VAE run computes and keeps its state (`vaekit train`)."""

from __future__ import annotations

from vaekit import config as cfg
from vaekit.commands.flags import Kind
from vaekit.config import LoopConfig


def image_flags(section: str = "data") -> dict[str, tuple[str, str, Kind, str]]:
    """The flag rows of user images (`vaekit.data.folder`), the same for every command that loads data."""
    return {
        "--image-size": (section, "image_size", "size", "resize every image to S x S or HxW pixels, "
                         "aspect kept by --image-fit (default: the data's own size; a folder of mixed "
                         "sizes needs it)"),
        "--image-fit": (section, "image_fit", str, "how --image-size keeps the aspect: crop (scale the "
                        "shorter side, centre crop) | pad (scale the longer side, pad with black) "
                        "(default: crop)"),
        "--image-channels": (section, "image_channels", int, "0 = the data's own (grey stays grey, colour "
                             "stays colour), 1 = grey, 3 = RGB (default: 0)"),
        "--skip-bad": (section, "skip_bad", "switch", "skip files of an image folder that cannot be read, "
                       "and say how many (default: refuse them)"),
    }


def device_flags() -> dict[str, tuple[str, str, Kind, str]]:
    """How a VAE run computes and keeps its state: the rows of `vaekit train`'s flag table for the
    device, the engine, the precision, the CPU threads, checkpoints and the captured CUDA step."""
    D = LoopConfig()  # noqa: N806 - the defaults, quoted in the help
    return {
        "--device": ("train", "device", str, f"{'|'.join(cfg.DEVICES)} (default: {D.device})"),
        "--engine": ("train", "engine", str, "gradients: auto = the hand-derived backward of the MLP "
                     "VAE where it applies (1.2-1.3x faster per epoch), else autograd; autograd = always "
                     f"autograd (default: {D.engine})"),
        "--precision": ("train", "precision", str, "float32 | bf16 (bfloat16 products in the hand-derived "
                        f"engine, else torch.autocast; float32 weights and sums) (default: {D.precision})"),
        "--threads": ("train", "threads", int, "CPU threads; 0 = the cores other processes leave idle, "
                      f"chosen at the start (default: {D.threads})"),
        "--checkpoint-every": ("train", "checkpoint_every", str, "epoch, or at most one checkpoint per "
                               "this much wall time (30s, 5m), or auto: writing under 5%% of the run "
                               f"(default: {D.checkpoint_every})"),
        "--no-cuda-graph": ("train", "cuda_graph", "off", "on CUDA, launch each step op by op instead of "
                            "replaying it as one captured CUDA graph (default: captured)"),
    }
