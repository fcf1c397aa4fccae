"""What the explorer's doorman (`doorman.py`) writes itself: its own answers (a 503, a 408), and
the answers of workers that it writes as their clients read them (`Outgoing`), with the choice of
which to drop when they are more than it may hold (`least_read`): the client seen taking its
answer least recently, so that a slow client that reads keeps its answer while those that read
nothing lose theirs first."""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import sys
import time
from http import HTTPStatus

READING = 2.0  # seconds: a client seen taking its answer this recently is reading it
SIOCOUTQNSD = 0x894B  # Linux's ioctl: the bytes of a socket's send queue not yet sent


def answer(status: int, sentence: str, *headers: str) -> bytes:
    """An answer {"error": sentence} that closes the connection, as the bytes written to it."""
    body = json.dumps({"error": sentence}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: vaekit-serve\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{h}\r\n" for h in headers)
            + "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def busy_answer(max_connections: int) -> bytes:
    """The 503 of a server whose workers are all taken."""
    return answer(503, f"the explorer is serving {max_connections} connections already; try again in "
                  "a moment.", "Retry-After: 1")


def heavy_busy_answer(max_heavy: int, why: str) -> bytes:
    """The 503 of a request that computes with the model, refused as every worker that may compute
    with it is busy (`why`: what then happened to it)."""
    workers = ("the explorer's model worker is" if max_heavy == 1
               else f"all {max_heavy} of the explorer's model workers are")
    return answer(503, f"{workers} busy, and {why}; try again in a moment.", "Retry-After: 1")


def full_answer() -> bytes:
    """The 503 of a doorman holding all the connections or bytes it may."""
    return answer(503, "the explorer is receiving too many requests already; try again in a moment.",
                  "Retry-After: 1")


def unread(sock: socket.socket) -> int:
    """The bytes written to a connection that wait for its client to make room (its socket's send
    queue, not yet sent: Linux's SIOCOUTQNSD); 0 where the system does not say."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, bytes(4)))[0])
    except (OSError, ValueError):
        return 0


class Outgoing:
    """The part of an answer still to be written to its connection (`sock`), when it must have been
    read by, and when its client was last seen taking some of it (time.monotonic()s)."""

    def __init__(self, sock: socket.socket, data: memoryview, deadline: float) -> None:
        self.data = data
        self.deadline = deadline
        self.drained: float | None = None
        self.left = len(data) + unread(sock)  # what the client had not taken when last seen

    def seen(self, sock: socket.socket, now: float) -> None:
        """Note whether the client has taken some of its answer since it was last seen."""
        left = len(self.data) + unread(sock)
        if left < self.left:
            self.drained = now
        self.left = left


def least_read(sending: dict[socket.socket, Outgoing]) -> socket.socket:
    """The connection, of those whose answer is being written, whose client has read least
    recently: first those not reading (nothing taken since the hand-over, or nothing in the last
    READING seconds), oldest first, then those reading, the longest since it read first."""
    now = time.monotonic()
    for sock, outgoing in sending.items():
        outgoing.seen(sock, now)

    def key(item: tuple[socket.socket, Outgoing]) -> tuple[bool, float]:
        drained = item[1].drained
        return drained is not None and now - drained < READING, drained or 0.0

    return min(sending.items(), key=key)[0]  # the first of equals: the oldest
