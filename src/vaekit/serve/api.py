"""The explorer's JSON API: one handler per endpoint, each taking the explorer, the request's query
and its body (a JSON object, None for a GET), checking them, asking the explorer's model and answering
a JSON object built from CPU copies. `ROUTES` names each endpoint's address, method and query
parameters.

    GET  /api/info              latent_dim, image_shape, classes, active, kl_per_dim, clamp, test_images,
                                device
    GET  /api/map[?dims=a,b]    the test codes on a plane: method, points, labels, mean, basis
    POST /api/decode            {"z": [D], "sample"?: bool, "seed"?: int} -> an image (+ "sample", "seed")
    GET  /api/code?index=i      {"z", "image", "label"} of test image i
    POST /api/interpolate       {"a": i, "b": j, "steps": n} -> {"images": [...]}
    POST /api/encode            {"pixels": [C*H*W]} or {"image": base64 PNG/JPEG}
                                -> {"z", "reconstruction", "nll", "point", "converted"}
    GET  /api/samples?n=&seed=  {"images": [...]} decoded from z ~ N(0, I)

An image is as `images.image_json` writes it. A point (x, y) of the map is the latent z = mean +
x basis[0] + y basis[1]. A refused request is an `ApiError` (4xx and one sentence)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vaekit.config import SEED_MAX
from vaekit.serve.explorer import IWAE_K, Explorer
from vaekit.serve.images import DECIMALS, decode_upload, image_json
from vaekit.serve.request import INT_TEXT, ApiError, as_int, check_fields, numbers, query_int

Z_MAX = 6.0  # |z| beyond this is refused (422): the prior puts 2e-9 of its mass there
MAX_STEPS, MAX_SAMPLES = 32, 64


def latent(explorer: Explorer, value: object, what: str = "z") -> Tensor:
    """A JSON list of D numbers within the clamp -> z (1, D) on the explorer's device."""
    z = numbers(value, what, explorer.dim)
    if max(abs(v) for v in z) > Z_MAX:
        raise ApiError(422, f"{what} has a coordinate beyond the explorer's clamp of |z| <= {Z_MAX:g}.")
    return torch.tensor([z], dtype=explorer.mu.dtype, device=explorer.device)


def index(explorer: Explorer, value: object, what: str) -> int:
    return as_int(value, what, 0, len(explorer.images) - 1)


def info(explorer: Explorer, query: dict[str, str], _body: Any) -> dict[str, Any]:
    model = explorer.model
    return {"latent_dim": explorer.dim, "image_shape": list(model.image_shape), "classes": explorer.classes,
            "active": explorer.active, "kl_per_dim": explorer.kl_per_dim, "clamp": Z_MAX,
            "test_images": len(explorer.images), "likelihood": model.likelihood,
            "dataset": explorer.run.config.data.name, "binarize": explorer.binarize,
            "decoder": explorer.decoder, "device": str(explorer.device)}


def latent_map(explorer: Explorer, query: dict[str, str], _body: Any) -> dict[str, Any]:
    if "dims" in query:
        parts = query["dims"].split(",")
        if len(parts) != 2 or not all(INT_TEXT.fullmatch(p) for p in parts):
            raise ApiError(400, "dims must be two latent dimensions, as in dims=0,1.")
        a, b = (as_int(int(p), "each of dims", 0, explorer.dim - 1) for p in parts)
        if a == b:
            raise ApiError(400, "dims must name two different latent dimensions.")
        mean, basis = explorer.plane(a, b)
        method = "dims"
    else:
        mean, basis, method = explorer.map_mean, explorer.map_basis, explorer.map_method
    points = explorer.points(mean, basis)
    return {"method": method, "points": points.round(decimals=DECIMALS).tolist(),
            "labels": explorer.labels, "mean": mean.cpu().tolist(), "basis": basis.cpu().tolist()}


