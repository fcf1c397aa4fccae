"""eval.json of `vaekit eval`, read and checked: its fields and their types (`check_eval`), and
what the run's config.json makes certain of it (`check_eval_of_run`), so that `vaekit report`, the
sheet and the API never show numbers no evaluation of the run can have written.

    read_eval(run_dir)   RUN_DIR/eval.json of the run's current model, checked; None if missing
    check_evaluated_data(run_dir, evaluation, ds, data)
                         the test split `ds` is the one eval.json was computed on (`test_sha256`)

A bound between two of its numbers: -L_k (test_nll) is at most the -ELBO (test_neg_elbo) up to the
Monte-Carlo noise of a closed-form KL (`nll_slack`; IWAE, Burda, Grosse & Salakhutdinov 2016).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from vaekit import runs
from vaekit.config import SEED_MAX, TrainConfig, is_int, is_number
from vaekit.data.binarize import EVAL_SEED
from vaekit.data.dataset import Dataset
from vaekit.data.load import known_image_shape, known_test_images, known_train_images
from vaekit.data.readers import neither_kind, reader_for
from vaekit.errors import CheckpointError, DataError
from vaekit.evaluate.latents import ACTIVE_THRESHOLD, PROBE_TRAIN_IMAGES
from vaekit.train.resume import TEST_KEY, sha256_of_test

REQUIRED_FIELDS = ("test_neg_elbo", "test_recon", "test_kl", "test_nll", "k", "bits_per_dim",
                   "active_units", "latent_dim", "images")
INT_FIELDS = ("k", "active_units", "latent_dim", "images")
PER_DIM_FIELDS = ("kl_per_dim", "latent_mean_variance")  # lists, one number per latent dimension
OPTIONAL_NUMBERS = ("test_nll_stderr", "mse", "seconds", "probe_accuracy", "probe_train_images", "seed",
                    "batch_size", "threads", "binarization_seed", "world_size")
OPTIONAL_INTS = ("probe_train_images", "seed", "batch_size", "threads", "binarization_seed", "world_size")
# (field, least value, greatest value or the field that bounds it): what `vaekit eval` can write
RANGES = (("k", 1, None), ("images", 1, None), ("latent_dim", 1, None), ("active_units", 0, "latent_dim"),
          ("test_nll_stderr", 0, None), ("mse", 0, None), ("seconds", 0, None), ("probe_accuracy", 0, 1),
          ("probe_train_images", 1, None), ("seed", 0, SEED_MAX), ("binarization_seed", 0, SEED_MAX),
          ("batch_size", 1, None), ("threads", 1, None), ("world_size", 1, None))
TEXT_FIELDS = ("dataset", "data_source", "binarization", "model_sha256", "kl_estimate", "likelihood_of",
               "device", TEST_KEY)
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max: eval's sums are of float32 terms
PROBE_ROUNDING = 1e-6  # probe_accuracy * images, against the whole number of images it got right
ROUNDING = 1e-6  # per latent dimension or term: float32 rounds a KL of 0 to -3e-8 at worst
NLL_SIGMAS = 20  # standard deviations of the closed-form KL's Monte-Carlo gap allowed (`nll_slack`)
SUM_ROUNDING = 1e-4  # relative: float32 sums of k log-weights, against their float64 means
SHA256_HEX = re.compile(r"[0-9a-f]{64}")  # test_sha256: `sha256_of_test` of the images evaluated
DEVICE_NAME = re.compile(r"cpu|cuda(:[0-9]+)?")  # str(torch.device) of `vaekit eval --device`
# What -log p(x) is a likelihood of, by the run's binarization (eval.json `likelihood_of`)
LIKELIHOOD_OF = {
    "fixed": "binary images (each test image binarized once, seed 0); bits/dim of binary pixels",
    "dequantize": "8-bit images: x = (pixel + u)/256, u ~ U[0, 1) drawn once (seed 0), nats include "
                  "D log 256, a bound on -log P(pixels) (Theis et al. 2016); bits/dim as published tables",
    "none": "the density of x = pixel/255 on [0, 1]^D, not a probability of 8-bit images: train with "
            "--binarize dequantize for bits/dim comparable to published tables",
}


def protocol_of(binarize: str) -> dict[str, Any]:
    """eval.json's binarization, likelihood_of and binarization_seed for a run trained with the
    (resolved) `binarize` mode: its test images binarized once ('fixed', for dynamic and fixed
    training alike), dequantized once or left continuous ('none': no seed)."""
    binarization = binarize if binarize in ("none", "dequantize") else "fixed"
    return {"binarization": binarization, "likelihood_of": LIKELIHOOD_OF[binarization],
            "binarization_seed": EVAL_SEED if binarization != "none" else None}


def _refused(path: Path, problem: str) -> CheckpointError:
    """The refusal of RUN_DIR/eval.json (`path`) for `problem` (a sentence naming the field and
    what `vaekit eval` writes), with its fix: evaluating the run again writes the file afresh."""
    return CheckpointError(f"{path}: {problem.removesuffix('.')}; run `vaekit eval {path.parent}` again.")


def check_eval(result: Any, path: Path) -> None:
    """Whether `result` is an eval.json of `vaekit eval`: every field the report reads, of its type;
    a CheckpointError naming the field if not."""
    if isinstance(result, dict) and result.get("task") == "classify":
        raise _refused(path, "a classifier's eval.json (task \"classify\", of `vaekit classify eval`), "
                             "but the run is a VAE's; not an eval.json of `vaekit eval`.")
    if not isinstance(result, dict) or any(f not in result for f in REQUIRED_FIELDS):
        raise _refused(path, "not an eval.json of `vaekit eval` (fields missing).")
    bad = [f for f in REQUIRED_FIELDS
           if not is_number(result[f]) or (f in INT_FIELDS and not is_int(result[f]))]
    if bad:
        raise _refused(path, f"{', '.join(bad)} must be numbers ({', '.join(INT_FIELDS)} "
                             "integers); not an eval.json of `vaekit eval`.")
    _check_ranges(result, path)
    latent = result["latent_dim"]
    for field in PER_DIM_FIELDS:
        values = result.get(field)
        if values is not None and not (isinstance(values, list) and len(values) == latent
                                       and all(map(is_number, values))):
            raise _refused(path, f"{field} must be a list of {latent} numbers (one per latent "
                                 "dimension); not an eval.json of `vaekit eval`.")
    for field in OPTIONAL_NUMBERS:
        value = result.get(field)
        if value is not None and not (is_int(value) if field in OPTIONAL_INTS else is_number(value)):
            kind = "an integer" if field in OPTIONAL_INTS else "a number"
            raise _refused(path, f"{field} is {str(value)[:40]}, but it must be {kind} or null; not an "
                                 "eval.json of `vaekit eval`.")
    _check_probe_fraction(result, path)
    _check_magnitudes(result, path)
    for field in TEXT_FIELDS:
        if result.get(field) is not None and not isinstance(result[field], str):
            raise _refused(path, f"{field} must be text; not an eval.json of `vaekit eval`.")
    if result.get("dataset") == "":
        raise _refused(path, "dataset is empty, but `vaekit eval` writes the name of the data "
                             "set it evaluated on; not an eval.json of `vaekit eval`.")
    if result.get(TEST_KEY) is not None and not SHA256_HEX.fullmatch(result[TEST_KEY]):
        raise _refused(path, f"{TEST_KEY} is not 64 lowercase hex digits, the SHA-256 `vaekit eval` "
                             "writes of the test images it evaluated; not an eval.json of `vaekit eval`.")
    _check_active(result, path)


def _check_probe_fraction(result: dict[str, Any], path: Path) -> None:
    """probe_accuracy, where there, is a fraction of the `images` test images: the probe scores
    the latent means of every image evaluated (`vaekit.evaluate.latents.probe_accuracy`), so
    probe_accuracy * images is a whole number (up to float rounding, PROBE_ROUNDING)."""
    accuracy, n = result.get("probe_accuracy"), result["images"]
    if accuracy is None or not 0 <= accuracy <= 1:
        return
    if abs(accuracy * n - round(accuracy * n)) > PROBE_ROUNDING:
        raise _refused(path, f"probe_accuracy is {accuracy:.6g}, but the probe scores the {n:,} test "
                             f"images (images), so it is a multiple of 1/{n:,}; not an eval.json of "
                             "`vaekit eval`.")


def _check_magnitudes(result: dict[str, Any], path: Path) -> None:
    """Every number of eval.json within float32's range (|x| <= FLOAT32_MAX): `vaekit eval` computes
    its terms in float32, where a larger magnitude is inf and is refused before it is written; a
    CheckpointError naming the first field past it (and no sum of them overflowing later)."""
    for field in (*REQUIRED_FIELDS, *OPTIONAL_NUMBERS, *PER_DIM_FIELDS):
        value = result.get(field)
        values = value if isinstance(value, list) else [value]
        big = next((v for v in values if is_number(v) and abs(v) > FLOAT32_MAX), None)
        if big is not None:
            raise _refused(path, f"{field} holds {big:.6g}, past float32's range (magnitude at most "
                                 f"{FLOAT32_MAX:.6g}) that `vaekit eval` computes in; not an eval.json of "
                                 "`vaekit eval`.")


def _check_active(result: dict[str, Any], path: Path) -> None:
    """active_units is the count of latent_mean_variance's entries above ACTIVE_THRESHOLD, as
    `vaekit eval` counts them from the same latent means (`vaekit.evaluate.latents.active_units`)."""
    variances = result.get("latent_mean_variance")
    if variances is None:
        return
    count = sum(v > ACTIVE_THRESHOLD for v in variances)
    if result["active_units"] != count:
        raise _refused(path, f"active_units is {result['active_units']}, but latent_mean_variance "
                             f"holds {count} variances above {ACTIVE_THRESHOLD}, the active units "
                             "`vaekit eval` counts; not an eval.json of `vaekit eval`.")


def _check_ranges(result: dict[str, Any], path: Path) -> None:
    """Each field of `RANGES` there within its range, the latent means' variances >= 0: if not, a
    CheckpointError naming the first (k = 0, -5 images, 99 active units of 4)."""
    for field, low, high in RANGES:
        value = result.get(field)
        top = result[high] if isinstance(high, str) else high
        if is_number(value) and not (low <= value and (top is None or value <= top)):
            bound = f">= {low}" if top is None else f"between {low} and {top}"
            where = " (its latent_dim)" if isinstance(high, str) else ""
            raise _refused(path, f"{field} is {str(value)[:40]}, but `vaekit eval` writes {field} "
                                 f"{bound}{where}; not an eval.json of `vaekit eval`.")
    variances = result.get("latent_mean_variance")
    if isinstance(variances, list) and any(is_number(v) and v < 0 for v in variances):
        raise _refused(path, "latent_mean_variance holds a negative variance; not an eval.json "
                             "of `vaekit eval`.")


def check_eval_of_run(result: Any, path: Path) -> None:
    """`check_eval`, then what the run's config.json makes certain of the eval.json beside it: its
    latent_dim is the model's; its kl_estimate the one eval writes for the model (`_check_kl_estimate`);
    a KL in closed form, and each of its dimensions, is >= 0; a Bernoulli
    likelihood's reconstruction term (a cross-entropy of pixels in [0, 1], plus D log 256 for
    dequantized ones) is >= 0; the sums of `_check_sums`; no more images than the test set of its
    dataset holds (`_check_images`); its dataset one of the model's image shape (`_check_dataset`);
    its protocol the config's (`_check_protocol`); its data_source a folder or array file, where
    something is there (`_check_source`); test_nll at most test_neg_elbo, up to `nll_slack`,
    and with k = 1 also at least test_neg_elbo less that slack (one sample: -L_1 and the -ELBO
    differ by the closed-form KL's noise alone; with k > 1 -L_k has no lower bound here). A
    negative test_nll is not refused: its importance-sampled estimate can fall below 0 where
    -log p(x) is near 0, and under a Gaussian likelihood -log p(x) itself."""
    check_eval(result, path)
    config = runs.read_config(path.parent, "vae")
    runs.check_trained_config(path.parent, config)  # an edited config.json is named, not eval.json
    model = config.model
    if result["latent_dim"] != model.latent:
        raise _refused(path, f"latent_dim is {result['latent_dim']}, but "
                             f"{path.parent / runs.CONFIG} gives the model {model.latent} latent "
                             "dimensions; the file is another run's, or was edited.")
    closed = model.prior == "standard" and model.stochastic_layers == 1
    _check_kl_estimate(result, path, closed)
    per_dim = result.get("kl_per_dim") or []
    if closed and (result["test_kl"] < -ROUNDING * model.latent or min(per_dim, default=0) < -ROUNDING):
        field = "kl_per_dim" if min(per_dim, default=0) < -ROUNDING else "test_kl"
        raise _refused(path, f"{field} holds a negative KL, but a KL divergence in closed form is "
                             ">= 0; not an eval.json of `vaekit eval`.")
    if model.likelihood == "bernoulli" and result["test_recon"] < -ROUNDING:
        raise _refused(path, f"test_recon is {result['test_recon']:.6g}, but the reconstruction "
                             "term of a Bernoulli likelihood is >= 0; not an eval.json of `vaekit eval`.")
    _check_sums(result, path, math.prod(model.image_shape) if model.image_shape else 0)
    _check_dataset(result, path, config.data.name, tuple(model.image_shape or ()))
    _check_images(result, path, config.data.name)
    _check_protocol(result, path, config)
    _check_source(result, path)
    slack = nll_slack(result["test_kl"], result["images"], result["k"], closed, result["test_neg_elbo"])
    if result["test_nll"] > result["test_neg_elbo"] + slack:
        raise _refused(path, f"test_nll is {result['test_nll']:.6g}, but the importance-sampled "
                             f"-log p(x) is at most test_neg_elbo ({result['test_neg_elbo']:.6g}) plus "
                             f"{slack:.3g} of Monte-Carlo noise; not an eval.json of `vaekit eval`.")
    if result["k"] == 1 and result["test_nll"] < result["test_neg_elbo"] - slack:
        raise _refused(path, f"test_nll is {result['test_nll']:.6g}, but with k = 1 -L_1 is the "
                             f"-ELBO of the same sample, test_neg_elbo ({result['test_neg_elbo']:.6g}) up "
                             f"to {slack:.3g} of Monte-Carlo noise; not an eval.json of `vaekit eval`.")


def kl_estimate_of(closed_form: bool, k: int) -> str:
    """eval.json's kl_estimate: how `vaekit eval` computed the KL, in closed form (Ex.2 Q3: one
    Gaussian layer against N(0, I)) or by Monte Carlo over its k importance samples."""
    return "closed form" if closed_form else f"Monte Carlo, k = {k}"


def _check_kl_estimate(result: dict[str, Any], path: Path, closed: bool) -> None:
    """kl_estimate, where eval.json has it, is the one `vaekit eval` writes for the run's model
    (`closed`: a standard prior and one stochastic layer, whose KL is in closed form), and
    kl_per_dim is there only for a KL in closed form: a CheckpointError naming the field if not,
    so that no relabelling lifts the closed form's KL >= 0 off a run whose KL is one."""
    how, expected = result.get("kl_estimate"), kl_estimate_of(closed, result["k"])
    kind = ("a standard prior and one stochastic layer" if closed
            else "a VampPrior or two stochastic layers")
    if how is not None and how != expected:
        raise _refused(path, f"kl_estimate is {how[:60]!r}, but `vaekit eval` writes {expected!r} "
                             f"for the run's model of {kind} ({path.parent / runs.CONFIG}, k = "
                             f"{result['k']}); the file is another run's, or was edited.")
    if not closed and result.get("kl_per_dim") is not None:
        raise _refused(path, f"kl_per_dim is there, but `vaekit eval` writes it only for a KL in "
                             f"closed form, and the run's model has {kind} ({path.parent / runs.CONFIG}); "
                             "the file is another run's, or was edited.")


