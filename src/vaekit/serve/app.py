"""The latent explorer's server (`vaekit serve RUN_DIR`): a page and a small JSON API over one
trained VAE run, on localhost.

Why the standard library's `http.server.ThreadingHTTPServer`: it adds no dependency, and one user
on the loopback interface (a page that asks for a decode as a slider moves) is far below what a
thread per connection can serve. It is not a server for the open internet: it binds 127.0.0.1 by
default and `vaekit serve --host` warns for any other address.

The model is loaded once, at start, with everything the API derives from the test set (codes, the
map, active units); after that the explorer is read-only: every request runs under
`torch.inference_mode()` with its own random generator, so threads share no mutable state, and
nothing is ever written to the run directory.

Devices (`vaekit serve --device`): the model and what the explorer derives from the test set (the
images, their codes, the map) live on the run's device, and each request computes there; every
answer is built from tensors moved to the CPU. Drawn images (`/api/samples`, a decode's sample)
come from a generator on that device seeded with the request's seed; the eps of an upload's nll
are drawn on the CPU (`vaekit.evaluate.iwae`), the same on every device.

    GET  /                      the page (static/index.html)
    GET  /static/NAME           a file directly in static/ (nothing else: no '..', no sub-folders)
    GET  /api/info              latent_dim, image_shape, classes, active, kl_per_dim, clamp, test_images,
                                device
    GET  /api/map[?dims=a,b]    the test codes on a plane: method, points, labels, mean, basis
    POST /api/decode            {"z": [D], "sample"?: bool, "seed"?: int} -> an image (+ "sample", "seed")
    GET  /api/code?index=i      {"z", "image", "label"} of test image i
    POST /api/interpolate       {"a": i, "b": j, "steps": n} -> {"images": [...]}
    POST /api/encode            {"pixels": [C*H*W]} or {"image": base64 PNG/JPEG}
                                -> {"z", "reconstruction", "nll", "point", "converted"}
    GET  /api/samples?n=&seed=  {"images": [...]} decoded from z ~ N(0, I)

An image is {"width", "height", "channels", "pixels"}: floats in [0, 1] rounded to 4 decimals, in
the order (C, H, W) flattened. A point (x, y) of the map is the latent z = mean + x basis[0] +
y basis[1]. Every error is a 4xx (5xx for a bug) whose body is {"error": "one sentence."}.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import json
import math
import os
import re
import socket
import socketserver
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from vaekit.config import SEED_MAX, is_int, is_number
from vaekit.data.binarize import EVAL_SEED, eval_images
from vaekit.data.load import load_configured
from vaekit.errors import ConfigError
from vaekit.evaluate.iwae import estimate_batch
from vaekit.evaluate.latents import ACTIVE_THRESHOLD, active_units
from vaekit.runs import Run, load_run
from vaekit.vae.prob import gaussian_kl_per_dim, placement

STATIC = Path(__file__).resolve().parent / "static"
Z_MAX = 6.0  # |z| beyond this is refused (422): the prior puts 2e-9 of its mass there
N_MAP = 2000  # test images whose codes the explorer holds (the map, /api/code, /api/interpolate)
MAX_BODY = 3 * 2**20  # bytes of a request body (a base64 upload of MAX_UPLOAD is 4/3 of it)
MAX_UPLOAD = 2 * 2**20  # bytes of an uploaded PNG/JPEG
MAX_UPLOAD_PIXELS = 4096 * 4096
MAX_STEPS, MAX_SAMPLES = 32, 64
IWAE_K, IWAE_SEED = 200, 0  # the nll of an upload: importance-weighted, k samples, seeded
DECIMALS = 4
TIMEOUT = 30.0  # seconds a connection may stay silent mid-request
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8"}
PLACEHOLDER = (b"<!doctype html><meta charset=utf-8><title>vaekit latent explorer</title>"
               b"<p>The explorer's page (vaekit/serve/static/index.html) is not installed yet; the JSON "
               b"API answers under <a href=/api/info>/api/info</a>.</p>\n")
OWN_ERRORS = {400: "the request could not be read (a malformed request line or header).",
              414: "the request line is too long.", 431: "the request headers are too large.",
              501: "this method is not supported; the explorer answers GET and POST."}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_INT = re.compile(r"-?[0-9]{1,12}")


class ApiError(Exception):
    """A request the API refuses: an HTTP status and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------- validation


def _name(key: object) -> str:
    return f"'{key}'" if isinstance(key, str) and _NAME.fullmatch(key) else "an unnamed field"


