"""The explorer's connections, below HTTP: how many are served at once, how long a request may take
to arrive, and how each one is closed.

- The listening socket holds `request_queue_size` connections that no thread has taken yet
  (socketserver's default of 5 turns a burst of connections into resets).
- At most `max_connections` are served at once, a thread each; a connection that finds them all
  busy for `busy_wait` seconds is answered 503 by the listening thread, at once.
- A request has `request_timeout` seconds to arrive whole, its line, headers and body together
  (`DeadlineReader`): a timeout on each read alone lets a client that sends a byte a second keep
  its thread forever (slowloris).
- A connection is closed gracefully: the answer's end is signalled, then what the client still
  sends is read and dropped for up to `linger` seconds. Closing a socket with unread bytes sends a
  reset, which can destroy the answer before the client reads it (a 413 answered before its body
  arrived, an HTTP/2 preface answered after its first line).
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any


class RequestTimeout(TimeoutError):
    """A request that did not arrive whole within its deadline."""


class DeadlineReader(io.RawIOBase):
    """A socket's input with one deadline over all its reads: each read waits at most for what is
    left of it, and raises `RequestTimeout` once it has passed. `received` counts the bytes read."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = time.monotonic() + seconds
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # Any: the buffer protocol has no type before 3.12
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


def busy_answer(max_connections: int) -> bytes:
    """The 503 of a server whose threads are all taken, as the bytes written to the socket."""
    body = json.dumps({"error": f"the explorer is serving {max_connections} connections already; try "
                       "again in a moment."}).encode()
    head = ("HTTP/1.0 503 Service Unavailable\r\nServer: vaekit-serve\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class BoundedHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with a bound on its threads, a deadline on each request and a lingering
    close (see the module's docstring). The limits are attributes, read as each connection comes."""

    daemon_threads = True
    request_queue_size = 256
    max_connections = 64
    busy_wait = 1.0
    request_timeout = 30.0
    linger = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.serving = 0
        self.free = threading.Condition()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.free:
            if not self.free.wait_for(lambda: self.serving < self.max_connections, self.busy_wait):
                return self.refuse_busy(request)
            self.serving += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.release()

    def release(self) -> None:
        with self.free:
            self.serving -= 1
            self.free.notify()

    def refuse_busy(self, request: socket.socket) -> None:
        """The 503, written without waiting by the listening thread: what the client has sent so far
        (up to 1 MiB) is read first, so that the close is not a reset."""
        try:
            request.setblocking(False)
            try:
                for _ in range(16):
                    if not request.recv(65536):
                        break
            except BlockingIOError:
                pass
            request.sendall(busy_answer(self.max_connections))
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close_request(request)

    def shutdown_request(self, request: Any) -> None:
        """Signal the end of the answer, read what the client still sends for up to `linger`
        seconds (it normally closes at once), then close."""
        try:
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.linger
            while (left := deadline - time.monotonic()) > 0:
                request.settimeout(left)
                if not request.recv(65536):
                    break
        except OSError:
            pass
        self.close_request(request)