def _check_protocol(result: dict[str, Any], path: Path, config: TrainConfig) -> None:
    """What `vaekit eval` writes of the run's protocol, where eval.json has it: binarization,
    likelihood_of and binarization_seed those of the config's binarization (`protocol_of`), device
    a torch device it evaluates on (cpu, cuda, cuda:N); and under a Bernoulli likelihood an mse
    of at most 1 (per pixel, of means and pixels in [0, 1]): a CheckpointError naming the field."""
    binarize = config.resolved_binarize()
    for field, expected in protocol_of(binarize).items():
        value = result.get(field)
        if value is not None and value != expected:
            shown = repr(value[:60]) if isinstance(value, str) else str(value)[:40]
            wanted = ("null" if expected is None else repr(expected) if field != "likelihood_of"
                      else f"its text for binarization {protocol_of(binarize)['binarization']!r}")
            raise _refused(path, f"{field} is {shown}, but `vaekit eval` writes {wanted} for a "
                                 f"run trained with binarize {binarize!r} ({path.parent / runs.CONFIG}); "
                                 "the file is another run's, or was edited.")
    device = result.get("device")
    if device is not None and not DEVICE_NAME.fullmatch(device):
        raise _refused(path, f"device is {device[:40]!r}, but `vaekit eval` evaluates on cpu, "
                             "cuda or cuda:N; not an eval.json of `vaekit eval`.")
    mse = result.get("mse")
    if config.model.likelihood == "bernoulli" and mse is not None and mse > 1.0 + ROUNDING:
        raise _refused(path, f"mse is {mse:.6g}, but under a Bernoulli likelihood the squared error "
                             "per pixel of means and pixels in [0, 1] is at most 1; not an eval.json of "
                             "`vaekit eval`.")