def check_fields(body: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Exactly the fields named: an unknown or a missing one is a 400."""
    expected = ", ".join(required + optional)
    for key in body:
        if key not in required and key not in optional:
            raise ApiError(400, f"unknown field {_name(key)}; this request takes {expected}.")
    for key in required:
        if key not in body:
            raise ApiError(400, f"the field '{key}' is missing; this request takes {expected}.")


def as_int(value: object, what: str, low: int, high: int) -> int:
    if not is_int(value):
        raise ApiError(400, f"{what} must be an integer between {low} and {high}.")
    if not low <= value <= high:
        got = f", got {value}" if abs(value) < 10**15 else ""
        raise ApiError(400, f"{what} must be between {low} and {high}{got}.")
    return value


def query_int(query: dict[str, str], key: str, low: int, high: int, default: int | None = None) -> int:
    text = query.get(key)
    if text is None:
        if default is None:
            raise ApiError(400, f"the query parameter '{key}' is missing.")
        return default
    if not _INT.fullmatch(text):
        raise ApiError(400, f"the query parameter '{key}' must be an integer between {low} and {high}.")
    return as_int(int(text), f"the query parameter '{key}'", low, high)


def numbers(value: object, what: str, length: int) -> list[float]:
    """A JSON list of `length` finite numbers (NaN and infinities cannot be written in JSON; the
    body parser refuses them too)."""
    if not isinstance(value, list) or len(value) != length:
        raise ApiError(400, f"{what} must be a list of {length} numbers.")
    out = []
    for v in value:
        if not is_number(v):
            raise ApiError(400, f"{what} must hold only numbers.")
        if isinstance(v, int) and abs(v) > 1e300:
            raise ApiError(422, f"{what} holds a number too large to be a latent or a pixel.")
        f = float(v)
        if not math.isfinite(f):
            raise ApiError(400, f"{what} must hold finite numbers.")
        out.append(f)
    return out


def parse_query(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=16) if text else []
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            names = ", ".join(allowed) if allowed else "none"
            raise ApiError(400, f"unknown query parameter {_name(key)}; this request takes {names}.")
        if key in query:
            raise ApiError(400, f"the query parameter '{key}' is given twice.")
        query[key] = value
    return query


def _no_constants(name: str) -> float:
    raise ValueError(name)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate")
    return out


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body: one JSON object, no NaN/Infinity, no repeated keys."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants,
                          object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "the body must be one JSON object (UTF-8, finite numbers, no repeated "
                       "keys).") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object, not another JSON value.")
    return body


# ----------------------------------------------------------------------------- images


def image_json(t: Tensor) -> dict[str, Any]:
    """One image (C, H, W) as the API writes it, clamped to [0, 1] and rounded to 4 decimals, from a
    CPU copy."""
    c, h, w = t.shape
    pixels = t.detach().to("cpu", torch.float64).clamp(0.0, 1.0).round(decimals=DECIMALS).flatten().tolist()
    return {"width": int(w), "height": int(h), "channels": int(c), "pixels": pixels}


def decode_upload(text: object, shape: tuple[int, int, int]) -> tuple[Tensor, list[str]]:
    """A base64 PNG or JPEG -> uint8 (C, H, W) of the model's shape, and what was done to it."""
    if not isinstance(text, str):
        raise ApiError(400, "the field 'image' must be a base64 string of a PNG or JPEG file.")
    if text.startswith("data:") and "," in text[:100]:  # a data: URL as a browser's FileReader writes it
        text = text.split(",", 1)[1]
    if len(text) > MAX_UPLOAD * 4 // 3 + 8:
        raise ApiError(413, f"the image is larger than {MAX_UPLOAD // 2**20} MB.")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the field 'image' is not valid base64 text.") from None
    if len(data) > MAX_UPLOAD:
        raise ApiError(413, f"the image is larger than {MAX_UPLOAD // 2**20} MB.")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as probe:
            width, height = probe.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise ApiError(413, f"the image has {width}x{height} pixels, more than "
                               f"{MAX_UPLOAD_PIXELS:,}.")
            probe.verify()
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as im:
            im.load()
            kind = im.format or "image"
            c, h, w = shape
            done = [f"read a {width}x{height} {kind}"]
            target = "L" if c == 1 else "RGB"
            if im.mode != target:
                converted = im.convert(target)
                done.append("greyscale" if c == 1 else "RGB")
            else:
                converted = im.copy()
            if converted.size != (w, h):
                converted = converted.resize((w, h), Image.Resampling.BILINEAR)
                done.append(f"resized to {w}x{h}")
            array = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8)
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ApiError(400, "the field 'image' is not a readable PNG or JPEG file.") from None
    return array.view(h, w, c).permute(2, 0, 1).contiguous(), done


