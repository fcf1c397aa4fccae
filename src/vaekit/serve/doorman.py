"""The doorman: one thread that holds the explorer's connections while their requests arrive, so
that a connection costs a worker thread only once its whole request is there (`arrival.py`). A
client that sends nothing, or a byte a second, holds a socket here, never a worker.

- The listening thread gives each accepted connection to the doorman (`admit`) and goes back to
  accepting: it never waits.
- One selector watches every connection held, non-blocking, and what each sends is buffered.
- A request that has arrived (whole, or far enough for the handler to refuse it, or as far as a
  client that closed its side sent it) is handed to a worker with its bytes (`Hall.take`); with
  every worker busy, it is answered 503 at once.
- A connection whose request has not arrived by its deadline (`request_timeout` seconds after it
  was accepted) is answered 408; one that sent nothing is closed without an answer.
- At most `max_pending` connections are held (fewer where the open-file limit leaves less room):
  a newcomer that finds them all held takes the place of the oldest (`make_room`: one already
  answered is closed, else one that has sent nothing, else the oldest still arriving is answered
  503), so that clients who hold connections open cannot keep the others out. At most
  `max_buffered` bytes are buffered across them: past that a newcomer is answered 503 at once, and
  so is a connection whose next bytes find the buffer full.
- A worker's answer (`send`) is written by the worker as far as the socket takes it at once (all
  of it, for most answers); the rest is the doorman's to write as the client reads it, so that a
  client that does not read holds no worker either. It has `request_timeout` seconds from the
  hand-over to be read; its bytes count in `max_buffered`, and past it an answer still being
  written is dropped (its connection closed) to make room: the one whose client has read least
  recently (`outgoing.least_read`): those that have read nothing since the hand-over, nor in the last
  READING seconds, go first, oldest first, so that a slow client that reads keeps its answer while
  clients that read nothing lose theirs.
- A request sent with `Expect: 100-continue` that a worker found acceptable without its body comes
  back (`resume`): the doorman answers the interim `HTTP/1.1 100 Continue` and receives the body
  as it received the rest.
- A connection answered, here or by a worker (`linger`), is closed gracefully: once the answer's
  end is signalled, what the client still sends is read and dropped for up to `linger` seconds (a
  close with unread bytes is a reset, which can destroy the answer before the client reads it).
"""

from __future__ import annotations

import collections
import resource
import selectors
import socket
import threading
import time
from typing import Any, Protocol, cast

from vaekit.serve.arrival import Arrival, not_arrived
from vaekit.serve.outgoing import Outgoing, answer, full_answer, least_read

CHUNK = 65536  # bytes read from a connection at a time
FILES_KEPT = 64  # open files left for the rest of the process (model files, pipes, the selector)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Hall(Protocol):
    """What the doorman reads of the server: its limits, and `take`, which gives a request that
    has arrived to a worker thread (else the 503 that says why, the connection untouched)."""

    max_connections: int
    max_queued: int
    max_pending: int
    max_buffered: int
    request_timeout: float
    linger: float

    def take(self, arrival: Arrival) -> bytes | None: ...