def _check_source(result: dict[str, Any], path: Path) -> None:
    """data_source, where eval.json has it, the absolute path of a user's data `vaekit eval` read:
    a folder or a .npy/.npz array (`vaekit.data.readers.reader_for`) where something is there (one
    no longer there is the report's to say); a CheckpointError naming eval.json otherwise, not the
    sentence for a path the user gave."""
    source = result.get("data_source")
    if source is None:
        return
    if not os.path.isabs(source) or (os.path.lexists(source) and reader_for(source) is None):
        kind = "a relative path" if not os.path.isabs(source) else neither_kind()
        raise _refused(path, f"data_source is {source[:80]!r}, {kind}, but `vaekit eval` writes the absolute "
                             "path of the folder or .npy/.npz array it evaluated on; not an eval.json of "
                             "`vaekit eval`.")


def _check_sums(result: dict[str, Any], path: Path, pixels: int) -> None:
    """test_neg_elbo is test_recon + test_kl, bits_per_dim test_nll / (D ln 2) for the run's D pixel
    values (0: unknown; rel. tolerance 1e-4), kl_per_dim's entries sum to test_kl (float32 sums of
    the D dimensions of each image: rel. tolerance 1e-5): a CheckpointError naming the field if not."""
    parts = result["test_recon"] + result["test_kl"]
    if not math.isclose(result["test_neg_elbo"], parts, rel_tol=1e-6, abs_tol=1e-6):
        raise _refused(path, f"test_neg_elbo is {result['test_neg_elbo']:.6g}, but test_recon + "
                             f"test_kl is {parts:.6g}; not an eval.json of `vaekit eval`.")
    bits = result["test_nll"] / (pixels * math.log(2.0))
    if pixels and not math.isclose(result["bits_per_dim"], bits, rel_tol=1e-4, abs_tol=1e-12):
        raise _refused(path, f"bits_per_dim is {result['bits_per_dim']:.6g}, but test_nll / "
                             f"(D ln 2) for the run's D = {pixels} pixel values is {bits:.6g}; not an "
                             "eval.json of `vaekit eval`.")
    per_dim = result.get("kl_per_dim")
    total = math.fsum(per_dim) if per_dim is not None else result["test_kl"]
    if not math.isclose(total, result["test_kl"], rel_tol=1e-5, abs_tol=ROUNDING * len(per_dim or "-")):
        raise _refused(path, f"kl_per_dim sums to {total:.6g}, but test_kl is "
                             f"{result['test_kl']:.6g}, the sum of its dimensions; not an eval.json of "
                             "`vaekit eval`.")


