"""`vaekit serve`'s JSON API, over HTTP on 127.0.0.1 against a tiny digits run: each endpoint's
answer against the same thing computed directly from the model, each bad input's 4xx sentence (and
the server still answering after it), the static whitelist, concurrency, and a run directory left
as it was."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from serve_client import LATENT, Client, raw_socket, serve

from eval_runs import make_classifier_run, make_run
from vaekit import cli
from vaekit.data.binarize import eval_images
from vaekit.evaluate.iwae import estimate_batch
from vaekit.runs import CONFIG, MODEL, load_run, save_weights
from vaekit.serve import app, static
from vaekit.serve.api import Z_MAX
from vaekit.serve.explorer import N_MAP
from vaekit.serve.images import MAX_UPLOAD
from vaekit.serve.request import MAX_BODY


def digest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def before(run_dir: Path) -> dict[str, str]:
    return digest(run_dir)


@pytest.fixture(scope="module")
def client(run_dir: Path, before: dict[str, str]) -> Iterator[Client]:
    yield from serve(run_dir)


@pytest.fixture(scope="module")
def model(run_dir: Path) -> Any:
    return load_run(run_dir, "vae").model


@pytest.fixture(scope="module")
def test_x(run_dir: Path) -> torch.Tensor:
    return load_run(run_dir, "vae").images("test", N_MAP)


def pixels_of(t: torch.Tensor) -> list[float]:
    return t.double().clamp(0, 1).round(decimals=4).flatten().tolist()


def assert_image(img: dict[str, Any], expected: torch.Tensor) -> None:
    c, h, w = expected.shape
    assert (img["channels"], img["height"], img["width"]) == (c, h, w)
    assert len(img["pixels"]) == c * h * w
    assert all(0.0 <= p <= 1.0 for p in img["pixels"])
    assert img["pixels"] == pytest.approx(pixels_of(expected), abs=1.5e-4)


# ----------------------------------------------------------------------------- good answers


def test_info(client: Client, model: Any, test_x: torch.Tensor) -> None:
    info = client.get("/api/info")
    assert info["latent_dim"] == LATENT
    assert info["image_shape"] == [1, 8, 8]
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["clamp"] == Z_MAX
    assert info["test_images"] == len(test_x)
    assert info["decoder"] == "factorized"
    with torch.inference_mode():
        mu, logvar = model.encode(test_x)
    kl = (-0.5 * (logvar + 1 - logvar.exp() - mu**2)).double().mean(0)
    assert info["kl_per_dim"] == pytest.approx(kl.tolist(), rel=1e-5, abs=1e-7)
    variance = mu.double().var(0, correction=0)
    active = [d for d in sorted(range(LATENT), key=lambda d: -kl[d]) if variance[d] > 0.01]
    assert info["active"] == active


def test_pca_map(client: Client, model: Any, test_x: torch.Tensor) -> None:
    m = client.get("/api/map")
    assert m["method"] == "pca"
    assert len(m["points"]) == len(test_x) == len(m["labels"])
    basis = torch.tensor(m["basis"], dtype=torch.float64)
    assert basis.shape == (2, LATENT)
    assert torch.allclose(basis @ basis.T, torch.eye(2, dtype=torch.float64), atol=1e-5)
    with torch.inference_mode():
        mu = model.encode(test_x)[0].double()
    mean = torch.tensor(m["mean"], dtype=torch.float64)
    assert torch.allclose(mean, mu.mean(0), atol=1e-5)
    points = torch.tensor(m["points"], dtype=torch.float64)
    assert torch.allclose(points, (mu - mean) @ basis.T, atol=2e-4)
    # the first axis is the direction of largest variance of the codes
    top = torch.linalg.eigh(torch.cov(mu.T))[1][:, -1]
    assert abs(float(top @ basis[0])) == pytest.approx(1.0, abs=1e-4)


def test_map_of_chosen_dims(client: Client, model: Any, test_x: torch.Tensor) -> None:
    m = client.get("/api/map?dims=2,0")
    assert m["method"] == "dims"
    assert m["basis"] == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    with torch.inference_mode():
        mu = model.encode(test_x)[0]
    assert torch.allclose(torch.tensor(m["points"]), mu[:, [2, 0]], atol=2e-4)
    assert m["mean"][0] == m["mean"][2] == 0.0
    assert m["mean"][1] == pytest.approx(float(mu[:, 1].mean()), abs=1e-5)


def test_latent_map_of_a_2d_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run2", latent=2, epochs=1)
    for c in serve(run):
        m = c.get("/api/map")
        assert m["method"] == "latent" and m["mean"] == [0.0, 0.0]
        assert m["basis"] == [[1.0, 0.0], [0.0, 1.0]]
        code = c.get("/api/code?index=5")
        assert m["points"][5] == pytest.approx(code["z"], abs=1e-4)


def test_decode_is_the_models_decode(client: Client, model: Any) -> None:
    z = [0.5, -1.25, 2.0]
    out = client.post("/api/decode", {"z": z})
    with torch.inference_mode():
        expected = model.decode_mean(torch.tensor([z]))[0]
    assert_image(out, expected)
    assert "sample" not in out


def test_decode_with_a_sample(client: Client, model: Any) -> None:
    z = [0.1, 0.2, -0.3]
    a = client.post("/api/decode", {"z": z, "sample": True, "seed": 7})
    b = client.post("/api/decode", {"z": z, "sample": True, "seed": 7})
    assert a == b and a["seed"] == 7
    assert set(a["sample"]["pixels"]) <= {0.0, 1.0}
    assert client.post("/api/decode", {"z": z, "sample": True})["seed"] == 0


def test_an_autoregressive_decoder_is_served(tmp_path: Path) -> None:
    """A run with an autoregressive decoder: /api/info says so, /api/decode shows its mean-field
    pass (`model.decode_mean`) and its sample is the model's own draw x ~ p(x|z), pixel by pixel."""
    run = make_run(tmp_path / "ar", latent=LATENT, autoregressive=16)
    ar_model = load_run(run, "vae").model
    with torch.no_grad():  # a visible autoregressive term (a short run leaves it near zero)
        ar_model.p_ar.out.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    save_weights(run, dict(ar_model.state_dict()), json.loads((run / CONFIG).read_text()))
    for name in ("checkpoint.safetensors", "checkpoint.json"):  # it records the trained model file
        (run / name).unlink()
    z = [0.3, -0.2, 1.0]
    for ar_client in serve(run):
        assert ar_client.get("/api/info")["decoder"] == "autoregressive"
        out = ar_client.post("/api/decode", {"z": z, "sample": True, "seed": 5})
    with torch.inference_mode():
        zt = torch.tensor([z])
        assert_image(out, ar_model.decode_mean(zt)[0])
        drawn = ar_model.draw_x(zt, torch.Generator().manual_seed(5))[0]
        shown = ar_model.decode_mean(zt)[0]
        factorized = torch.sigmoid(ar_model.decode_net(zt))[0]
    assert out["sample"]["pixels"] == pixels_of(drawn)
    assert (shown - factorized).abs().max() > 0.01  # not the factorized decoder's mean


