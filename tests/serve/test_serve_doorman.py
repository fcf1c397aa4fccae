"""`vaekit serve`'s doorman: connections whose request has not arrived whole hold no worker thread,
so idle and trickling clients, many more than the workers, leave the explorer answering others at
once; they are cut at their deadline; the doorman's own bounds answer 503 at once; a request the
handler refuses before its end is handed over as soon as it is recognisable; and closing the
server closes every connection the doorman holds."""

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
from serve_client import LATENT, Client, raw_socket, serve, split_reply

from vaekit.serve import app
from vaekit.serve.request import MAX_BODY

Z = json.dumps({"z": [0.0] * LATENT}).encode()
HEAD = b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SLOW_BODY = (b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n" + b" " * 500)


def connect(client: Client, stack: ExitStack, n: int, data: bytes = b"") -> list[socket.socket]:
    """`n` connections that sent `data`, closed with `stack`."""
    socks = []
    for _ in range(n):
        s = stack.enter_context(socket.create_connection((str(client.host), int(client.port)), timeout=10))
        s.sendall(data)
        socks.append(s)
    return socks


def answered_at_once(client: Client, seconds: float = 2.0) -> None:
    """A GET and a POST answered 200 within `seconds` each."""
    for method, path, body in (("GET", "/api/info", None), ("POST", "/api/decode", {"z": [0.0] * LATENT})):
        t0 = time.monotonic()
        status, out = client.call(method, path, body)
        assert (status, time.monotonic() - t0 < seconds) == (200, True), (status, out)


def until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server answers on `sock` until it closes it, and when (time.monotonic())."""
    sock.settimeout(seconds)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks), time.monotonic()


@pytest.fixture(scope="module")
def four(run_dir: Path) -> Iterator[Client]:
    """A server with 4 workers."""
    yield from serve(run_dir, max_connections=4)


def test_idle_connections_take_no_worker(four: Client) -> None:
    with ExitStack() as stack:
        connect(four, stack, 40)
        connect(four, stack, 10, HEAD)  # their headers never end
        time.sleep(0.2)
        answered_at_once(four)


def test_trickling_connections_take_no_worker(four: Client) -> None:
    """Slowloris: 40 clients each sending a header byte every 0.1 s, 10 a body byte every 0.1 s."""
    with ExitStack() as stack:
        slow = connect(four, stack, 40, HEAD + b"X-Slow: ") + connect(four, stack, 10, SLOW_BODY)
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.1):
                for s in slow:
                    s.send(b"a" if s in slow[:40] else b" ")

        thread = threading.Thread(target=trickle)
        thread.start()
        try:
            for _ in range(3):
                time.sleep(0.3)
                answered_at_once(four)
        finally:
            stop.set()
            thread.join(5)


def test_connections_are_cut_at_their_deadline(run_dir: Path, one_sentence: Callable[..., None]) -> None:
    """A request has 1 s here: a connection that sent part of one is answered 408 and closed; one
    that sent nothing is closed without an answer."""
    for quick in serve(run_dir, max_connections=4, request_timeout=1.0):
        with ExitStack() as stack:
            t0 = time.monotonic()
            idle = connect(quick, stack, 20)
            partial = connect(quick, stack, 10, HEAD) + connect(quick, stack, 10, SLOW_BODY)
            for s in idle:
                reply, when = until_closed(s, 5)
                assert reply == b"" and 0.8 < when - t0 < 3.5, (reply, when - t0)
            for s in partial:
                reply, when = until_closed(s, 5)
                assert 0.8 < when - t0 < 3.5, when - t0
                status, headers, body = split_reply(reply)
                assert (status, headers["content-type"]) == (408, "application/json"), reply
                assert json.loads(body)["error"] == "the request did not arrive whole within 1 seconds."
                one_sentence(json.loads(body)["error"])
        answered_at_once(quick)


POST = b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(("data", "status"), [
    (b"GET /\r\n", 400),  # HTTP/0.9
    (b"PRI * HTTP/2.0\r\n", 400),  # HTTP/2's preface
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", 400),  # junk with a line end
    (b"GET /" + b"a" * 70000, 414),  # a request line that does not end
    (HEAD + b"X-Long: " + b"a" * 70000, 431),  # a header line that does not end
    (HEAD + b"X-Many: 1\r\n" * 101, 431),  # headers that do not end
    (POST + b"Transfer-Encoding: chunked\r\n\r\n", 411),
    (POST + b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n", 400),
    (POST + b"\r\n", 411),
    (POST + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode(), 413),
    (POST + b"Content-Length: 1e3\r\n\r\n", 400),
    (POST + b"Content-Length: 10\r\nContent-Length: 10\r\n\r\n", 400),
    (POST + b"Content-Length: 10\r\nno colon\r\n\r\n", 400),
], ids=["0.9", "h2", "junk", "414", "431 line", "431 lines", "chunked", "chunked and length", "411", "413",
        "bad length", "two lengths", "bad header"])
def test_requests_refusable_early_are_answered_at_once(four: Client, one_sentence: Callable[..., None],
                                                       data: bytes, status: int) -> None:
    """Handed to a worker as soon as the handler can refuse them, not at the deadline (30 s)."""
    t0 = time.monotonic()
    reply = raw_socket(four, data, timeout=10)
    assert time.monotonic() - t0 < 3
    got, headers, body = split_reply(reply)
    assert (got, headers["content-type"]) == (status, "application/json"), reply[:200]
    one_sentence(json.loads(body)["error"])


@pytest.mark.parametrize("held", ["idle", "arriving"])
def test_a_full_doorman_makes_room_by_the_oldest(run_dir: Path, one_sentence: Callable[..., None],
                                                 held: str) -> None:
    """8 connections held by a doorman of 8: a newcomer is answered at once, in the place of the
    oldest (closed without an answer when it sent nothing, answered 503 when it sent part of a
    request); the 7 others are still held."""
    for small in serve(run_dir, max_pending=8, request_timeout=60.0):
        with ExitStack() as stack:
            socks = []
            for _ in range(8):
                socks += connect(small, stack, 1, b"" if held == "idle" else HEAD)
                time.sleep(0.05)  # accepted in this order
            time.sleep(0.2)
            t0 = time.monotonic()
            status, _, _ = split_reply(raw_socket(small, HEAD + b"\r\n", timeout=10))
            assert (status, time.monotonic() - t0 < 2) == (200, True)
            reply, _ = until_closed(socks[0], 5)
            if held == "idle":
                assert reply == b""
            else:
                status, headers, body = split_reply(reply)
                assert (status, headers["retry-after"]) == (503, "1")
                one_sentence(json.loads(body)["error"])
            for sock in socks[1:]:
                sock.settimeout(0.05)
                with pytest.raises(TimeoutError):  # still held: neither answered nor closed
                    sock.recv(1)
        time.sleep(0.2)  # the doorman sees the 7 closed
        answered_at_once(small)


def test_the_doorman_buffers_a_bounded_number_of_bytes(run_dir: Path,
                                                       one_sentence: Callable[..., None]) -> None:
    """Past `max_buffered` bytes over all the connections held, the connection that would add more
    is answered 503, and the bytes are freed."""
    for small in serve(run_dir, max_buffered=100_000):
        data = POST + b"Content-Length: 1000000\r\n\r\n" + b" " * 200_000
        status, _, body = split_reply(raw_socket(small, data, timeout=10))
        assert status == 503
        one_sentence(json.loads(body)["error"])
        answered_at_once(small)
        assert small.server.doorman.buffered == 0


def test_a_full_server_refuses_without_waiting(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every worker busy, each request that arrives is answered 503 at once: none waits for a
    worker, nor behind another's wait."""
    release = threading.Event()

    def hold(explorer: Any, query: Any, body: Any) -> dict[str, bool]:
        release.wait(10)
        return {"held": True}

    monkeypatch.setitem(app.ROUTES, "/api/hold", ("GET", hold, ()))
    for small in serve(run_dir, max_connections=1):
        with ExitStack() as stack:
            held = connect(small, stack, 1, b"GET /api/hold HTTP/1.0\r\n\r\n")[0]
            time.sleep(0.2)
            t0 = time.monotonic()
            statuses = [split_reply(raw_socket(small, HEAD + b"\r\n", timeout=10))[0] for _ in range(30)]
            assert (statuses, time.monotonic() - t0 < 5) == ([503] * 30, True)
            release.set()
            assert split_reply(until_closed(held, 10)[0])[0] == 200
        answered_at_once(small)


BIG = 8 * 2**20  # an answer larger than what a socket's buffers take at once


def slow_readers(client: Client, stack: ExitStack, n: int) -> list[socket.socket]:
    """`n` connections that ask for the big answer and do not read it (a small receive buffer)."""
    socks = []
    for _ in range(n):
        s = stack.enter_context(socket.socket())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((str(client.host), int(client.port)))
        s.sendall(b"GET /api/big HTTP/1.0\r\n\r\n")
        socks.append(s)
        time.sleep(0.05)  # accepted in this order
    return socks


@pytest.fixture
def big_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.ROUTES, "/api/big", ("GET", lambda *_: {"x": "a" * BIG}, ()))