def _check_dataset(result: dict[str, Any], path: Path, trained_on: str, shape: tuple[int, ...]) -> None:
    """eval.json's dataset is one the run's model can have been evaluated on: the run's own
    (`trained_on`), or another of its image `shape` (`vaekit eval --dataset`), where that set's
    shape is known without reading a file (`vaekit.data.load.known_image_shape`): a CheckpointError if not."""
    name = result.get("dataset")
    if not isinstance(name, str) or name == trained_on or not shape:
        return
    theirs = known_image_shape(name)
    if theirs is not None and theirs != shape:
        held, taken = "x".join(map(str, theirs)), "x".join(map(str, shape))
        raise _refused(path, f"dataset is {name[:60]}, whose images are {held}, but the model of "
                             f"{path.parent / runs.CONFIG} takes the {taken} images of {trained_on}, so no "
                             "evaluation of the run used it; the file is another run's, or was edited.")


def _check_images(result: dict[str, Any], path: Path, trained_on: str) -> None:
    """images at most the test set of eval.json's dataset (else the run's, `trained_on`), where its
    size is known without reading a file (`vaekit.data.load.known_test_images`); probe_train_images
    a whole number at most PROBE_TRAIN_IMAGES and the training split of that set where known
    (`known_train_images`), there with probe_accuracy or not at all: a CheckpointError if not."""
    name = result.get("dataset") or trained_on
    size = known_test_images(name)
    if size is not None and result["images"] > size:
        raise _refused(path, f"images is {result['images']:,}, but the test set of {name} holds "
                             f"{size:,} images; not an eval.json of `vaekit eval`.")
    probe = result.get("probe_train_images")
    if (probe is None) != (result.get("probe_accuracy") is None):
        there, absent = ("probe_train_images", "probe_accuracy") if probe is not None else (
            "probe_accuracy", "probe_train_images")
        raise _refused(path, f"{there} is there without {absent}, but `vaekit eval` writes both "
                             "or neither; not an eval.json of `vaekit eval`.")
    if probe is None:
        return
    train = known_train_images(name)
    most, of = (PROBE_TRAIN_IMAGES, "`vaekit eval` fits the probe on at most")
    if train is not None and train < PROBE_TRAIN_IMAGES:
        most, of = train, f"the training split of {name} holds"
    if not is_int(probe) or probe > most:
        raise _refused(path, f"probe_train_images is {str(probe)[:40]}, but {of} {most:,} images; "
                             "not an eval.json of `vaekit eval`.")