# ----------------------------------------------------------------------------- the explorer


@dataclass(frozen=True)
class Explorer:
    """A run and what the API derives from its test set, computed once on the run's device;
    read-only afterwards."""

    run: Run
    images: Tensor  # (N, C, H, W) the first N_MAP test images as the model sees them, on its device
    labels: list[int] | None
    classes: list[str] | None
    mu: Tensor  # (N, D)
    kl_per_dim: list[float]
    active: list[int]
    map_mean: Tensor  # (D,) the default map (latent or PCA)
    map_basis: Tensor  # (2, D)
    map_method: str

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> Explorer:
        """The explorer of a run, its model on `device` (cpu, cuda, auto: `runs.load_run`)."""
        run = load_run(run_dir, "vae", device)
        classes = load_configured(run.config.data).classes
        # the first N_MAP test images, binarized on the CPU as `vaekit eval` does
        return cls.of(run, run.images("test", N_MAP), run.labels("test", N_MAP), classes)

    @classmethod
    def of(cls, run: Run, images: Tensor, labels: Tensor | None, classes: Sequence[str] | None) -> Explorer:
        """The explorer of a loaded run over test images (N, C, H, W) as its model sees them (on any
        device: copied to the model's), their labels and the class names: what the API derives from
        them, computed on the model's device."""
        with torch.inference_mode():
            images = images.to(placement(run.model)[1])
            mu, logvar = run.model.encode(images)
            kl = gaussian_kl_per_dim(mu, logvar).double().mean(dim=0).cpu()
            variance = active_units(mu)[1].cpu()
            order = sorted(range(mu.shape[1]), key=lambda d: -float(kl[d]))
            active = [d for d in order if float(variance[d]) > ACTIVE_THRESHOLD]
            mean, basis, method = default_map(mu)
        return cls(run, images, None if labels is None else [int(v) for v in labels], None if classes is None
                   else list(classes), mu, [float(v) for v in kl], active, mean, basis, method)

    @property
    def model(self) -> Any:
        return self.run.model

    @property
    def device(self) -> torch.device:
        """Where the model, the images and the codes are."""
        return self.mu.device

    @property
    def dim(self) -> int:
        return int(self.model.latent_dim)

    def latent(self, value: object, what: str = "z") -> Tensor:
        z = numbers(value, what, self.dim)
        if max(abs(v) for v in z) > Z_MAX:
            raise ApiError(422, f"{what} has a coordinate beyond the explorer's clamp of |z| <= {Z_MAX:g}.")
        return torch.tensor([z], dtype=self.mu.dtype, device=self.device)

    def index(self, value: object, what: str) -> int:
        return as_int(value, what, 0, len(self.images) - 1)

    def prepare(self, pixels: Tensor) -> Tensor:
        """uint8 (C, H, W) -> x (1, C, H, W) as the model saw its test images (binarized, or
        dequantized, once with the evaluation seed, on the CPU), on the explorer's device."""
        return eval_images(pixels.unsqueeze(0), self.run.config.resolved_binarize()).to(self.device)

    # --------------------------------------------------------------------- endpoints

    def info(self, query: dict[str, str], _body: Any) -> dict[str, Any]:
        return {"latent_dim": self.dim, "image_shape": list(self.model.image_shape), "classes": self.classes,
                "active": self.active, "kl_per_dim": self.kl_per_dim, "clamp": Z_MAX,
                "test_images": len(self.images), "likelihood": self.model.likelihood,
                "dataset": self.run.config.data.name, "binarize": self.run.config.resolved_binarize(),
                "decoder": "factorized" if getattr(self.model, "p_ar", None) is None else "autoregressive",
                "device": str(self.device)}

    def map(self, query: dict[str, str], _body: Any) -> dict[str, Any]:
        if "dims" in query:
            parts = query["dims"].split(",")
            if len(parts) != 2 or not all(_INT.fullmatch(p) for p in parts):
                raise ApiError(400, "dims must be two latent dimensions, as in dims=0,1.")
            a, b = (as_int(int(p), "each of dims", 0, self.dim - 1) for p in parts)
            if a == b:
                raise ApiError(400, "dims must name two different latent dimensions.")
            basis = torch.zeros(2, self.dim, dtype=self.mu.dtype, device=self.device)
            basis[0, a] = basis[1, b] = 1.0
            mean = self.mu.mean(dim=0)
            mean[a] = mean[b] = 0.0
            method = "dims"
        else:
            mean, basis, method = self.map_mean, self.map_basis, self.map_method
        points = ((self.mu - mean) @ basis.T).to("cpu", torch.float64)
        return {"method": method, "points": points.round(decimals=DECIMALS).tolist(),
                "labels": self.labels, "mean": mean.cpu().tolist(), "basis": basis.cpu().tolist()}

    def decode(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        check_fields(body, ("z",), ("sample", "seed"))
        z = self.latent(body["z"])
        if not isinstance(body.get("sample", False), bool):
            raise ApiError(400, "the field 'sample' must be true or false.")
        mean = self.model.decode_mean(z)[0]
        out = image_json(mean)
        if body.get("sample", False):
            seed = as_int(body.get("seed", 0), "seed", 0, SEED_MAX)
            generator = torch.Generator(device=self.device).manual_seed(seed)
            drawn = self.model.draw_x(z, generator)[0]  # x ~ p(x|z)
            out |= {"sample": image_json(drawn), "seed": seed}
        elif "seed" in body:
            raise ApiError(400, "the field 'seed' is only taken with \"sample\": true.")
        return out

    def code(self, query: dict[str, str], _body: Any) -> dict[str, Any]:
        i = query_int(query, "index", 0, len(self.images) - 1)
        return {"index": i, "z": self.mu[i].cpu().tolist(), "image": image_json(self.images[i]),
                "label": None if self.labels is None else self.labels[i]}

    def interpolate(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        check_fields(body, ("a", "b", "steps"))
        a, b = self.index(body["a"], "a"), self.index(body["b"], "b")
        steps = as_int(body["steps"], "steps", 2, MAX_STEPS)
        t = torch.linspace(0.0, 1.0, steps, dtype=self.mu.dtype, device=self.device)[:, None]
        z = self.mu[a] + t * (self.mu[b] - self.mu[a])
        return {"t": t[:, 0].cpu().tolist(), "images": [image_json(x) for x in self.model.decode_mean(z)]}

    def encode(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        c, h, w = self.model.image_shape
        if "pixels" in body:
            check_fields(body, ("pixels",))
            values = numbers(body["pixels"], "pixels", c * h * w)
            if min(values) < 0.0 or max(values) > 1.0:
                raise ApiError(400, "pixels must be numbers between 0 and 1.")
            unit = torch.tensor(values, dtype=torch.float32, device="cpu").view(c, h, w)  # from JSON
            done = ["pixels as given"]
            if self.run.config.resolved_binarize() == "none":
                x = unit.unsqueeze(0).to(self.device)
            else:
                x = self.prepare(torch.round(unit * 255.0).to(torch.uint8))
        else:
            check_fields(body, ("image",))
            pixels, done = decode_upload(body["image"], (c, h, w))
            x = self.prepare(pixels)
        mode = self.run.config.resolved_binarize()
        if mode == "dequantize":
            done.append(f"dequantized once, (pixel + u)/256 with seed {EVAL_SEED}, as the test images are")
        elif mode != "none":
            done.append(f"binarized once with seed {EVAL_SEED}, as the test images are")
        mu, _ = self.model.encode(x)
        eps_seed = torch.Generator(device="cpu").manual_seed(IWAE_SEED)  # eps: drawn on the CPU, then copied
        nll = estimate_batch(x, self.model, IWAE_K, generator=eps_seed).nll
        point = ((mu[0] - self.map_mean) @ self.map_basis.T).cpu().tolist()
        return {"z": mu[0].cpu().tolist(), "reconstruction": image_json(self.model.decode_mean(mu)[0]),
                "nll": float(nll[0]), "k": IWAE_K, "point": point, "input": image_json(x[0]),
                "converted": ", ".join(done)}

    def samples(self, query: dict[str, str], _body: Any) -> dict[str, Any]:
        n = query_int(query, "n", 1, MAX_SAMPLES, default=16)
        seed = query_int(query, "seed", 0, SEED_MAX, default=0)
        images = self.model.sample(n, torch.Generator(device=self.device).manual_seed(seed))
        return {"seed": seed, "images": [image_json(x) for x in images]}


def default_map(mu: Tensor) -> tuple[Tensor, Tensor, str]:
    """(mean, basis (2, D), method) of the plane the codes are shown on: the latent plane itself for
    D <= 2 (mean 0, identity basis), else the two leading principal axes of the codes (SVD); on mu's
    device."""
    d = mu.shape[1]
    if d <= 2:
        basis = torch.eye(2, d, dtype=mu.dtype, device=mu.device)
        return torch.zeros(d, dtype=mu.dtype, device=mu.device), basis, "latent"
    mean = mu.mean(dim=0)
    _, _, vh = torch.linalg.svd(mu - mean, full_matrices=False)
    return mean, vh[:2].clone(), "pca"


# ----------------------------------------------------------------------------- HTTP

Endpoint = Callable[[Explorer, dict[str, str], Any], dict[str, Any]]
# path -> (method, handler, query parameters it takes)
ROUTES: dict[str, tuple[str, Endpoint, tuple[str, ...]]] = {
    "/api/info": ("GET", Explorer.info, ()),
    "/api/map": ("GET", Explorer.map, ("dims",)),
    "/api/decode": ("POST", Explorer.decode, ()),
    "/api/code": ("GET", Explorer.code, ("index",)),
    "/api/interpolate": ("POST", Explorer.interpolate, ()),
    "/api/encode": ("POST", Explorer.encode, ()),
    "/api/samples": ("GET", Explorer.samples, ("n", "seed")),
}


def static_files() -> set[str]:
    """The names a GET /static/NAME may ask for: regular files directly in static/."""
    try:
        return {e.name for e in os.scandir(STATIC) if e.is_file(follow_symlinks=False)}
    except OSError:
        return set()


class Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    timeout = TIMEOUT

    def version_string(self) -> str:
        return "vaekit-serve"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request, and never a traceback."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, an unsupported method) as JSON, with
        a fixed sentence (http.server's would quote the request); always with headers, even for a
        request line too broken to say its HTTP version."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        self.send_json(code, {"error": OWN_ERRORS.get(code, "the request could not be read.")})

    def send_json(self, status: int, obj: Any) -> None:
        self.send_bytes(status, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def send_bytes(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(411, "a POST needs a Content-Length header and a JSON body.")
        if not re.fullmatch(r"[0-9]{1,12}", length.strip()):
            raise ApiError(400, "the Content-Length header must be a number of bytes.")
        n = int(length)
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"the body is larger than {MAX_BODY // 2**20} MB.")
        return parse_body(self.rfile.read(n))

    def dispatch(self) -> None:
        try:
            url = urlsplit(self.path)
            path = url.path
            if path in ("/", "/index.html"):
                self.method_is("GET")
                page = STATIC / "index.html"
                data = page.read_bytes() if "index.html" in static_files() else PLACEHOLDER
                return self.send_bytes(200, data, TYPES[".html"])
            if path.startswith("/static/"):
                self.method_is("GET")
                name = path.removeprefix("/static/")
                if name not in static_files():
                    raise ApiError(404, "no such file in the explorer's static folder.")
                kind = TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
                return self.send_bytes(200, (STATIC / name).read_bytes(), kind)
            route = ROUTES.get(path)
            if route is None:
                raise ApiError(404, f"no such page or API endpoint; the API is {', '.join(ROUTES)}.")
            method, endpoint, params = route
            self.method_is(method)
            query = parse_query(url.query, params)
            body = self.read_body() if method == "POST" else None
            with torch.inference_mode():
                out = endpoint(self.server.explorer, query, body)
            self.send_json(200, out)
        except ApiError as err:
            self.send_json(err.status, {"error": err.message})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # a bug: answered, never a traceback on the console
            self.send_json(500, {"error": f"internal error of the explorer ({type(err).__name__})."})

    def method_is(self, method: str) -> None:
        if self.command != method:
            raise ApiError(405, f"this address answers {method} only, not {self.command[:10]}.")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch


class ExplorerServer(ThreadingHTTPServer):
    """A thread per connection over one read-only `Explorer`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], explorer: Explorer) -> None:
        self.explorer = explorer
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """As HTTPServer's, without its reverse DNS lookup of the host (slow on a machine without DNS)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke mid-request: nothing to print."""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                device: str | torch.device = "cpu") -> ExplorerServer:
    """The explorer of `run_dir`, its model on `device` (cpu, cuda, auto), bound to host:port (0: a
    free port), not yet serving: call `serve_forever()` (a thread in tests), then `shutdown()` and
    `server_close()`. A bad run is a CheckpointError, a device that is not there or an address that
    cannot be bound a ConfigError (one sentence each)."""
    explorer = Explorer.load(run_dir, device)
    try:
        return ExplorerServer((host, port), explorer)
    except (OSError, OverflowError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"cannot listen on {host}:{port} ({why.rstrip('.').lower()}).") from None
