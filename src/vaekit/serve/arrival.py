"""When a connection's request has arrived: the bytes a client sent, gathered until the explorer's
handler (`app.Handler`) can answer them without waiting for more (`Arrival.ready`). The framing is
the handler's own:

- the request line, up to MAX_LINE bytes with its "\\n", after at most one empty line (ignored,
  RFC 9112 2.2). One that is not METHOD TARGET HTTP/1.x (`request_line_ok`) is refused by the
  handler before any header is read: ready at once; so is one whose first bytes hold a byte no
  request line holds (`odd_start`: a TLS handshake sent to http://), before its end arrives.
- then header lines, each up to MAX_LINE bytes, at most MAX_HEADERS with the empty line that ends
  them (http.client's limits; past them the handler answers 431): ready at the empty line, or as
  soon as a line is too long or one too many (a line over MAX_LINE is refused after MAX_LINE + 1
  bytes, the request line with a 414).
- then the body, when the headers give one Content-Length of at most request.MAX_BODY bytes, no
  Transfer-Encoding, and no line the handler refuses: ready once that many bytes follow the empty
  line. Any other request is answered without its body being read (400, 411, 413, and 417 for an
  expectation other than 100-continue): ready at the empty line.
- a request of HTTP/1.1 (or a later 1.x) whose headers say `Expect: 100-continue` and whose body has
  not arrived whole is ready at the empty line too: the handler checks it without its body and
  either refuses it (a final 4xx at once) or asks for the body (`awaiting_body`), which the doorman
  then asks of the client with an interim `100 Continue` (RFC 9110 10.1.1) and receives, the
  request ready again once the body has arrived (`continued`). An HTTP/1.0 client knows no 1xx
  answer: its 100-continue is ignored.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from vaekit.serve.request import LENGTH_TEXT, MAX_BODY

MAX_LINE = 65536  # bytes of the request line, and of each header line (http.client's limit)
MAX_HEADERS = 100  # header lines, the empty one that ends them included (http.client's limit)
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a method: RFC 9110's token
VERSION = re.compile(r"HTTP/1\.[0-9]")
LINE_BYTE = re.compile(rb"[^\t\x20-\x7e]")  # in a request line: none (RFC 9112 3, RFC 3986 2.1)
START_BYTE = re.compile(rb"[^\t\r\x20-\x7e]")  # the same before the line's end (its CR may end it)
NAME = re.compile(rb"[!-9;-~]+")  # a header name as the email parser reads one: printable, no colon


def request_words(line: bytes) -> list[str]:
    """The words of a request line, split as the handler splits them."""
    return str(line, "iso-8859-1").rstrip("\r\n").split()


def odd_byte(line: bytes) -> int | None:
    """The first byte of a request line (its CRLF left out) that is not printable ASCII, a space or
    a tab: a control character or a byte of another encoding, which a target sends
    percent-encoded; None if there is none."""
    found = LINE_BYTE.search(line.rstrip(b"\r\n"))
    return None if found is None else found.group()[0]


def request_line_ok(line: bytes) -> bool:
    """Whether the handler reads headers after `line`: METHOD TARGET HTTP/1.x, in printable ASCII."""
    if odd_byte(line) is not None:
        return False
    words = request_words(line)
    return len(words) == 3 and bool(TOKEN.fullmatch(words[0])) and bool(VERSION.fullmatch(words[2]))


def expectation(values: list[str]) -> str | None:
    """What the Expect headers of a request ask (each header's value in `values`): None for none
    (or empty ones), "100-continue", or "unmet" for any other expectation (compared
    case-insensitively; a list of expectations is unmet unless each is 100-continue)."""
    members = [m.strip().lower() for v in values for m in v.split(",") if m.strip()]
    if not members:
        return None
    return "100-continue" if members and all(m == "100-continue" for m in members) else "unmet"


def not_arrived(seconds: float) -> str:
    """The sentence of a 408."""
    return f"the request did not arrive whole within {seconds:g} seconds."


class Arrival:
    """One connection and its request as it arrives: `data`, the bytes received so far (the
    receiver appends to it), and `deadline` (a time.monotonic()), by which the request must have
    arrived whole."""

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.data = bytearray()
        self._line = 0  # where the line being read starts
        self._seen = 0  # bytes already searched for its end
        self._lines = 0  # lines read: the request line, then the header lines
        self._lengths: list[bytes] = []  # the Content-Length headers' values
        self._whole_body = True  # False once the handler will not read the body
        self._end: int | None = None  # the bytes of the whole request, once its headers have ended
        self.bare_cr = False  # a CR not before a LF in the request line or a header: refused at once
        self._old = False  # an HTTP/1.0 request
        self._expects: list[str] = []  # the Expect headers' values
        self.continued = False  # the interim 100 Continue sent: the body is on its way
        self.odd_start: bytes | None = None  # a request line refused before its end: what came of it

    def ready(self) -> bool:
        """Whether the handler can answer the request now, without waiting for more bytes."""
        while self._end is None:
            newline = self.data.find(b"\n", max(self._line, self._seen))
            if newline < 0:  # a request line that can be no request's is answered before its end
                if self._lines == 0 and START_BYTE.search(self.data, max(self._line, self._seen)):
                    self.odd_start = bytes(self.data[self._line:])  # a TLS handshake (https://), say
                    return True
                self._seen = len(self.data)
                return len(self.data) - self._line > MAX_LINE
            line = bytes(self.data[self._line:newline + 1])
            self._line = self._seen = newline + 1
            if newline + 1 == len(line) and line in (b"\r\n", b"\n"):  # one before the request line
                continue  # is ignored, as the handler ignores it (RFC 9112 2.2)
            self._lines += 1
            if len(line) > MAX_LINE or self._lines - 1 > MAX_HEADERS:
                return True
            if b"\r" in line.removesuffix(b"\r\n"):  # a bare CR: the handler's parser splits on it
                self.bare_cr = True
                return True
            if self._lines == 1:
                if not request_line_ok(line):
                    return True
                self._old = request_words(line)[2] == "HTTP/1.0"
            elif line in (b"\r\n", b"\n"):
                if expectation(self._expects) == "unmet":
                    self._whole_body = False
                self._end = self._line + self.body_length()
            else:
                self.header(line)
        return len(self.data) >= self._end or self.awaiting_body()

    def awaiting_body(self) -> bool:
        """Whether the request has arrived without its body, which the client sends once it reads an
        interim 100 Continue (Expect: 100-continue, HTTP/1.1)."""
        return (self._end is not None and not self.continued and len(self.data) < self._end
                and not self._old and expectation(self._expects) == "100-continue")

    def headers_ended(self) -> bool:
        """Whether the empty line that ends the headers has arrived (a client that closed its side
        before it sent an incomplete request)."""
        self.ready()
        return self._end is not None

    def header(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if not colon or not NAME.fullmatch(name) or name.lower() == b"transfer-encoding":
            self._whole_body = False
        elif name.lower() == b"content-length":
            self._lengths.append(value)
        elif name.lower() == b"expect":
            self._expects.append(str(value, "iso-8859-1"))

    def body_length(self) -> int:
        """The bytes of body the handler will read: those of a Content-Length it takes, else 0."""
        if not self._whole_body or len(self._lengths) != 1:
            return 0
        text = str(self._lengths[0], "iso-8859-1").strip()
        taken = LENGTH_TEXT.fullmatch(text) and len(text.lstrip("0")) <= 18 and int(text) <= MAX_BODY
        return int(text) if taken else 0
