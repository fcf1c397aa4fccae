"""Test NLL for the same wall-time budget: vaekit against its peers, all scored by vaekit's evaluator.

Each contender trains for the same wall-time budget on this machine (`--budget`, default
60 minutes), one after the other, then each is evaluated by the same call,
`vaekit.evaluate.run.evaluate_model(model, x, k, batch_size=100, seed=0)`:

  best      vaekit, `configs/fashion-mnist-best.toml`, `vaekit.train.fit.fit` with
            `train.time_budget` = the budget (`vaekit.train.budget`: the epochs, cosine decay and
            warm-up planned to end inside it, validation and checkpoints counted in the budget);
            its best model (`model.safetensors`) is evaluated.
  sheet     vaekit, the sheet's model `configs/sheet.toml` (784-400-20-400-784), the same way.
  examples  pytorch/examples' `vae/main.py` VAE (`ExampleVAE` of bench/train_speed.py), trained as
            that example trains: a DataLoader (shuffle, batch 128) over PIL images converted as
            `ToTensor` does, the pixel intensities in [0, 1] as BCE targets (not binarized), Adam
            lr 1e-3, loss BCE(sum) + KLD, for as many whole epochs as fit in the budget (the next
            epoch is not started when it would end past the budget, at the mean epoch time; only
            training wall time counts), on vaekit's 55,000 training images. Its last weights are
            evaluated through `ExampleAdapter` (encode: fc1, fc21, fc22; decode: fc3, ReLU, fc4, the
            logits before the example's sigmoid).
  pythae    Pythae 0.1.2's `VAE` (its default MLP 784-512-20, `reconstruction_loss="bce"`) through
            `TrainingPipeline` on the same images scaled to [0, 1], stopped between epochs at the
            budget, evaluated through `PythaeAdapter`; "skipped" when pythae is not importable.

The protocol (docs/anchors.md, the Exemplar-VAE table): the 10,000 test images binarized once with
the fixed seed (`vaekit.data.binarize.eval_images`, as `vaekit eval` builds them), the
importance-weighted bound with k = 5,000, in nats. Fewer images (`--images`) or another k give a
screening table, labelled so, not the protocol. Printed: test NLL, test -ELBO, epochs done, seconds
per epoch and training seconds of each, the gap in nats of each to `best`, and the published rows.

Run: .venv/bin/python bench/quality.py [--budget 60m] [--k 5000] [--images 10000] [--precision bf16]
     [--only best,sheet,examples,pythae] [--threads 2] [--best-config TOML] [--out DIR]
     [--json PATH]
Smoke: .venv/bin/python bench/quality.py --budget 20s --k 50 --images 200 --only sheet,examples
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:  # train_speed beside this file, also when imported by path (tests)
    sys.path.insert(0, str(BENCH))

from train_speed import BATCH, LR, ExampleVAE, PILImageDataset, example_loss  # noqa: E402
from vaekit.config import (  # noqa: E402
    TrainConfig,
    load_toml,
    parse_duration,  # noqa: E402
)
from vaekit.data.binarize import eval_images  # noqa: E402
from vaekit.data.load import Dataset, load_dataset  # noqa: E402
from vaekit.device import flush_denormals, set_threads  # noqa: E402
from vaekit.errors import ConfigError  # noqa: E402
from vaekit.evaluate.run import Evaluation, evaluate_model, load_test_set  # noqa: E402
from vaekit.runs import read_metrics  # noqa: E402
from vaekit.train.fit import fit  # noqa: E402

CONTENDERS = ("best", "sheet", "examples", "pythae")
BEST_CONFIG, SHEET_CONFIG = (ROOT / "configs" / n for n in ("fashion-mnist-best.toml", "sheet.toml"))
PROTOCOL_K, PROTOCOL_IMAGES = 5000, 10_000
MAX_EPOCHS = 100_000  # Pythae's num_epochs: the budget ends its run
# The Exemplar-VAE table (Norouzi et al. 2020), dynamically binarized Fashion-MNIST, k = 5,000, nats.
PUBLISHED = {"VAE": 228.70, "HVAE": 227.37, "VampPrior": 227.35, "Exemplar VAE": 226.75, "ConvHVAE": 225.38}


@dataclass
class Row:
    """One contender's line of the table (None where it was not run)."""

    name: str
    what: str
    status: str = "ok"  # ok | skipped | failed
    test_nll: float | None = None
    test_neg_elbo: float | None = None
    epochs: int | None = None
    seconds_per_epoch: float | None = None
    training_seconds: float | None = None  # the training epochs' wall time (not validation, saving)
    wall_seconds: float | None = None  # everything of the training call
    note: str = ""


# ----------------------------------------------------------------------------- adapters