def nll_slack(test_kl: float, images: int, k: int, closed_form: bool, neg_elbo: float) -> float:
    """How far an honest test_nll (-L_k, averaged over the images) can lie above test_neg_elbo.

    On the same k samples z_i ~ q(z|x) of an image, log of a mean >= mean of logs (Jensen):
        -L_k(x) = -log (1/k sum_i w_i) <= -1/k sum_i log w_i
                = recon(x) + 1/k sum_i [log q(z_i|x) - log p(z_i)]
    (IWAE, Burda, Grosse & Salakhutdinov 2016, eq. 8 and theorem 1: L_1 <= L_k <= log p(x) in
    expectation; here exactly, sample by sample). With a Monte-Carlo KL that last sum is test_kl,
    and test_nll <= test_neg_elbo holds up to float rounding. With the closed-form KL it is the
    KL plus noise of mean 0: per latent dimension of q = N(mu, s^2) against N(0, 1),
        log q(z) - log p(z) - KL = mu s eps + (s^2 - 1)(eps^2 - 1)/2,   eps ~ N(0, 1),
    of variance mu^2 s^2 + (s^2 - 1)^2 / 2 <= 2 max(1, s^2) KL, as 2 KL = mu^2 + s^2 - 1 - log s^2
    and (1 - s^2)^2 / 2 <= s^2 - 1 - log s^2 for s <= 1 (and <= s^2 (s^2 - 1 - log s^2) above).
    Averaged over k samples and N images the noise has a standard deviation of at most
        sigma = sqrt(2 max(1, s^2) test_kl / (N k)),
    and the slack allowed is NLL_SIGMAS (20) sigmas at s <= 1, still 5 where a posterior is 16
    times as wide as the prior; plus SUM_ROUNDING of |test_neg_elbo| for float32 sums of k terms."""
    rounding = SUM_ROUNDING * (1.0 + abs(neg_elbo))
    if not closed_form:
        return rounding
    return rounding + NLL_SIGMAS * math.sqrt(2.0 * max(test_kl, 0.0) / (images * k))