def test_code_is_the_encoders_mean(client: Client, model: Any, test_x: torch.Tensor, run_dir: Path) -> None:
    labels = load_run(run_dir, "vae").labels("test")
    for i in (0, 17, len(test_x) - 1):
        out = client.get(f"/api/code?index={i}")
        with torch.inference_mode():
            mu = model.encode(test_x[i : i + 1])[0][0]
        assert out["z"] == pytest.approx(mu.tolist(), abs=1e-6)
        assert_image(out["image"], test_x[i])
        assert out["label"] == int(labels[i])


def test_interpolation_ends_at_the_codes(client: Client, model: Any) -> None:
    a, b = client.get("/api/code?index=3"), client.get("/api/code?index=40")
    out = client.post("/api/interpolate", {"a": 3, "b": 40, "steps": 6})
    assert len(out["images"]) == 6
    with torch.inference_mode():
        za, zb = torch.tensor([a["z"]]), torch.tensor([b["z"]])
        mid = model.decode_mean(za + 0.4 * (zb - za))[0]
        assert_image(out["images"][0], model.decode_mean(za)[0])
        assert_image(out["images"][-1], model.decode_mean(zb)[0])
    assert_image(out["images"][2], mid)


def test_samples(client: Client, model: Any) -> None:
    out = client.get("/api/samples?n=5&seed=11")
    with torch.inference_mode():
        expected = model.sample(5, torch.Generator().manual_seed(11))
    assert len(out["images"]) == 5
    for img, x in zip(out["images"], expected, strict=True):
        assert_image(img, x)
    assert len(client.get("/api/samples")["images"]) == 16


