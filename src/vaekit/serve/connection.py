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
- A worker writes its answer into memory (`ArrivalHandler.answer`), and the doorman sends it
  (`Doorman.send`): what the socket takes at once from the worker, the rest as the client reads
  it, without a worker. A client that does not read its answer holds no worker.
- A connection is closed gracefully: the answer's end is signalled, then the doorman reads and
  drops what the client still sends for up to `linger` seconds, without a worker. Closing a socket
  with unread bytes sends a reset, which can destroy the answer before the client reads it (a 413
  answered before its body arrived, an HTTP/2 preface answered after its first line).
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, cast

from vaekit.serve.arrival import Arrival
from vaekit.serve.doorman import Doorman


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
    max_pending = 1024  # connections held by the doorman, answered ones lingering included
    max_buffered = 256 * 2**20  # bytes buffered by the doorman, over all the connections it holds
    request_timeout = 30.0
    linger = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.serving = 0
        self.lock = threading.Lock()
        self.doorman = Doorman(self)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        """The listening thread's part: the connection goes to the doorman."""
        self.doorman.admit(request, client_address)

    def take(self, arrival: Arrival) -> bool:
        """A worker thread for a connection whose request has arrived; False when all are busy."""
        with self.lock:
            if self.serving >= self.max_connections:
                return False
            self.serving += 1
        try:
            threading.Thread(target=self.work, args=(arrival,), daemon=True).start()
        except RuntimeError:  # no thread can be started
            self.release()
            return False
        return True

    def work(self, arrival: Arrival) -> None:
        """A worker thread: the request handled, the worker freed, the answer given to the doorman
        to be sent (`Doorman.send`) and the connection closed."""
        handler = cast(Callable[..., ArrivalHandler], self.RequestHandlerClass)  # takes the Arrival
        answer = b""
        try:
            answer = handler(arrival, arrival.address, self).answer
        except Exception:
            self.handle_error(arrival.sock, arrival.address)
        finally:
            self.release()  # before the answer: a client that has it finds the worker free
            self.doorman.send(arrival.sock, answer)

    def release(self) -> None:
        with self.lock:
            self.serving -= 1

    def server_close(self) -> None:
        """Close the listening socket and every connection the doorman holds (those of the workers
        close as each worker ends)."""
        super().server_close()
        self.doorman.stop()

    def shutdown_request(self, request: Any) -> None:
        """Signal the end of the answer; the doorman then reads what the client still sends for up
        to `linger` seconds (it normally closes at once), and closes."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            return self.close_request(request)
        self.doorman.linger(request)
