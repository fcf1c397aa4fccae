"""The explorer's server against random requests: every address of `api.ROUTES` and of the page,
every method, random query strings, headers and bodies, and random bytes. Whatever a client sends,
the answer is a status line below 500 with the length it announces, a 4xx carries {"error": one
sentence}, and the server answers a good request after it.

The examples are derandomized and bounded for CI (about 200 requests, a few seconds);
HYPOTHESIS_PROFILE=explore searches with fresh examples, ten times as many.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_client import LATENT, Client, raw_socket, serve, split_reply

from vaekit.serve.api import ROUTES

EXPLORE = os.environ.get("HYPOTHESIS_PROFILE", "vaekit") != "vaekit"
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
FUZZ = settings(max_examples=1500 if EXPLORE else 150, deadline=None, suppress_health_check=HEALTH)
FUZZ_BYTES = settings(max_examples=500 if EXPLORE else 50, deadline=None, suppress_health_check=HEALTH)

OTHER_PATHS = ["/", "/index.html", "/static/app.js", "/static/../app.py", "/static/app.js%00", "/api",
               "/nowhere", "*", "//api/info", "http://127.0.0.1/api/info", "http://[::1/api/info"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PRI", "get",
           "G(T"]
ODD_VERSIONS = ["HTTP/2.0", "HTTP/0.9", "HTTP/1.x", "HTTP/1.1 x", ""]
FIELDS = ["z", "sample", "seed", "a", "b", "steps", "pixels", "image", "extra"]
CONTENT_TYPES = [None, "text/plain", "multipart/form-data; boundary=x", "application/json; charset=utf-8",
                 "application/json; charset=ascii", "application/json, application/json"]
LENGTHS = ["none", "short", "long", "-1", "abc", "99999999999", "twice", "chunked"]


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` four times in five, else `odd`: most requests reach the endpoint, each with a flaw."""
    return st.integers(0, 4).flatmap(lambda i: odd if i == 4 else good)


scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
           | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
codes = st.lists(st.floats(-7, 7), min_size=LATENT, max_size=LATENT)  # a z, or one out of the clamp
indices = st.integers(-2, 200)
BODIES = {  # each POST endpoint's own fields, their values in range or not
    "/api/decode": st.fixed_dictionaries({"z": codes}, optional={"sample": st.booleans(), "seed": indices}),
    "/api/interpolate": st.fixed_dictionaries({"a": indices, "b": indices, "steps": st.integers(0, 40)}),
    "/api/encode": st.fixed_dictionaries({"pixels": st.lists(st.floats(-0.1, 1.1), min_size=63,
                                                             max_size=64)}),
}
fields = st.dictionaries(st.sampled_from(FIELDS), codes | indices | st.booleans() | json_values, max_size=4)
odd_bodies = (fields.map(lambda o: json.dumps(o).encode()) | json_values.map(lambda v: json.dumps(v).encode())
              | st.binary(max_size=64))
query_values = (st.integers(-3, 200).map(str) | st.sampled_from(["0,1", "2,0", "1,1", "a,b", ""])
                | st.text(max_size=8))
raw_text = st.text(st.characters(codec="latin-1"), max_size=30)  # sent as it is: spaces, %, \r, \n
header_lines = mostly(
    st.lists(st.tuples(st.sampled_from(["X-A", "Accept", "Connection", "Expect", "Origin", "Cookie"]),
                       st.sampled_from(["", "*/*", "close", "keep-alive", "100-continue", "http://evil.example"])),
             max_size=2),
    st.lists(st.tuples(st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), min_size=1,
                               max_size=8), raw_text), min_size=1, max_size=2))


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """(the method, the whole request as bytes): mostly an address's own method, query parameters
    and JSON fields, each part now and then replaced by something odd."""
    path = draw(mostly(st.sampled_from(list(ROUTES)), st.sampled_from(OTHER_PATHS)))
    route = ROUTES.get(path, ("GET", None, ("x",)))
    own = [route[0]] if route[0] == "POST" else ["GET", "GET", "HEAD"]
    method = draw(mostly(st.sampled_from(own), st.sampled_from(METHODS)))
    pairs = (st.lists(st.tuples(st.sampled_from(route[2]), query_values), max_size=3) if route[2]
             else st.just([]))
    query = draw(mostly(pairs.map(lambda ps: "&".join(f"{quote(k)}={quote(v)}" for k, v in ps)),
                        raw_text | st.lists(st.just("n=1"), max_size=20).map("&".join)))
    version = draw(mostly(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.sampled_from(ODD_VERSIONS)))
    good_body = BODIES[path].map(lambda o: json.dumps(o).encode()) if path in BODIES else st.just(b"")
    body = draw(mostly(good_body, odd_bodies))
    lines = [f"{method} {path}{'?' if query else ''}{query} {version}".rstrip()]
    host = draw(mostly(st.sampled_from([None, "127.0.0.1", "localhost:8765", "[::1]"]),
                       st.sampled_from(["evil.example", "", "127.0.0.1:1:1"])))
    if host is not None:
        lines.append(f"Host: {host}")
    kind = draw(mostly(st.just("application/json"), st.sampled_from(CONTENT_TYPES)))
    if kind is not None:
        lines.append(f"Content-Type: {kind}")
    length = draw(mostly(st.just("exact"), st.sampled_from(LENGTHS)))
    announced = {"exact": len(body), "twice": len(body), "chunked": len(body), "short": len(body) // 2,
                 "long": len(body) + 7}.get(length, length)
    if length != "none":
        lines.append(f"Content-Length: {announced}")
    if length == "twice":
        lines.append(f"Content-Length: {len(body) + 1}")
    if length == "chunked":
        lines.append("Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in draw(header_lines)]
    return method, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture(scope="module")
def client(run_dir: Path) -> Iterator[Client]:
    yield from serve(run_dir)


def check_answer(reply: bytes, method: str, one_sentence: Callable[..., None]) -> int:
    """The reply is one HTTP/1.x answer below 500, a 4xx with an error sentence; its status."""
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    status, headers, body = split_reply(reply)
    assert status < 500, (status, body)
    assert body == b"" or int(headers["content-length"]) == len(body), headers
    if method == "HEAD" and status != 400:  # a 400 may come before the method is read
        assert body == b""
    if status >= 400 and body:
        assert headers["content-type"] == "application/json"
        out: Any = json.loads(body)
        assert isinstance(out, dict) and set(out) == {"error"}, out
        one_sentence(out["error"])
    return status


def still_answers(client: Client) -> None:
    assert client.get("/api/info")["latent_dim"] == LATENT


@FUZZ
@given(request=requests())
def test_random_requests_get_a_4xx_sentence_or_an_answer(client: Client, one_sentence: Callable[..., None],
                                                         request: tuple[str, bytes]) -> None:
    method, data = request
    check_answer(raw_socket(client, data, timeout=10, half_close=True), method, one_sentence)
    still_answers(client)


@FUZZ_BYTES
@given(data=st.binary(min_size=1, max_size=300)
       | st.binary(max_size=40).map(lambda b: b"GET /api/info HTTP/1.1\r\n" + b + b"\r\n\r\n"))
def test_random_bytes_get_a_4xx_sentence_or_an_answer(client: Client, one_sentence: Callable[..., None],
                                                      data: bytes) -> None:
    method = data.split(b" ", 1)[0].decode("latin-1")
    check_answer(raw_socket(client, data, timeout=10, half_close=True), method, one_sentence)
    still_answers(client)