class ExampleAdapter(nn.Module):
    """pytorch/examples' VAE seen as vaekit's `VAE` protocol: q(z|x) = N(fc21(h), exp(fc22(h))) with
    h = relu(fc1(x)), and p(x|z) Bernoulli with logits fc4(relu(fc3(z))): the example's decoder
    without its final sigmoid, so that the evaluator's log-likelihood is computed from logits."""

    likelihood = "bernoulli"

    def __init__(self, vae: ExampleVAE) -> None:
        super().__init__()
        self.vae = vae
        self.latent_dim = vae.fc21.out_features  # 20

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h1 = F.relu(self.vae.fc1(x.reshape(-1, 784)))
        return self.vae.fc21(h1), self.vae.fc22(h1)

    def decode(self, z: Tensor) -> Tensor:
        return self.vae.fc4(F.relu(self.vae.fc3(z))).reshape(-1, 1, 28, 28)


class PythaeAdapter(nn.Module):
    """Pythae's VAE seen as vaekit's `VAE` protocol (tests/test_bench_quality.py holds it to
    Pythae's own encoder and decoder where pythae is installed).
    q(z|x) = N(encoder(x).embedding, exp(encoder(x).log_covariance)); p(x|z) from
    decoder(z).reconstruction, probabilities in [0, 1] after a sigmoid. The logits are taken before
    that sigmoid when the decoder is Pythae's `Decoder_AE_MLP` (`layers`, the last one ending in
    nn.Sigmoid), else as logit(clamp(reconstruction)), which saturates at about +-16.6 nats/pixel."""

    likelihood = "bernoulli"

    def __init__(self, model: nn.Module, latent_dim: int,
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        self.model = model
        self.latent_dim = latent_dim
        self.image_shape = image_shape

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model.encoder(x)
        return out.embedding, out.log_covariance

    def decode(self, z: Tensor) -> Tensor:
        layers = getattr(self.model.decoder, "layers", None)
        last = layers[-1] if layers is not None and len(layers) else None
        if isinstance(last, nn.Sequential) and isinstance(last[-1], nn.Sigmoid):
            h = z
            for layer in layers[:-1]:
                h = layer(h)
            logits = last[:-1](h)
        else:
            recon = self.model.decoder(z).reconstruction
            logits = torch.logit(recon.clamp(1e-7, 1 - 1e-7))
        return logits.reshape(-1, *self.image_shape)


# ----------------------------------------------------------------------------- contenders


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def train_vaekit(config_path: Path, budget: float, threads: int, out_dir: Path,
                 precision: str | None = None, dataset: Dataset | None = None) -> tuple[Row, Path]:
    """Train a vaekit run of `config_path` for `budget` seconds into `out_dir` (`precision`: the
    config's own train.precision when None), on `dataset` unless the config sets its own
    validation split."""
    config: TrainConfig = load_toml(config_path)
    config.train.threads = threads
    config.train.precision = precision or config.train.precision
    config.train.time_budget = budget  # fit plans the epochs, cosine decay and warm-up inside it
    note = ""
    t0 = time.perf_counter()
    if config.data.val_size is not None:
        dataset = None  # its own split of the training file: fit loads it (`data.val_size`)
    summary = fit(config, out_dir, show_bar=False, log=lambda line: print(f"  {line}", flush=True),
                  dataset=dataset)
    wall = time.perf_counter() - t0
    seconds = [float(r["epoch_seconds"]) for r in read_metrics(out_dir) if "epoch_seconds" in r]
    # the budget's clock: epochs with their validation and checkpoints, and the probe
    row = Row("", "", epochs=int(summary["epochs"]), seconds_per_epoch=_mean(seconds),
              training_seconds=float(summary["train_seconds"]), wall_seconds=wall, note=note)
    if summary.get("stopped"):
        row.note = "; ".join(filter(None, [row.note, str(summary["stopped"])]))
    return row, out_dir


def train_example(images: Tensor, labels: Tensor, budget: float,
                  seed: int = 1) -> tuple[ExampleVAE, list[float]]:
    """pytorch/examples' VAE trained the way vae/main.py trains it (its `train(epoch)`, seed 1), for
    whole epochs while the next one, at the mean epoch time, ends within `budget` seconds of
    training. `images` uint8 (N, 28, 28). Returns the model and each epoch's seconds."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(PILImageDataset(images, labels), batch_size=BATCH, shuffle=True)
    model = ExampleVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    epochs: list[float] = []
    while not epochs or sum(epochs) + _mean(epochs) <= budget:  # type: ignore[operator]
        model.train()
        t0 = time.perf_counter()
        train_loss = 0.0
        for data, _ in loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = example_loss(recon, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        epochs.append(time.perf_counter() - t0)
        print(f"  ====> Epoch: {len(epochs)} Average loss: {train_loss / len(loader.dataset):.4f}"
              f"  {epochs[-1]:.1f} s", flush=True)
    model.eval()
    return model, epochs


class _BudgetReached(Exception):
    pass


def train_pythae(images: Tensor, budget: float, out_dir: Path) -> tuple[PythaeAdapter, list[float]] | None:
    """Pythae 0.1.2's VAE through its TrainingPipeline, stopped before the epoch that would end past
    `budget` seconds of training (`BaseTrainer.train_step`, one call per epoch, timed as in
    bench/train_speed.py). None when pythae is not importable. The pipeline trains `model` in place
    on the CPU (its NLL after 3 epochs is 238, where the untrained model's is about 550)."""
    try:
        from pythae.models import VAE, VAEConfig  # type: ignore[import-not-found]
        from pythae.pipelines import TrainingPipeline  # type: ignore[import-not-found]
        from pythae.trainers import BaseTrainer, BaseTrainerConfig  # type: ignore[import-not-found]
    except ImportError:
        return None
    data = images.reshape(-1, 1, 28, 28).numpy().astype("float32") / 255.0
    epochs: list[float] = []
    original = BaseTrainer.train_step

    def budgeted_train_step(self: Any, epoch: int) -> Any:
        if epochs and sum(epochs) + sum(epochs) / len(epochs) > budget:
            raise _BudgetReached
        t0 = time.perf_counter()
        loss = original(self, epoch)
        epochs.append(time.perf_counter() - t0)
        print(f"  pythae epoch {len(epochs)}: loss {float(loss):.4f}  {epochs[-1]:.1f} s", flush=True)
        return loss

    trainer = BaseTrainerConfig(output_dir=str(out_dir), num_epochs=MAX_EPOCHS, learning_rate=LR,
                                optimizer_cls="Adam", per_device_train_batch_size=BATCH, no_cuda=True)
    model = VAE(model_config=VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce"))
    BaseTrainer.train_step = budgeted_train_step
    try:
        TrainingPipeline(training_config=trainer, model=model)(train_data=data)
    except _BudgetReached:
        pass
    finally:
        BaseTrainer.train_step = original
    model.eval()
    return PythaeAdapter(model, latent_dim=20), epochs


# ----------------------------------------------------------------------------- the table


def evaluate(model: Any, x: Tensor, k: int) -> tuple[float, float]:
    """(test NLL, test -ELBO) in nats: vaekit's evaluator, the same call for every contender."""
    ev: Evaluation = evaluate_model(model, x, k, batch_size=100, seed=0, progress=False)
    result = ev.summary(x[0].numel())
    return float(result["test_nll"]), float(result["test_neg_elbo"])


def _fmt(value: float | int | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(rows: list[Row], k: int, images: int) -> str:
    """The results table, with the gap of each peer to `best`, and the published rows."""
    protocol = k == PROTOCOL_K and images == PROTOCOL_IMAGES
    title = (f"test NLL, k = {k:,}, {images:,} test images binarized once with the fixed seed"
             + ("" if protocol else " (screening, not the protocol)"))
    best = next((r.test_nll for r in rows if r.name == "best" and r.test_nll is not None), None)
    head = ["contender", f"test NLL (nats, k={k})", "test -ELBO", "epochs", "s/epoch", "training s",
            "gap to best"]
    body = []
    for r in rows:
        if r.status != "ok":
            body.append([r.name, r.status, "", "", "", "", ""])
            continue
        gap = "—" if best is None or r.name == "best" or r.test_nll is None else f"{r.test_nll - best:+.2f}"
        body.append([r.name, _fmt(r.test_nll, ".2f"), _fmt(r.test_neg_elbo, ".2f"), _fmt(r.epochs, "d"),
                     _fmt(r.seconds_per_epoch, ".2f"), _fmt(r.training_seconds, ".1f"), gap])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    lines = [title, "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
             "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in body]
    lines += [f"  {r.name}: {r.what}" + (f" ({r.note})" if r.note else "") for r in rows]
    lines.append("published (Exemplar-VAE table, dynamically binarized Fashion-MNIST, k = 5,000): "
                 + ", ".join(f"{n} {v:.2f}" for n, v in PUBLISHED.items()))
    return "\n".join(lines)


def run(names: list[str], budget: float, k: int, images: int, threads: int, out: Path,
        precision: str | None = None, best_config: Path = BEST_CONFIG) -> list[Row]:
    """Train and evaluate each named contender in turn; one Row each (`best` trains `best_config`)."""
    ds = load_dataset("fashion-mnist")
    x = eval_images(ds.test.images[:images], "dynamic")  # the protocol: binarized once, EVAL_SEED
    rows: list[Row] = []
    for name in names:
        print(f"\n{name}: training for {budget:g} s (load average {os.getloadavg()[0]:.2f})", flush=True)
        if name in ("best", "sheet"):
            path = SHEET_CONFIG if name == "sheet" else best_config
            note = ""
            low = precision if name == "best" else None  # None: the config's own precision
            row, run_dir = train_vaekit(path, budget, threads, out / name, low, ds)
            used = low or load_toml(path).train.precision
            shown = f"configs/{path.name}" if path.parent == BEST_CONFIG.parent else str(path)
            row.name, row.what = name, f"vaekit, {shown}" + (f", {used} products"
                                                                        if used != "float32" else "")
            row.note = "; ".join(filter(None, [note, row.note]))
            model, _, x_run, _, _ = load_test_set(run_dir, limit=images)  # as `vaekit eval` builds them
            assert torch.equal(x_run, x), "the run's test images are not the protocol's"
            row.test_nll, row.test_neg_elbo = evaluate(model, x, k)
        elif name == "examples":
            assert ds.train.labels is not None
            vae, epochs = train_example(ds.train.images[:, 0], ds.train.labels, budget)
            row = Row(name, "pytorch/examples vae/main.py, its loop (pixels in [0, 1] as BCE targets)",
                      epochs=len(epochs), seconds_per_epoch=_mean(epochs), training_seconds=sum(epochs),
                      wall_seconds=sum(epochs))
            row.test_nll, row.test_neg_elbo = evaluate(ExampleAdapter(vae), x, k)
        else:
            t0 = time.perf_counter()
            trained = train_pythae(ds.train.images, budget, out / "pythae")
            if trained is None:
                print("pythae: not importable (pip install pythae==0.1.2), skipped")
                rows.append(Row(name, "Pythae 0.1.2 VAE, TrainingPipeline", status="skipped"))
                continue
            adapter, epochs = trained
            row = Row(name, "Pythae 0.1.2 VAE (MLP 784-512-20, bce), TrainingPipeline",
                      epochs=len(epochs), seconds_per_epoch=_mean(epochs), training_seconds=sum(epochs),
                      wall_seconds=time.perf_counter() - t0)
            row.test_nll, row.test_neg_elbo = evaluate(adapter, x, k)
        print(f"  {name}: test NLL {row.test_nll:.2f}, -ELBO {row.test_neg_elbo:.2f} nats", flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=parse_duration, default=parse_duration("60m"),
                        help="training wall time per contender: 60m, 20m, 90s, 1h or seconds (default: 60m)")
    parser.add_argument("--k", type=int, default=PROTOCOL_K, help="importance samples (default: 5000)")
    parser.add_argument("--images", type=int, default=PROTOCOL_IMAGES,
                        help="test images evaluated, the first N (default: all 10,000)")
    parser.add_argument("--only", default=",".join(CONTENDERS),
                        help=f"comma list of contenders among {','.join(CONTENDERS)} (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--precision", choices=("float32", "bf16"), default=None,
                        help="best's matrix products (train.precision; default: the config's own)")
    parser.add_argument("--best-config", type=Path, default=BEST_CONFIG, metavar="TOML",
                        help="the config `best` trains: a candidate through the same protocol "
                             "(default: configs/fashion-mnist-best.toml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the runs go: DIR/best, DIR/sheet (default: a fresh tempdir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown or not names:
        parser.error(f"--only: unknown contender(s) {', '.join(unknown) or '(none given)'}; "
                     f"valid: {', '.join(CONTENDERS)}")
    if not 1 <= args.images <= PROTOCOL_IMAGES or args.k < 1:
        parser.error(f"--images must be in 1..{PROTOCOL_IMAGES} and --k at least 1")
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="vaekit-quality-"))
    for name in ("best", "sheet"):
        if name in names and (out / name).exists():
            parser.error(f"{out / name} exists; pass another --out")
    threads = set_threads(args.threads)
    load_start = os.getloadavg()
    print(f"budget {args.budget:g} s per contender, k = {args.k:,}, {args.images:,} test images, "
          f"{threads} thread(s), torch {torch.__version__}, runs in {out}, "
          f"load average {load_start[0]:.2f}", flush=True)
    if "best" in names:
        try:
            load_toml(args.best_config)
        except (ConfigError, OSError) as e:
            parser.error(f"--best-config: {e}")
    rows = run(names, args.budget, args.k, args.images, threads, out, args.precision, args.best_config)
    load_end = os.getloadavg()
    print()
    print(table(rows, args.k, args.images))
    print(f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "budget_seconds": args.budget, "k": args.k, "images": args.images, "threads": threads,
            "protocol": args.k == PROTOCOL_K and args.images == PROTOCOL_IMAGES,
            "load_average": [load_start[0], load_end[0]], "rows": [asdict(r) for r in rows],
            "published": PUBLISHED}, indent=2) + "\n")


if __name__ == "__main__":
    with flush_denormals():  # every thread, the peers' too: before torch's first parallel op
        main()