def check_evaluated_data(run_dir: Path, evaluation: dict[str, Any], ds: Dataset, data: str,
                         own: bool) -> None:
    """The test split of `ds` (`data`: its name or path; `own`: the run's own set) is the one
    RUN_DIR/eval.json was computed on, by the SHA-256 it records of it (`TEST_KEY`, the law of
    `vaekit.train.resume.sha256_of_test`): an .npy, .npz or folder changed since is a DataError
    naming both, so that figures are never drawn from other images than the numbers shown. An
    eval.json of an earlier vaekit, which records none, is not checked."""
    recorded = evaluation.get(TEST_KEY)
    if isinstance(recorded, str) and recorded != sha256_of_test(ds):
        again = f"vaekit eval {run_dir}" + ("" if own else f" --dataset {data}")
        raise DataError(f"{data} is not the data {run_dir / runs.EVAL} was computed on (the SHA-256 of its "
                        f"test images and labels is not the {TEST_KEY} eval.json records): it changed "
                        f"since, so run `{again}` again for a report on it, or put back that data.")


def read_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN_DIR/eval.json if it exists and belongs to the run's current model, else None if missing;
    CheckpointError if it is unreadable, not of `vaekit eval` or of this run's model
    (`check_eval_of_run`) or was computed for other weights (`vaekit.runs.read_eval`)."""
    return runs.read_eval(run_dir, check_eval_of_run, "vaekit eval")