def file_room(max_connections: int) -> int:
    """The connections the doorman may hold within the process's open-file limit: what the limit
    leaves beside `max_connections` served (by workers, or queued for one) and FILES_KEPT."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 2**31
    return max(1, soft - max_connections - FILES_KEPT)


def refuse_at_once(sock: socket.socket, data: bytes) -> None:
    """`data` written to a connection and the connection closed, without waiting: what the client
    has sent so far (up to 1 MiB) is read first, so that the close is not a reset."""
    try:
        sock.setblocking(False)
        try:
            for _ in range(16):
                if not sock.recv(CHUNK):
                    break
        except BlockingIOError:
            pass
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


class Doorman:
    """The thread, its selector and the connections it holds (see the module's docstring). It
    starts with the first connection admitted; `stop` closes every connection it holds."""

    def __init__(self, hall: Hall) -> None:
        self.hall = hall
        self.lock = threading.Lock()  # over incoming, thread and stopped
        # connections given to the doorman: (socket, address, when accepted); in place of the
        # address, None for one answered, or the Outgoing rest of its answer
        self.incoming: collections.deque[tuple[socket.socket, Any, float]] = collections.deque()
        self.thread: threading.Thread | None = None
        self.stopped = False
        self.arriving: dict[socket.socket, Arrival] = {}
        self.sending: dict[socket.socket, Outgoing] = {}  # answers being written
        self.leaving: dict[socket.socket, float] = {}  # answered: when to close at the latest
        self.buffered = 0
        self.room = 1

    def admit(self, sock: socket.socket, address: Any) -> None:
        """Take an accepted connection (the listening thread's call; it returns at once)."""
        if not self.give(sock, address, len(self.incoming) < self.hall.max_pending):
            refuse_at_once(sock, full_answer())

    def linger(self, sock: socket.socket) -> None:
        """Take a connection a worker has answered, the answer's end signalled, to be closed."""
        if not self.give(sock, None, True):
            sock.close()

    def send(self, sock: socket.socket, data: bytes) -> None:
        """Write a worker's answer (its thread's call): what the socket takes at once, here; the
        rest by the doorman's thread, as the client reads it. Then the end is signalled and the
        connection lingers (`linger`)."""
        view = memoryview(data)
        try:
            sock.setblocking(False)
            while view:
                view = view[sock.send(view):]
        except BlockingIOError:
            pass
        except OSError:  # the client is gone
            sock.close()
            return
        if view:
            if not self.give(sock, Outgoing(sock, view, time.monotonic() + self.hall.request_timeout), True):
                sock.close()
            return
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self.linger(sock)

    def resume(self, arrival: Arrival) -> None:
        """Take back a request a worker found acceptable without its body, to ask for the body with
        an interim 100 Continue and receive it."""
        arrival.continued = True
        if not self.give(arrival.sock, arrival, True):
            arrival.sock.close()

    def give(self, sock: socket.socket, address: Any, room: bool) -> bool:
        """Queue a connection for the doorman's thread; False if it has stopped or there is no room."""
        with self.lock:
            if self.stopped or not room:
                return False
            if self.thread is None:
                self.start()
            self.incoming.append((sock, address, time.monotonic()))
        self.wake()
        return True

    def start(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.bell, self.ringer = socket.socketpair()
        for end in (self.bell, self.ringer):
            end.setblocking(False)
        self.selector.register(self.bell, selectors.EVENT_READ)
        self.room = file_room(self.hall.max_connections + self.hall.max_queued)
        self.thread = threading.Thread(target=self.run, name="vaekit-serve-doorman", daemon=True)
        self.thread.start()

    def wake(self) -> None:
        try:
            self.ringer.send(b"\0")
        except OSError:  # the bell is full (it will ring anyway) or closed (the doorman stopped)
            pass

    def stop(self, seconds: float = 5.0) -> None:
        """Stop the thread and close every connection it holds."""
        with self.lock:
            self.stopped = True
            thread = self.thread
        if thread is not None:
            self.wake()
            thread.join(seconds)

    def run(self) -> None:
        try:
            while not self.stopped:
                now = time.monotonic()
                deadlines = ([a.deadline for a in self.arriving.values()] + list(self.leaving.values())
                             + [o.deadline for o in self.sending.values()])
                wait = max(0.0, min(deadlines) - now) if deadlines else None
                for key, _ in self.selector.select(wait):
                    self.event(key)
                self.let_in()
                self.expire(time.monotonic())
        finally:
            self.close_all()

    def event(self, key: selectors.SelectorKey) -> None:
        sock = cast(socket.socket, key.fileobj)
        try:
            if sock is self.bell:
                while self.bell.recv(CHUNK):
                    pass
            elif key.data is None:
                self.drop_input(sock)
            elif isinstance(key.data, Outgoing):
                self.write(sock, key.data)
            else:
                self.receive(key.data)
        except BlockingIOError:
            pass
        except Exception:  # a connection that broke, or a bug: that connection is closed, quietly
            self.close(sock)

    def let_in(self) -> None:
        """Hold the connections admitted since the last round, or refuse them when full."""
        while True:
            with self.lock:
                if not self.incoming:
                    return
                sock, address, accepted = self.incoming.popleft()
            if address is None:  # answered by a worker
                self.hold(sock, None)
                continue
            if isinstance(address, Outgoing):  # the rest of a worker's answer
                self.hold_sending(sock, address)
                continue
            if isinstance(address, Arrival):  # a request whose body is to be asked for
                self.ask_body(address)
                continue
            held = len(self.arriving) + len(self.leaving) + len(self.sending)
            if self.buffered >= self.hall.max_buffered or (
                    held >= min(self.hall.max_pending, self.room) and not self.make_room()):
                refuse_at_once(sock, full_answer())
                continue
            arrival = Arrival(sock, address, accepted + self.hall.request_timeout)
            if self.hold(sock, arrival):
                self.event(self.selector.get_key(sock))  # its request may be there already

    def make_room(self) -> bool:
        """Free the place of the oldest connection held, for a newcomer: the one answered longest
        ago is closed, else the oldest that has sent nothing (closed without an answer, as at its
        deadline), else the oldest still arriving is answered 503 and closed, else an answer still
        being written is dropped (`outgoing.least_read`). False if none is held."""
        if self.leaving:
            self.close(next(iter(self.leaving)))
            return True
        idle = next((a for a in self.arriving.values() if not a.data), None)
        if idle is not None:
            self.close(idle.sock)
            return True
        if not self.arriving:
            if not self.sending:
                return False
            self.close(least_read(self.sending))
            return True
        oldest = next(iter(self.arriving.values()))
        self.let_go(oldest)
        refuse_at_once(oldest.sock, full_answer())
        return True

    def hold(self, sock: socket.socket, arrival: Arrival | None) -> bool:
        """Watch a connection: one whose request is arriving, or one answered (`arrival` None)."""
        try:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, arrival)
        except (OSError, ValueError):
            sock.close()
            return False
        if arrival is None:
            self.leaving[sock] = time.monotonic() + self.hall.linger
        else:
            self.arriving[sock] = arrival
        return True

    def hold_sending(self, sock: socket.socket, outgoing: Outgoing) -> None:
        """Watch a connection whose answer is still being written; its bytes counted in the buffer,
        others' answers dropped while they are over it (`outgoing.least_read`)."""
        while self.sending and self.buffered + len(outgoing.data) > self.hall.max_buffered:
            self.close(least_read(self.sending))
        try:
            self.selector.register(sock, selectors.EVENT_WRITE, outgoing)
        except (OSError, ValueError):
            sock.close()
            return
        self.sending[sock] = outgoing
        self.buffered += len(outgoing.data)

    def ask_body(self, arrival: Arrival) -> None:
        """Watch a connection again, its request accepted without its body: ask for the body."""
        try:
            arrival.sock.setblocking(False)
            arrival.sock.send(CONTINUE)  # a few bytes, into an empty socket buffer
        except OSError:
            arrival.sock.close()
            return
        if self.hold(arrival.sock, arrival):
            self.buffered += len(arrival.data)

    def write(self, sock: socket.socket, outgoing: Outgoing) -> None:
        """Write what the connection takes of its answer; at its end, signal it and linger."""
        sent = sock.send(outgoing.data)
        outgoing.data = outgoing.data[sent:]
        self.buffered -= sent
        outgoing.seen(sock, time.monotonic())
        if outgoing.data:
            return
        self.selector.unregister(sock)
        del self.sending[sock]
        sock.shutdown(socket.SHUT_WR)
        self.hold(sock, None)

    def receive(self, arrival: Arrival) -> None:
        """Read what the connection sent; hand its request over once it has arrived, or once the
        client has sent all it will (the handler answers what it got)."""
        room = self.hall.max_buffered - self.buffered
        if room <= 0:
            return self.answer(arrival, full_answer())
        chunk = arrival.sock.recv(min(CHUNK, room))
        if not chunk and not arrival.data:
            return self.close(arrival.sock)
        arrival.data += chunk
        self.buffered += len(chunk)
        if not chunk or arrival.ready():
            self.hand_over(arrival)

    def hand_over(self, arrival: Arrival) -> None:
        self.let_go(arrival)
        arrival.sock.setblocking(True)
        refusal = self.hall.take(arrival)
        if refusal is not None:
            arrival.sock.setblocking(False)
            self.answer(arrival, refusal, held=False)

    def let_go(self, arrival: Arrival) -> None:
        """The connection is no longer the doorman's: out of the selector, its bytes not counted."""
        self.selector.unregister(arrival.sock)
        del self.arriving[arrival.sock]
        self.buffered -= len(arrival.data)

    def answer(self, arrival: Arrival, data: bytes, held: bool = True) -> None:
        """Answer `data` (small: it fits the socket's buffer at once), then linger until closing."""
        if held:
            self.let_go(arrival)
        try:
            arrival.sock.sendall(data)
            arrival.sock.shutdown(socket.SHUT_WR)
        except OSError:
            arrival.sock.close()
            return
        self.hold(arrival.sock, None)

    def drop_input(self, sock: socket.socket) -> None:
        """Read and drop what an answered client still sends; close at its end."""
        if not sock.recv(CHUNK):
            self.close(sock)

    def expire(self, now: float) -> None:
        """Answer 408 the connections past their deadline (close those that sent nothing), close
        those that have lingered long enough, and those whose answer was not read in time."""
        for arrival in [a for a in self.arriving.values() if a.deadline <= now]:
            if arrival.data:
                self.answer(arrival, answer(408, not_arrived(self.hall.request_timeout)))
            else:
                self.close(arrival.sock)
        for sock in [s for s, deadline in self.leaving.items() if deadline <= now]:
            self.close(sock)
        for sock in [s for s, outgoing in self.sending.items() if outgoing.deadline <= now]:
            self.close(sock)

    def close(self, sock: socket.socket) -> None:
        """Close a connection the doorman holds, whatever its state."""
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        arrival = self.arriving.pop(sock, None)
        if arrival is not None:
            self.buffered -= len(arrival.data)
        self.leaving.pop(sock, None)
        outgoing = self.sending.pop(sock, None)
        if outgoing is not None:
            self.buffered -= len(outgoing.data)
        sock.close()

    def close_all(self) -> None:
        with self.lock:
            self.stopped = True
            incoming = [sock for sock, _, _ in self.incoming]
            self.incoming.clear()
        for sock in incoming + list(self.arriving) + list(self.leaving) + list(self.sending):
            self.close(sock)
        self.selector.close()
        self.bell.close()
        self.ringer.close()