def test_encode_pixels(client: Client, model: Any, test_x: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(3)
    unit = torch.rand((1, 8, 8), generator=gen)
    out = client.post("/api/encode", {"pixels": unit.flatten().tolist()})
    x = eval_images(torch.round(unit * 255).to(torch.uint8).unsqueeze(0), "dynamic")  # a binary run
    with torch.inference_mode():
        mu = model.encode(x)[0]
        nll = estimate_batch(x, model, 200, generator=torch.Generator().manual_seed(0)).nll
        recon = model.decode_mean(mu)[0]
    assert out["z"] == pytest.approx(mu[0].tolist(), abs=1e-5)
    assert out["nll"] == pytest.approx(float(nll[0]), rel=1e-5)
    assert 0 < out["nll"] < 64 * math.log(2) * 4  # nats, of a 64-pixel binary image
    assert_image(out["reconstruction"], recon)
    m = client.get("/api/map")
    point = (torch.tensor(out["z"]) - torch.tensor(m["mean"])) @ torch.tensor(m["basis"]).T
    assert out["point"] == pytest.approx(point.tolist(), abs=1e-4)
    assert "binarized" in out["converted"]
    assert out["converted"].startswith("pixels rounded to 8 bits")  # as x above was made: it says so


def png(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_encode_an_upload(client: Client, model: Any) -> None:
    gen = torch.Generator().manual_seed(5)
    rgb = (torch.rand((20, 16, 3), generator=gen) * 255).to(torch.uint8)
    image = Image.frombytes("RGB", (16, 20), rgb.numpy().tobytes())
    out = client.post("/api/encode", {"image": png(image)})
    # the run's image_fit (crop, its default): the centre 16x16 of the 16x20 image, then 8x8
    small = image.convert("L").crop((0, 2, 16, 18)).resize((8, 8), Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8).view(1, 1, 8, 8)
    with torch.inference_mode():
        mu = model.encode(eval_images(pixels, "dynamic"))[0]
    assert out["z"] == pytest.approx(mu[0].tolist(), abs=1e-5)
    assert "resized to 8 wide and 8 high (centre-cropped" in out["converted"], out["converted"]
    assert "greyscale" in out["converted"]
    jpeg = client.post("/api/encode", {"image": "data:image/jpeg;base64," + png(image, "JPEG")})
    assert len(jpeg["z"]) == LATENT and math.isfinite(jpeg["nll"])


def test_a_16_bit_upload_is_read_as_its_high_byte(client: Client) -> None:
    """A 16-bit grey PNG (Pillow mode I;16) reads as the 8-bit PNG of v >> 8, as image folders do
    (Pillow's own convert would clip every value over 255 to white)."""
    wide = np.random.default_rng(3).integers(0, 65536, (8, 8), dtype=np.uint16)
    sixteen = client.post("/api/encode", {"image": png(Image.fromarray(wide))})
    eight = client.post("/api/encode", {"image": png(Image.fromarray((wide >> 8).astype(np.uint8)))})
    assert (sixteen["input"], sixteen["z"]) == (eight["input"], eight["z"])
    assert "16-bit" in sixteen["converted"]


def test_an_upload_is_turned_upright_by_its_exif_orientation(client: Client) -> None:
    """A JPEG stored 6x8 (HxW) with EXIF orientation 6 reads as the PNG of what Pillow's
    `ImageOps.exif_transpose` shows (8x6), as image folders read it."""
    exif = Image.Exif()
    exif[0x0112] = 6  # ExifTags.Base.Orientation: rotate 90 clockwise to view
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (6, 8), dtype=np.uint8)).save(
        buf, format="JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buf.getvalue())) as stored:
        shown = ImageOps.exif_transpose(stored)
    assert shown.size == (6, 8)
    turned = client.post("/api/encode", {"image": base64.b64encode(buf.getvalue()).decode()})
    upright = client.post("/api/encode", {"image": png(shown)})
    assert (turned["input"], turned["z"]) == (upright["input"], upright["z"])
    assert "turned upright by its EXIF orientation" in turned["converted"]
    assert not any("EXIF" in step for step in upright["converted"])


# ----------------------------------------------------------------------------- static files


def test_page_and_static_whitelist(client: Client) -> None:
    status, headers, body = client.raw("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and body
    names = static.static_files()
    for name in names:
        assert client.raw("GET", f"/static/{name}")[0] == 200
    for path in ("/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2fapp.py",
                 "/static/", "/static/../app.py", "/static/./index.html", "/../../etc/passwd",
                 "/static/%2e%2e%2fapp.py", "/static//etc/passwd", "/static/nope.js"):
        status, headers, body = client.raw("GET", path)
        assert status == 404, path
        assert b"root:" not in body and b"import" not in body
        assert "error" in json.loads(body)


def test_a_percent_encoded_unreserved_character_is_that_character(client: Client) -> None:
    """RFC 3986 6.2.2.2: /api/%69nfo is /api/info (it was a 404); an encoded '/' is not a separator."""
    status, _, body = client.raw("GET", "/api/info")
    for path in ("/api/%69nfo", "/%61pi/%69%6E%66%6f"):
        assert client.raw("GET", path)[::2] == (status, body), path
    for path in ("/api%2Finfo", "/api%2Dx/../info"):
        assert client.raw("GET", path)[0] == 404, path


def test_placeholder_page_without_static(client: Client, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static, "STATIC", tmp_path / "none")
    status, _, body = client.raw("GET", "/")
    assert status == 200 and b"not installed yet" in body
    assert client.raw("GET", "/static/index.html")[0] == 404


# ----------------------------------------------------------------------------- bad input


Z_OK = [0.0, 0.0, 0.0]
BAD: list[tuple[str, str, Any, int]] = [
    ("POST", "/api/decode", {"z": [0.0, 0.0]}, 400),  # wrong length
    ("POST", "/api/decode", {"z": [0, "a", 0]}, 400),
    ("POST", "/api/decode", {"z": [0, True, 0]}, 400),
    ("POST", "/api/decode", {"z": "0,0,0"}, 400),
    ("POST", "/api/decode", {"z": [0, 0, 6.5]}, 422),
    ("POST", "/api/decode", {"z": [0, -1e9, 0]}, 422),
    ("POST", "/api/decode", {"z": [0, 10**400, 0]}, 422),
    ("POST", "/api/decode", {"z": Z_OK, "extra": 1}, 400),
    ("POST", "/api/decode", {"Z": Z_OK}, 400),
    ("POST", "/api/decode", {}, 400),
    ("POST", "/api/decode", [0, 0, 0], 400),
    ("POST", "/api/decode", "z", 400),
    ("POST", "/api/decode", {"z": Z_OK, "sample": "yes"}, 400),
    ("POST", "/api/decode", {"z": Z_OK, "seed": 3}, 400),
    ("POST", "/api/decode", {"z": Z_OK, "sample": True, "seed": -1}, 400),
    ("POST", "/api/decode", {"z": Z_OK, "sample": True, "seed": 2**40}, 400),
    ("GET", "/api/decode", None, 405),
    ("PUT", "/api/decode", {"z": Z_OK}, 405),
    ("POST", "/api/info", {}, 405),
    ("DELETE", "/api/info", None, 405),
    ("GET", "/api/info?x=1", None, 400),
    ("GET", "/api/nothing", None, 404),
    ("GET", "/api", None, 404),
    ("GET", "/api/code", None, 400),
    ("GET", "/api/code?index=-1", None, 400),
    ("GET", "/api/code?index=180", None, 400),
    ("GET", "/api/code?index=1.5", None, 400),
    ("GET", "/api/code?index=1&index=2", None, 400),
    ("GET", "/api/code?index=99999999999999999999", None, 400),
    ("GET", "/api/map?dims=0", None, 400),
    ("GET", "/api/map?dims=1,1", None, 400),
    ("GET", "/api/map?dims=0,3", None, 400),
    ("GET", "/api/map?dims=a,b", None, 400),
    ("GET", "/api/samples?n=0", None, 400),
    ("GET", "/api/samples?n=65", None, 400),
    ("GET", "/api/samples?seed=-3", None, 400),
    ("GET", "/api/samples?n=", None, 400),
    ("POST", "/api/interpolate", {"a": 0, "b": 1, "steps": 1}, 400),
    ("POST", "/api/interpolate", {"a": 0, "b": 1, "steps": 33}, 400),
    ("POST", "/api/interpolate", {"a": 0, "b": 180, "steps": 4}, 400),
    ("POST", "/api/interpolate", {"a": 0.0, "b": 1, "steps": 4}, 400),
    ("POST", "/api/interpolate", {"a": 0, "b": 1}, 400),
    ("POST", "/api/encode", {"pixels": [0.5] * 63}, 400),
    ("POST", "/api/encode", {"pixels": [1.5] * 64}, 400),
    ("POST", "/api/encode", {"pixels": [-0.1] * 64}, 400),
    ("POST", "/api/encode", {"pixels": [0.5] * 64, "image": "x"}, 400),
    ("POST", "/api/encode", {}, 400),
    ("POST", "/api/encode", {"image": "not base64!"}, 400),
    ("POST", "/api/encode", {"image": base64.b64encode(b"GIF89a not a png").decode()}, 400),
    ("POST", "/api/encode", {"image": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode()}, 400),
    ("POST", "/api/encode", {"image": 5}, 400),
    # a PNG of a header and an end, no image data: Pillow's verify raises IndexError
    ("POST", "/api/encode", {"image": "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAAElFTkSuQmCC"}, 400),
]


def check_error(status: int, body: Any, expected: int, one_sentence: Callable[..., None]) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    one_sentence(body["error"])


@pytest.mark.parametrize(("method", "path", "body", "expected"), BAD,
                         ids=[f"{m} {p} {i}" for i, (m, p, _, _) in enumerate(BAD)])
def test_bad_requests_are_one_sentence(client: Client, one_sentence: Callable[..., None], method: str,
                                       path: str, body: Any, expected: int) -> None:
    status, out = client.call(method, path, body)
    check_error(status, out, expected, one_sentence)
    assert client.get("/api/info")["latent_dim"] == LATENT  # still answering


@pytest.mark.parametrize("index", ["9" * 13, "-" + "9" * 20])
def test_an_integer_too_long_to_read_is_called_out_of_range(client: Client, index: str) -> None:
    """An integer of more digits than the query reads is out of range, not 'not an integer'."""
    status, out = client.call("GET", f"/api/code?index={index}", None)
    assert status == 400 and "must be between 0 and" in out["error"], out
    assert f"{len(index.lstrip('-'))}-digit number" in out["error"] and "an integer" not in out["error"]


@pytest.mark.parametrize(("body", "headers", "expected"), [
    (b"{not json", {}, 400),
    (b'{"z": [NaN, 0, 0]}', {}, 400),
    (b'{"z": [Infinity, 0, 0]}', {}, 400),
    (b'{"z": [0, -Infinity, 0]}', {}, 400),
    (b'{"z": [1e400, 0, 0]}', {}, 422),  # finite as written, too large for a float: too large
    (b'{"z": [' + b"9" * 5000 + b', 0, 0]}', {}, 422),  # more digits than int() reads: too large
    (b'{"z": [-' + b"9" * 5000 + b', 0, 0]}', {}, 422),
    (b'{"z": [0, 0, 0], "z": [1, 1, 1]}', {}, 400),
    (b"\xff\xfe{}", {}, 400),
    (b"[" * 100_000, {}, 400),
    (b'{"a": ' * 100_000, {}, 400),
    (b"", {}, 400),
    (b"{}", {"Content-Length": "abc"}, 400),
    (b"{}", {"Content-Length": str(MAX_BODY + 1)}, 413),
    (b"{}", {"Content-Length": "9" * 13}, 413),  # a number of bytes, larger than any body taken
    (b"{}", {"Content-Length": "9" * 5000}, 413),
], ids=lambda v: repr(v)[:30])
def test_bad_bodies(client: Client, one_sentence: Callable[..., None], body: bytes,
                    headers: dict[str, str], expected: int) -> None:
    try:
        json_body = {"Content-Type": "application/json"} | headers
        status, h, out = client.raw("POST", "/api/decode", body, json_body)
    except (ConnectionResetError, BrokenPipeError):  # a 413 closes before the body is sent
        assert expected == 413
        return
    check_error(status, json.loads(out), expected, one_sentence)
    assert client.get("/api/info")["latent_dim"] == LATENT


def test_post_without_content_length_and_garbage_requests(client: Client,
                                                          one_sentence: Callable[..., None]) -> None:
    reply = raw_socket(client, b"POST /api/decode HTTP/1.0\r\nHost: localhost\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split()[1] == b"411"
    one_sentence(json.loads(body)["error"])
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n",
                    b"\x00\x01\x02 / HTTP/1.0\r\n\r\n"):
        head, _, body = raw_socket(client, garbage).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/") and head.split()[1] in (b"400", b"414", b"431"), head
        one_sentence(json.loads(body)["error"])
    head, _, body = raw_socket(client, b"FOO /api/info HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")
    assert head.split()[1] == b"405" and b"\r\nAllow: GET, HEAD" in head, head
    one_sentence(json.loads(body)["error"])
    assert client.get("/api/info")["latent_dim"] == LATENT


@pytest.mark.parametrize("body", [{}, {"pixel": [0]}, {"image": "x", "extra": 1}])
def test_encode_names_both_of_its_forms(client: Client, one_sentence: Callable[..., None],
                                        body: dict[str, Any]) -> None:
    status, out = client.call("POST", "/api/encode", body)
    check_error(status, out, 400, one_sentence)
    assert "'image'" in out["error"] and "'pixels'" in out["error"]


@pytest.mark.parametrize("image", ["", "x", 5])
def test_encode_of_both_forms_says_to_give_one(client: Client, one_sentence: Callable[..., None],
                                               image: object) -> None:
    """Both forms at once: a 400 saying to give one, not that 'image' is unknown."""
    status, out = client.call("POST", "/api/encode", {"image": image, "pixels": [0] * 64})
    check_error(status, out, 400, one_sentence)
    assert "'image'" in out["error"] and "'pixels'" in out["error"] and "not both" in out["error"]
    assert "unknown" not in out["error"]


def test_uploads_are_decoded_two_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each decode may take hundreds of MB on its way to the model's size: 8 at once wait their turn."""
    import threading
    import time as clock

    from vaekit.serve import images

    busy, most, lock = [0], [0], threading.Lock()

    def slow(data: bytes, shape: tuple[int, int, int], fit: str) -> tuple[torch.Tensor, list[str]]:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        clock.sleep(0.05)
        with lock:
            busy[0] -= 1
        return torch.zeros(shape, dtype=torch.uint8), []

    monkeypatch.setattr(images, "_decode", slow)
    text = png(Image.new("L", (8, 8)))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: images.decode_upload(text, (1, 8, 8)), range(8)))
    assert most[0] == 2


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC-32 of type and data (PNG specification, 5.3)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_uploads_too_large(client: Client, one_sentence: Callable[..., None]) -> None:
    huge = Image.new("L", (4200, 4100))  # more pixels than MAX_UPLOAD_PIXELS, a small file
    status, out = client.call("POST", "/api/encode", {"image": png(huge)})
    check_error(status, out, 413, one_sentence)
    for size in ((1, 16384), (16384, 1)):  # few pixels, a side over MAX_UPLOAD_SIDE
        status, out = client.call("POST", "/api/encode", {"image": png(Image.new("L", size))})
        check_error(status, out, 413, one_sentence)
        assert "side" in out["error"] and f"is {size[0]} wide and {size[1]} high" in out["error"], out

    # a header of 14,000 x 14,000 (more than Pillow opens at all), one row of pixels after it
    bomb = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 14000, 14000, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 14001)) + png_chunk(b"IEND", b""))
    status, out = client.call("POST", "/api/encode", {"image": base64.b64encode(bomb).decode()})
    check_error(status, out, 413, one_sentence)
    noise = base64.b64encode(torch.randint(0, 256, (MAX_UPLOAD + 10,), dtype=torch.uint8).numpy()
                             .tobytes()).decode()
    status, out = client.call("POST", "/api/encode", {"image": noise})
    check_error(status, out, 413, one_sentence)
    assert client.get("/api/info")["latent_dim"] == LATENT


