"""The explorer's connections, below HTTP: where each waits for its request, how many are served at
once, how long a request may take to arrive, and how each one is closed.

- The listening socket holds `request_queue_size` connections not yet accepted (socketserver's
  default of 5 turns a burst of connections into resets). The listening thread accepts each and
  gives it to the doorman (`doorman.py`), at once.
- The doorman holds each connection until its request has arrived whole (`arrival.py`); only then
  does it take a worker thread, with the bytes that arrived. At most `max_connections` are served
  at once; a request that finds them all busy is answered 503 by the doorman, at once.
- A request has `request_timeout` seconds from its connection's accept to arrive whole, its line,
  headers and body together: the doorman answers 408 past it, and a worker reads whatever is left
  against the same deadline (`DeadlineReader`). A timeout on each read alone would let a client
  that sends a byte a second hold a connection forever (slowloris).
- Heavy requests (`heavy`: those that compute with the model) run on at most `max_heavy` workers
  at once; one that finds them all busy waits in a queue, without a thread (at most `max_queued`;
  past that, 503), and the next heavy worker to finish takes it. The other workers stay free for
  cheap requests (the page, /api/info, a refusal), which thus never wait behind heavy work, nor
  share the cores and the interpreter with more than `max_heavy` threads of it.
- A request sent with `Expect: 100-continue` comes to a worker without its body (`arrival.py`):
  refused, it is answered at once; else the worker gives it back to the doorman (`resume`), which
  answers the interim 100 Continue and receives the body, then hands the request over again.
- A worker writes its answer into memory (`ArrivalHandler.answer`), and the doorman sends it
  (`Doorman.send`): what the socket takes at once from the worker, the rest as the client reads
  it, without a worker. A client that does not read its answer holds no worker.
- A connection is closed gracefully: the answer's end is signalled, then the doorman reads and
  drops what the client still sends for up to `linger` seconds, without a worker. Closing a socket
  with unread bytes sends a reset, which can destroy the answer before the client reads it (a 413
  answered before its body arrived, an HTTP/2 preface answered after its first line).
"""

from __future__ import annotations

import collections
import io
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, cast

from vaekit.serve.arrival import Arrival
from vaekit.serve.doorman import Doorman
from vaekit.serve.outgoing import busy_answer, heavy_busy_answer


class RequestTimeout(TimeoutError):
    """A request that did not arrive whole within its deadline."""


class DeadlineReader(io.RawIOBase):
    """A connection's input: the bytes that arrived before (`first`), then the socket's, with one
    deadline (a time.monotonic()) over all the socket's reads: each waits at most for what is left
    of it, and raises `RequestTimeout` once it has passed. `received` counts the bytes the client
    sent, `first` included."""

    def __init__(self, sock: socket.socket, deadline: float, first: bytes = b"") -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline
        self.first = memoryview(first)
        self.received = len(first)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # Any: the buffer protocol has no type before 3.12
        if len(self.first):
            n = min(len(buffer), len(self.first))
            buffer[:n] = self.first[:n]
            self.first = self.first[n:]
            return n
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout
        self.sock.settimeout(left)
        try:
            n = self.sock.recv_into(buffer)
        except TimeoutError:
            raise RequestTimeout from None
        self.received += n
        return n


class ArrivalHandler(BaseHTTPRequestHandler):
    """A handler of a connection the doorman handed over: `request` is its `Arrival`, and the
    request is read from the bytes that arrived, then from the socket against the deadline the
    connection was given at its accept (`reader`). What it writes is kept in memory, as `answer`
    once it has finished, for the doorman to send."""

    answer = b""
    resume = False  # the request awaits its body: the doorman is to ask for it (100 Continue)

    def setup(self) -> None:
        self.arrival: Arrival = self.request
        self.request = self.arrival.sock
        super().setup()
        self.rfile.close()
        self.reader = DeadlineReader(self.connection, self.arrival.deadline, bytes(self.arrival.data))
        self.rfile = io.BufferedReader(self.reader)
        self.wfile.close()
        self.out = io.BytesIO()
        self.wfile = self.out

    def finish(self) -> None:
        self.answer = self.out.getvalue()
        super().finish()


