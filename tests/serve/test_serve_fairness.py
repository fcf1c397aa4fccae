"""`vaekit serve`'s fairness to its clients: a body sent with `Expect: 100-continue` is asked for
with an interim 100 Continue, or the request refused before it (RFC 9110 10.1.1); of the answers
unread past the doorman's buffer, those of clients that read nothing are dropped before that of a
client that reads; and heavy requests run in a lane of their own, so that a cheap one is answered
while they are held."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from serve_client import LATENT, Client, serve, split_reply

from vaekit.serve import app
from vaekit.serve.request import MAX_BODY

Z = json.dumps({"z": [0.25] * LATENT}).encode()


def head(expect: str, length: int = len(Z), kind: str = "application/json", version: str = "1.1") -> bytes:
    return (f"POST /api/decode HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {length}\r\nExpect: {expect}\r\n\r\n").encode()


def until_closed(sock: socket.socket, seconds: float = 10) -> bytes:
    sock.settimeout(seconds)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


@pytest.fixture(scope="module")
def client(run_dir: Path) -> Iterator[Client]:
    yield from serve(run_dir)


@pytest.mark.parametrize("expect", ["100-continue", "100-Continue", " 100-continue , 100-continue"])
def test_the_body_is_asked_for_with_100_continue(client: Client, expect: str) -> None:
    """The interim 100 comes after the headers, before any byte of the body; then the answer is the
    one the same request gets without the expectation."""
    with socket.create_connection((str(client.host), int(client.port)), timeout=5) as s:
        s.sendall(head(expect))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += s.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(Z)
        status, headers, body = split_reply(until_closed(s))
    assert (status, headers["connection"]) == (200, "close")
    assert json.loads(body) == client.post("/api/decode", json.loads(Z))


@pytest.mark.parametrize(("data", "status"), [
    (head("101-wait"), 417),
    (head("100-continue, fast"), 417),
    (b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: something\r\n\r\n", 417),
    (head("100-continue", MAX_BODY + 1), 413),
    (head("100-continue", kind="text/plain"), 415),
    (head("100-continue").replace(b"/api/decode", b"/api/nothing"), 404),
], ids=["417", "417 list", "417 GET", "413", "415", "404"])
def test_a_request_refused_anyway_is_refused_before_its_body(
        client: Client, one_sentence: Callable[..., None], data: bytes, status: int) -> None:
    """No 100 Continue and no wait for a body that will not be read: the final answer at once."""
    with socket.create_connection((str(client.host), int(client.port)), timeout=5) as s:
        s.sendall(data)
        got, headers, body = split_reply(until_closed(s, 5))  # the body is never sent
    assert (got, headers["connection"]) == (status, "close")
    one_sentence(json.loads(body)["error"])


def test_http_1_0_ignores_100_continue(client: Client) -> None:
    """An HTTP/1.0 client knows no 1xx answer: the server waits for its body and answers once."""
    with socket.create_connection((str(client.host), int(client.port)), timeout=5) as s:
        s.sendall(head("100-continue", version="1.0"))
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(1)
        s.sendall(Z)
        reply = until_closed(s)
    assert reply.startswith(b"HTTP/1.1 200 ") and b" 100 " not in reply.split(b"\r\n")[0]


BIG = 8 * 2**20  # an answer larger than what a socket's buffers take at once


def asking(client: Client, stack: ExitStack) -> socket.socket:
    """A connection that asks for the big answer, with a small receive buffer."""
    s = stack.enter_context(socket.socket())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((str(client.host), int(client.port)))
    s.sendall(b"GET /api/big HTTP/1.0\r\n\r\n")
    return s


def test_a_reading_client_keeps_its_answer(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client reads part of its answer, then two others ask and read nothing, the doorman's
    buffer holding no more than the first two answers unread: the third drops the older
    non-reader's, not the reader's (the oldest)."""
    monkeypatch.setitem(app.ROUTES, "/api/big", ("GET", lambda *_: {"x": "a" * BIG}, ()))
    for small in serve(run_dir):
        with ExitStack() as stack:
            reader = asking(small, stack)
            time.sleep(0.3)  # its answer handed to the doorman
            taken = 0
            while taken < 2**20:
                taken += len(reader.recv(65536))
            idle = [asking(small, stack)]
            time.sleep(0.3)
            small.server.max_buffered = small.server.doorman.buffered + 2**20  # what the socket kept varies
            idle.append(asking(small, stack))
            time.sleep(0.3)
            rest = taken + len(until_closed(reader, 20))
            cut, whole = (len(until_closed(s, 20)) for s in idle)
        assert rest > BIG  # the whole answer, its headers included
        assert cut < BIG < whole


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[int]]]:
    """/api/samples (a heavy endpoint) held until the event is set; the list records how many
    computed at once, at each call."""
    release, lock, running, seen = threading.Event(), threading.Lock(), [0], []

    def hold(*_: Any) -> dict[str, bool]:
        with lock:
            running[0] += 1
            seen.append(running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return {"held": True}

    monkeypatch.setitem(app.ROUTES, "/api/samples", ("GET", hold, ("n", "seed")))
    yield release, seen
    release.set()


HEAVY_GET = b"GET /api/samples HTTP/1.0\r\n\r\n"
# a GET that says a body is coming, which it is not asked for: it computes all the same
HEAVY_EXPECTING = (b"GET /api/samples HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 9\r\n\r\n")


def ask_heavy(client: Client, stack: ExitStack, n: int, data: bytes = HEAVY_GET) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = stack.enter_context(socket.create_connection((str(client.host), int(client.port)), timeout=10))
        s.sendall(data)
        socks.append(s)
    return socks


@pytest.mark.parametrize("data", [HEAVY_GET, HEAVY_EXPECTING], ids=["GET", "GET expecting"])
def test_cheap_requests_do_not_wait_behind_heavy_ones(run_dir: Path, held: tuple[threading.Event, list[int]],
                                                      data: bytes) -> None:
    """Three times as many heavy requests as workers, held: the page and /api/info are answered; the
    heavy ones computed `max_heavy` at a time, each answered once released."""
    release, seen = held
    for small in serve(run_dir, max_connections=8):
        with ExitStack() as stack:
            heavy = ask_heavy(small, stack, 24, data)
            time.sleep(0.3)
            assert small.get("/api/info")["latent_dim"] == LATENT
            assert small.raw("GET", "/")[0] == 200
            assert not release.is_set()
            release.set()
            assert [split_reply(until_closed(s))[0] for s in heavy] == [200] * 24
        assert len(seen) == 24 and max(seen) == small.server.max_heavy < 8


def test_heavy_requests_past_the_queue_are_refused(run_dir: Path, one_sentence: Callable[..., None],
                                                   held: tuple[threading.Event, list[int]]) -> None:
    """One heavy worker, two places in its queue: the fourth heavy request is answered 503 at once."""
    release, _ = held
    for small in serve(run_dir, max_heavy=1, max_queued=2):
        with ExitStack() as stack:
            first = ask_heavy(small, stack, 3)
            time.sleep(0.3)
            status, headers, body = split_reply(until_closed(ask_heavy(small, stack, 1)[0], 5))
            assert (status, headers["retry-after"]) == (503, "1")
            one_sentence(json.loads(body)["error"], "model worker is busy", "2 requests wait")
            assert "connections" not in json.loads(body)["error"]  # 4 are open, of 64 workers
            release.set()
            assert [split_reply(until_closed(s))[0] for s in first] == [200] * 3


def test_heavy_requests_queued_past_their_time_are_refused(run_dir: Path, one_sentence: Callable[..., None],
                                                           held: tuple[threading.Event, list[int]]) -> None:
    """A heavy request still queued when the time its client was given has passed is answered 503,
    not computed, saying why: the model's worker was busy (2 connections are open, of 64 workers)."""
    release, seen = held
    for small in serve(run_dir, max_heavy=1, request_timeout=1.0):
        with ExitStack() as stack:
            first, late = ask_heavy(small, stack, 2)
            time.sleep(1.2)
            release.set()
            status, _, body = split_reply(until_closed(late))
            assert (split_reply(until_closed(first))[0], status) == (200, 503)
            error = json.loads(body)["error"]
            one_sentence(error, "model worker is busy", "1 s")
            assert "connections" not in error
        assert len(seen) == 1