# ----------------------------------------------------------------------------- concurrency, the run


def test_concurrent_requests_answer_as_sequential_ones(client: Client) -> None:
    gen = torch.Generator().manual_seed(1)
    jobs: list[tuple[str, str, Any]] = []
    for i in range(24):
        z = (torch.randn(LATENT, generator=gen) * 2).clamp(-5, 5).tolist()
        jobs.append(("POST", "/api/decode", {"z": z, "sample": True, "seed": i}))
        jobs.append(("GET", f"/api/code?index={i}", None))
        jobs.append(("GET", f"/api/samples?n=3&seed={i}", None))
    jobs.append(("POST", "/api/encode", {"pixels": [0.25] * 64}))
    jobs.append(("POST", "/api/interpolate", {"a": 1, "b": 2, "steps": 8}))
    sequential = [client.call(*job) for job in jobs]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda job: client.call(*job), jobs))
    assert concurrent == sequential
    assert all(status == 200 for status, _ in sequential)


def test_cli_refuses_a_bad_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               one_sentence: Callable[..., None]) -> None:
    assert cli.main(["serve", str(tmp_path / "missing"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit serve: error: ") and "Traceback" not in err
    one_sentence(err.removeprefix("vaekit serve: error: "), str(tmp_path / "missing"))
    classifier = make_classifier_run(tmp_path / "clf", epochs=1)
    assert cli.main(["serve", str(classifier), "--port", "0", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "classifier run" in err
    one_sentence(err.removeprefix("vaekit serve: error: "))


@pytest.mark.parametrize("damage", ["a VAE's model file", "config.json without its task"])
def test_a_damaged_classifier_run_is_named_as_classify_eval_names_it(
        run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        damage: str) -> None:
    """A classifier run whose model file is a VAE's, or whose config.json lost its "task" (so reads
    as a VAE's): serve names the file that is wrong as `vaekit classify eval` does (the model file;
    config.json, as lacking its "task"), not config.json as copied, nor a key of a classifier's
    config unknown to a VAE's."""
    classifier = make_classifier_run(tmp_path / "clf", epochs=1)
    if damage == "a VAE's model file":
        shutil.copy(run_dir / MODEL, classifier / MODEL)
    else:
        config = json.loads((classifier / CONFIG).read_text())
        del config["task"]
        (classifier / CONFIG).write_text(json.dumps(config))
    said = []
    for argv in (["classify", "eval", str(classifier)], ["serve", str(classifier), "--port", "0"]):
        capsys.readouterr()
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        said.append(err.split(": error: ", 1)[1])
    assert said[0] == said[1]
    if damage == "a VAE's model file":
        one_sentence(said[1], str(classifier / MODEL), f"{classifier / MODEL} is not this run's")
    else:
        one_sentence(said[1], f'{classifier / CONFIG} lacks "task": "classify"', "put back the config.json")
        assert "copied" not in said[1], said[1]


def test_cli_prints_the_address_and_warns_off_loopback(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(self: app.ExplorerServer, poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app.ExplorerServer, "serve_forever", stop)
    threads = torch.get_num_threads()
    try:
        assert cli.main(["serve", str(run_dir), "--port", "0", "--threads", "1"]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("http://127.0.0.1:") and out.strip().endswith("/")
        assert "warning" not in err
        assert cli.main(["serve", str(run_dir), "--host", "0.0.0.0", "--port", "0", "--threads", "1"]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("http://0.0.0.0:") and "warning" in err and "loopback" in err
        assert cli.main(["serve", str(run_dir), "--host", "127.1", "--port", "0", "--threads", "1"]) == 0
        out, err = capsys.readouterr()  # 127.1 is 127.0.0.1 as bound: loopback, no warning
        assert out.startswith("http://127.0.0.1:") and "warning" not in err
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("argv, words", [
    (["serve", "", "--port", "0"], ["RUN_DIR is empty"]),
    (["eval", " "], ["RUN_DIR is empty"]),
    (["serve", "RUN", "--host", ""], ["--host is empty", "every interface"]),
    (["serve", "RUN", "--port", "\u0661\u0662\u0663\u0664"], ["--port must be an integer"]),
    (["serve", "RUN", "--port", " 80"], ["--port must be an integer"]),
    (["serve", "RUN", "--port", "+0"], ["--port must be an integer"]),
])
def test_cli_refuses_an_empty_run_or_host_and_a_port_no_person_types(
        argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    """An empty RUN_DIR is not the current directory, an empty --host not every interface, and a
    port in other digits, with a sign or spaces is not read as a port."""
    argv = [a.encode().decode("unicode_escape") for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(w in err for w in words), err
    one_sentence(err.split(": error: ", 1)[1].rsplit("; see `", 1)[0] + ".")


def test_a_loopback_address_in_ipv6_form_is_loopback() -> None:
    assert app.is_loopback("::ffff:127.0.0.1") and app.is_loopback("::1") and app.is_loopback("localhost")
    assert not app.is_loopback("::ffff:10.0.0.1") and not app.is_loopback("0.0.0.0")


def test_the_run_directory_is_unchanged(client: Client, run_dir: Path, before: dict[str, str]) -> None:
    client.post("/api/encode", {"pixels": [0.5] * 64})  # after every request above
    assert digest(run_dir) == before


def test_pillows_repairs_print_nothing_on_the_servers_console(tmp_path: Path) -> None:
    """A palette PNG with its transparency in bytes (as pngquant writes them) decodes, and Pillow's
    UserWarning about it (with its source line) does not reach stderr, even with warnings on."""
    import subprocess
    import sys

    im = Image.new("P", (8, 8))
    im.putpalette([i % 256 for i in range(768)])
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=bytes([0, 128, 255, 7]))
    script = ("import sys\nfrom vaekit.serve.images import decode_upload\n"
              "x, done = decode_upload(sys.stdin.read(), (1, 8, 8))\nprint(tuple(x.shape), done)\n")
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], input=base64.b64encode(
        buf.getvalue()).decode(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "(1, 8, 8)" in done.stdout, done.stderr
    assert done.stderr == "", done.stderr