@pytest.mark.usefixtures("big_route")
def test_clients_that_do_not_read_their_answer_hold_no_worker(run_dir: Path) -> None:
    """Three times as many clients as workers ask for an 8 MiB answer and do not read it: others
    are answered at once, and each slow client, once it reads, gets its whole answer."""
    for small in serve(run_dir, max_connections=2):
        with ExitStack() as stack:
            socks = slow_readers(small, stack, 6)
            time.sleep(1.0)
            answered_at_once(small)
            for sock in (socks[0], socks[-1]):
                status, headers, body = split_reply(until_closed(sock, 20)[0])
                assert (status, len(body), int(headers["content-length"])) == (200, BIG + 9, BIG + 9)
                assert json.loads(body) == {"x": "a" * BIG}


@pytest.mark.usefixtures("big_route")
def test_answers_past_the_buffer_drop_the_oldest(run_dir: Path) -> None:
    """With room for one unread answer in the doorman's buffer, the second handed over drops the
    first (its connection closed before the answer's end); the other answer is whole. (Which of
    the two is handed over first is the workers' race.)"""
    for small in serve(run_dir, max_buffered=BIG + 2**20):
        with ExitStack() as stack:
            socks = slow_readers(small, stack, 2)
            time.sleep(1.0)  # both answers handed over before either is read
            replies = sorted((until_closed(s, 20)[0] for s in socks), key=len)
            cut, whole = replies
            assert 0 < len(cut) < BIG and split_reply(whole)[0] == 200
            assert len(split_reply(whole)[2]) == BIG + 9
        time.sleep(0.2)
        assert small.server.doorman.buffered == 0


def test_closing_the_server_closes_the_connections_held(run_dir: Path) -> None:
    servers = serve(run_dir, request_timeout=60.0)
    small = next(servers)
    with ExitStack() as stack:
        held = connect(small, stack, 20) + connect(small, stack, 5, HEAD)
        time.sleep(0.2)
        t0 = time.monotonic()
        servers.close()  # shutdown() and server_close()
        assert time.monotonic() - t0 < 3
        for s in held:
            reply, when = until_closed(s, 5)
            assert (reply, when - t0 < 3) == (b"", True)
    thread = small.server.doorman.thread
    assert thread is not None and not thread.is_alive()