def decode(explorer: Explorer, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, ("z",), ("sample", "seed"))
    z = latent(explorer, body["z"])
    if not isinstance(body.get("sample", False), bool):
        raise ApiError(400, "the field 'sample' must be true or false.")
    out = image_json(explorer.decode_mean(z)[0])
    if body.get("sample", False):
        seed = as_int(body.get("seed", 0), "seed", 0, SEED_MAX)
        out |= {"sample": image_json(explorer.draw(z, seed)[0]), "seed": seed}
    elif "seed" in body:
        raise ApiError(400, "the field 'seed' is only taken with \"sample\": true.")
    return out


def code(explorer: Explorer, query: dict[str, str], _body: Any) -> dict[str, Any]:
    i = query_int(query, "index", 0, len(explorer.images) - 1)
    return {"index": i, "z": explorer.mu[i].cpu().tolist(), "image": image_json(explorer.images[i]),
            "label": None if explorer.labels is None else explorer.labels[i]}


def interpolate(explorer: Explorer, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, ("a", "b", "steps"))
    a, b = index(explorer, body["a"], "a"), index(explorer, body["b"], "b")
    steps = as_int(body["steps"], "steps", 2, MAX_STEPS)
    t, decoded = explorer.interpolate(a, b, steps)
    return {"t": t.cpu().tolist(), "images": [image_json(x) for x in decoded]}


def encode(explorer: Explorer, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    c, h, w = explorer.model.image_shape
    if "pixels" in body and "image" in body:
        raise ApiError(400, "give one of 'image' (a base64 PNG or JPEG) or 'pixels' (numbers between 0 "
                       "and 1), not both.")
    if "pixels" in body:
        check_fields(body, ("pixels",))
        values = numbers(body["pixels"], "pixels", c * h * w)
        if min(values) < 0.0 or max(values) > 1.0:
            raise ApiError(400, "pixels must be numbers between 0 and 1.")
        unit = torch.tensor(values, dtype=torch.float32, device="cpu").view(c, h, w)  # from JSON
        done = ["pixels as given" if explorer.binarize == "none" else "pixels rounded to 8 bits (k/255)"]
        x = explorer.from_unit(unit)
    else:
        if set(body) != {"image"}:  # neither form, or another field beside the image
            raise ApiError(400, "this request takes one field, 'image' (a base64 PNG or JPEG) or 'pixels' "
                           "(numbers between 0 and 1).")
        pixels, done = decode_upload(body["image"], (c, h, w), explorer.run.config.data.image_fit)
        x = explorer.prepare(pixels)
    prepared = explorer.preparation()
    if prepared is not None:
        done.append(prepared)
    mu, nll = explorer.encode(x)
    point = explorer.on_map(mu[0]).cpu().tolist()
    return {"z": mu[0].cpu().tolist(), "reconstruction": image_json(explorer.decode_mean(mu)[0]),
            "nll": float(nll[0]), "k": IWAE_K, "point": point, "input": image_json(x[0]),
            "converted": ", ".join(done)}


def samples(explorer: Explorer, query: dict[str, str], _body: Any) -> dict[str, Any]:
    n = query_int(query, "n", 1, MAX_SAMPLES, default=16)
    seed = query_int(query, "seed", 0, SEED_MAX, default=0)
    return {"seed": seed, "images": [image_json(x) for x in explorer.sample(n, seed)]}


Endpoint = Callable[[Explorer, dict[str, str], Any], dict[str, Any]]
# path -> (method, handler, query parameters it takes)
ROUTES: dict[str, tuple[str, Endpoint, tuple[str, ...]]] = {
    "/api/info": ("GET", info, ()),
    "/api/map": ("GET", latent_map, ("dims",)),
    "/api/decode": ("POST", decode, ()),
    "/api/code": ("GET", code, ("index",)),
    "/api/interpolate": ("POST", interpolate, ()),
    "/api/encode": ("POST", encode, ()),
    "/api/samples": ("GET", samples, ("n", "seed")),
}
HEAVY = frozenset(ROUTES) - {"/api/info"}  # those that compute with the model: a lane of their own