class BoundedHTTPServer(HTTPServer):
    """`HTTPServer` with a doorman before its threads, a bound on them, a deadline on each request and
    a lingering close (see the module's docstring). Its handler is an `ArrivalHandler`. The limits
    are attributes, read as each connection comes."""

    request_queue_size = 256
    max_connections = 64  # worker threads
    max_heavy = 4  # of them, computing with the model at once
    max_queued = 256  # heavy requests waiting for one of those
    max_pending = 1024  # connections held by the doorman, answered ones lingering included
    max_buffered = 256 * 2**20  # bytes buffered by the doorman, over all the connections it holds
    request_timeout = 30.0
    linger = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.serving = 0
        self.computing = 0  # workers on heavy requests
        self.queued: collections.deque[Arrival] = collections.deque()
        self.lock = threading.Lock()
        self.doorman = Doorman(self)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        """The listening thread's part: the connection goes to the doorman."""
        self.doorman.admit(request, client_address)

    def heavy(self, arrival: Arrival) -> bool:
        """Whether the request that has arrived computes with the model (none, here)."""
        return False

    def take(self, arrival: Arrival) -> bytes | None:
        """A worker thread for a connection whose request has arrived, or for a heavy request with
        every heavy worker busy, a place in their queue (None); when there is neither, the 503 that
        says which was wanting."""
        heavy = self.heavy(arrival)
        with self.lock:
            if heavy and self.computing >= self.max_heavy:
                if len(self.queued) >= self.max_queued:
                    return heavy_busy_answer(self.max_heavy, f"{self.max_queued} requests wait for them "
                                             "already")
                self.queued.append(arrival)
                return None
            if self.serving >= self.max_connections:
                return busy_answer(self.max_connections)
            self.serving += 1
            self.computing += heavy
        try:
            threading.Thread(target=self.work, args=(arrival, heavy), daemon=True).start()
        except RuntimeError:  # no thread can be started
            with self.lock:
                self.serving -= 1
                self.computing -= heavy
            return busy_answer(self.max_connections)
        return None

    def work(self, arrival: Arrival | None, heavy: bool) -> None:
        """A worker thread: each request handled, the worker freed (or, heavy, given the next heavy
        request queued), the answer given to the doorman to be sent (`Doorman.send`) and the
        connection closed; or the request given back to the doorman to receive its body."""
        late = False  # a request queued past the time its client was given: it may be gone
        while arrival is not None:
            handler = cast(Callable[..., ArrivalHandler], self.RequestHandlerClass)  # takes the Arrival
            answer, resume = b"", False
            try:
                if late:
                    answer = heavy_busy_answer(self.max_heavy, f"this request waited for one past its "
                                               f"{self.request_timeout:g} s")
                else:
                    done = handler(arrival, arrival.address, self)
                    answer, resume = done.answer, done.resume
            except Exception:
                self.handle_error(arrival.sock, arrival.address)
            finally:
                following = self.release(heavy)  # before the answer: its client finds the worker free
                if resume:
                    self.doorman.resume(arrival)
                else:
                    self.doorman.send(arrival.sock, answer)
            arrival = following
            late = arrival is not None and time.monotonic() >= arrival.deadline

    def release(self, heavy: bool) -> Arrival | None:
        """Free a worker; a heavy worker takes the next heavy request queued instead, if any."""
        with self.lock:
            if heavy and self.queued:
                return self.queued.popleft()
            self.serving -= 1
            self.computing -= heavy
        return None

    def server_close(self) -> None:
        """Close the listening socket, every connection the doorman holds and those queued (those of
        the workers close as each worker ends)."""
        super().server_close()
        self.doorman.stop()
        with self.lock:
            queued, self.queued = list(self.queued), collections.deque()
        for arrival in queued:
            arrival.sock.close()

    def shutdown_request(self, request: Any) -> None:
        """Signal the end of the answer; the doorman then reads what the client still sends for up
        to `linger` seconds (it normally closes at once), and closes."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            return self.close_request(request)
        self.doorman.linger(request)
