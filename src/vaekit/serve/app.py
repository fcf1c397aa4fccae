"""The latent explorer's server (`vaekit serve RUN_DIR`): the page (`static.py`) and the JSON API
(`api.py`) over one trained VAE run (`explorer.py`), on localhost.

Why the standard library's `http.server`: it adds no dependency, and one user on the loopback
interface (a page that asks for a decode as a slider moves) is far below what a thread per
request can serve (`connection.py`: the threads, the deadline on a request, the close; a
connection waits for its request at `doorman.py`, without a thread). It is not a server for the
open internet: it binds 127.0.0.1 by default and `vaekit serve --host` warns
for any other address.

    GET  /                      the page (static/index.html)
    GET  /static/NAME           a file directly in static/ (nothing else: no '..', no sub-folders)
    GET, POST /api/...          the JSON API (`api.ROUTES`)

HEAD is answered as GET, without the body; any other method is a 405 with an Allow header. One
request per connection, in HTTP/1.0 or HTTP/1.1. Refused before the API sees it: a request line that
is not METHOD TARGET HTTP/1.x in printable ASCII (a control byte or one of another encoding, an
HTTP/0.9 line, HTTP/2's preface: 400; over 64 KiB: 414), a
malformed header line (400), headers too large (431), and on loopback a Host header that names
another machine (400: a page of another site whose name was rebound to 127.0.0.1 sends its own
name), an Expect header other than 100-continue (417). A POST's body: `request.py` (411, 413, 415,
400); one sent with `Expect: 100-continue` is asked for with an interim 100 Continue once the rest of
the request is found acceptable, and refused at once otherwise (`arrival.py`). A request that has
not arrived whole by its deadline: 408; a server with every thread busy, or holding all the
connections it may: 503.

Every request to the API runs under `torch.inference_mode()`. Every error is a 4xx (5xx for a bug
or a full server) whose body is {"error": "one sentence."}; http.server's own errors too, and never
a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import socketserver
from email import errors
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import torch

from vaekit.errors import ConfigError
from vaekit.serve.api import HEAVY, ROUTES
from vaekit.serve.arrival import (
    MAX_LINE,
    TOKEN,
    VERSION,
    Arrival,
    expectation,
    not_arrived,
    odd_byte,
    request_words,
)
from vaekit.serve.connection import ArrivalHandler, BoundedHTTPServer, RequestTimeout
from vaekit.serve.explorer import Explorer
from vaekit.serve.request import (
    MAX_BODY,
    ApiError,
    check_framing,
    content_length,
    json_content_type,
    no_content_coding,
    parse_body,
    parse_query,
)
from vaekit.serve.static import page, static_file

TIMEOUT = 30.0  # seconds each write of an answer may wait for the client to take it
OWN_ERRORS = {400: "the request could not be read (a malformed request line or header).",
              431: "the request headers are too large."}
OTHER_VERSION = re.compile(r"HTTP/[0-9]{1,2}(\.[0-9]{1,2})?")
HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(:[0-9]+)?")  # name or [IPv6], then a port of any digits
PAGE = ("/", "/index.html")
# what the email parser says of a header line it could not read (it drops that line and every one after)
BAD_HEADER_LINE = (errors.MissingHeaderBodySeparatorDefect, errors.FirstHeaderLineIsContinuationDefect,
                   errors.InvalidHeaderDefect)


# A percent-encoded letter, digit, '-', '.', '_' or '~' in a path is that character (RFC 3986, 6.2.2.2)
UNRESERVED = re.compile("%(" + "|".join(f"{c:02X}" for c in range(128)
                                        if chr(c).isalnum() or chr(c) in "-._~") + ")", re.IGNORECASE)


def allowed(path: str) -> tuple[str, ...]:
    """The methods `path` answers: GET and HEAD for the page, its files and the API's GETs, POST for
    the API's POSTs; all three for an address the explorer does not have (then a 404)."""
    if path in PAGE or path.startswith("/static/"):
        return ("GET", "HEAD")
    route = ROUTES.get(path)
    if route is None:
        return ("GET", "HEAD", "POST")
    return ("GET", "HEAD") if route[0] == "GET" else ("POST",)


def method_refused(methods: tuple[str, ...], command: str) -> ApiError:
    """The 405 of `command` at an address that answers `methods`."""
    where = "the explorer" if len(methods) == 3 else "this address"
    names = " and ".join([", ".join(methods[:-1]), methods[-1]] if len(methods) > 1 else methods)
    return ApiError(405, f"{where} answers {names} only, not {command[:10]}.", {"Allow": ", ".join(methods)})


class Handler(ArrivalHandler):
    server: ExplorerServer
    timeout = TIMEOUT
    protocol_version = "HTTP/1.1"  # the status lines; every answer closes its connection (Connection: close)

    def handle(self) -> None:
        """One request per connection (http.server would keep an HTTP/1.1 one open for the next)."""
        self.handle_one_request()

    def handle_expect_100(self) -> bool:
        """The interim 100 Continue was the doorman's to send, before the body arrived (`arrival`)."""
        return True

    def version_string(self) -> str:
        return "vaekit-serve"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request, and never a traceback."""

    def handle_one_request(self) -> None:
        """Read, check and answer the connection's request. One that has not arrived whole by its
        deadline is a 408 (a connection that sent nothing is closed without an answer); a connection
        that breaks is closed."""
        self.command, self.request_version, self.requestline = "", "HTTP/1.0", ""
        self.close_connection = True
        try:
            self.raw_requestline = self.arrival.odd_start or self.rfile.readline(MAX_LINE + 1)
            if self.raw_requestline in (b"\r\n", b"\n"):  # one empty line first: ignored (RFC 9112 2.2)
                self.raw_requestline = self.arrival.odd_start or self.rfile.readline(MAX_LINE + 1)
            if not self.raw_requestline:
                return
            if len(self.raw_requestline) > MAX_LINE:
                return self.refuse(414, "the request line is too long.")
            if self.parse_request():
                self.dispatch()
        except RequestTimeout:
            if self.reader.received:
                self.refuse(408, not_arrived(self.server.request_timeout))
        except (ConnectionError, TimeoutError):
            pass

    def parse_request(self) -> bool:
        """The request line checked before http.server reads it and the headers: METHOD TARGET
        HTTP/1.x and nothing else (an HTTP/0.9 line has no version, and http.server would wait for
        headers that never come; HTTP/2's preface is a line of version 2.0); then the headers,
        refused if a line is malformed (the email parser would drop it and every line after it)."""
        if self.arrival.bare_cr:  # a line break to one parser and not to another: framing to smuggle by
            self.refuse(400, "a line of the request holds a CR that does not end it; lines end in CRLF.")
            return False
        odd = odd_byte(self.raw_requestline)
        if self.raw_requestline.startswith(b"\x16\x03"):  # a TLS record: a ClientHello
            self.refuse(400, "the explorer speaks plain HTTP; open it at http://, not https://.")
            return False
        if odd is not None:
            self.refuse(400, f"the request line holds the byte 0x{odd:02X}, which is not printable ASCII; "
                             "a target sends other characters percent-encoded.")
            return False
        words = request_words(self.raw_requestline)
        if len(words) != 3 or not TOKEN.fullmatch(words[0]):
            self.refuse(400, "the request line must be METHOD TARGET HTTP/1.1 (or HTTP/1.0).")
            return False
        if not VERSION.fullmatch(words[2]):
            said = words[2] if OTHER_VERSION.fullmatch(words[2]) else "another protocol"
            self.refuse(400, f"the explorer speaks HTTP/1.1 and HTTP/1.0 only, not {said}.")
            return False
        if not super().parse_request():
            return False
        if not self.arrival.headers_ended():  # the client closed its side: the rest will never come
            self.refuse(400, "the request ended before its headers did (no empty line after them).")
            return False
        if (any(isinstance(d, BAD_HEADER_LINE) for d in self.headers.defects)
                or any(c in str(v) for v in self.headers.values() for c in "\r\n\0")):
            self.refuse(400, "a header line of the request is malformed.")
            return False
        if self.request_version == "HTTP/1.1" and self.headers.get_all("Host") is None:
            self.refuse(400, "an HTTP/1.1 request must have a Host header.")
            return False
        if expectation(self.headers.get_all("Expect", [])) == "unmet":
            self.refuse(417, "the explorer meets no expectation but 100-continue; send the request "
                        "without that Expect header.")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (headers too large) as JSON, with a fixed sentence (http.server's
        would quote the request)."""
        self.refuse(code, OWN_ERRORS.get(code, "the request could not be read."))

    def refuse(self, status: int, sentence: str) -> None:
        """A request refused before the API sees it, answered as JSON."""
        self.close_connection = True
        self.send_json(status, {"error": sentence})

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj, allow_nan=False).encode(), "application/json", headers)

    def send_bytes(self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.connection.settimeout(self.timeout)  # the reads had what was left of their deadline
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")  # one request per connection, its body read or not
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def check_host(self, url: SplitResult) -> None:
        """On loopback, the host a request names must be a loopback address (localhost, 127.0.0.1,
        [::1], with any port): a page of another site whose name was rebound to 127.0.0.1 (DNS
        rebinding) sends its own name. The host is the target's authority when the target is an
        absolute URL (RFC 9112 3.2.2), else the Host header; an HTTP/1.0 request without either is
        taken. A refusal names the one it read (the request target or the Host header) and the host."""
        hosts = [url.netloc] if url.netloc else self.headers.get_all("Host")
        named, port_of = (("the request target", "the request target's port") if url.netloc
                          else ("the Host header", "the Host header's port"))
        if hosts is not None and len(hosts) > 1:  # RFC 9112 3.2: a 400, whatever they name
            raise ApiError(400, "the Host header is given more than once.")
        match = HOST.fullmatch(hosts[0].strip()) if hosts else None
        port = match[2][1:] if match is not None and match[2] is not None else None
        number = None if port is None else port.lstrip("0")  # zeros in front change nothing (*DIGIT)
        if port is not None and (len(number or "") > 5 or not 1 <= int(number or "0") <= 65535):
            shown = port if len(port) <= 20 else f"{port[:20]}... ({len(port):,} digits)"
            raise ApiError(400, f"{port_of} must be 1 to 65535, got {shown}.")
        if not self.server.check_host or hosts is None:
            return
        if match is None or not is_loopback(match[1].strip("[]").lower()):
            raise ApiError(400, f"{named} must name this machine (localhost or a loopback address), got "
                           f"{hosts[0].strip()[:60]!r}; the explorer answers to no other name.")

    def target(self) -> SplitResult:
        """The request target: a path (/api/info) or an absolute http:// URL with a valid port;
        anything else is a 400."""
        try:
            url = urlsplit(self.path)
            if not self.path.startswith("/"):
                if url.scheme.lower() != "http" or not url.netloc or not url.path.startswith("/"):
                    raise ValueError(self.path)
                url.port  # noqa: B018 - a port out of range or not a number is a ValueError
        except ValueError:  # e.g. an unclosed [ in an absolute URL
            if self.command not in allowed(""):  # CONNECT host:port: the method is what is wrong
                raise method_refused(allowed(""), self.command) from None
            raise ApiError(400, "the request target must be a path (/api/info) or an http:// URL "
                           "of this machine.") from None
        return url._replace(path=UNRESERVED.sub(lambda m: chr(int(m[1], 16)), url.path))

    def read_body(self) -> dict[str, Any] | None:
        """The POST's body, once its headers are found acceptable; None for a request that awaits an
        interim 100 Continue before it sends its body (`Arrival.awaiting_body`)."""
        n = content_length(self.headers.get_all("Content-Length"), self.headers.get_all("Transfer-Encoding"))
        json_content_type(self.headers.get_all("Content-Type"))
        no_content_coding(self.headers.get_all("Content-Encoding"))
        if n > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY // 2**20} MB.")
        if self.arrival.awaiting_body():
            return None
        raw = self.rfile.read(n)
        if len(raw) < n:
            raise ApiError(400, "the body ended before the length its Content-Length header announced.")
        return parse_body(raw)

    def dispatch(self) -> None:
        try:
            url = self.target()
            self.check_host(url)
            path = url.path
            methods = allowed(path)
            if self.command not in methods:
                raise method_refused(methods, self.command)
            if self.command != "POST":  # no body is read, but a request framed wrongly is refused
                check_framing(self.headers.get_all("Content-Length"),
                              self.headers.get_all("Transfer-Encoding"))
            if path in PAGE:
                return self.send_bytes(200, *page())
            if path.startswith("/static/"):
                return self.send_bytes(200, *static_file(path.removeprefix("/static/")))
            route = ROUTES.get(path)
            if route is None:
                raise ApiError(404, f"no such page or API endpoint; the API is {', '.join(ROUTES)}.")
            method, endpoint, params = route
            query = parse_query(url.query, params)
            body = self.read_body() if method == "POST" else None
            if method == "POST" and body is None:  # the doorman asks for the body (100 Continue)
                self.resume = True
                return
            with torch.inference_mode():
                out = endpoint(self.server.explorer, query, body)
            self.send_json(200, out)
        except ApiError as err:
            self.send_json(err.status, {"error": err.message}, err.headers)
        except (ConnectionError, TimeoutError):
            raise  # the connection, not the request: handle_one_request closes it
        except Exception as err:  # a bug: answered, never a traceback on the console
            self.send_json(500, {"error": f"internal error of the explorer ({type(err).__name__})."})


class ExplorerServer(BoundedHTTPServer):
    """A thread per request (up to `max_connections`) over one read-only `Explorer`."""

    check_host: bool  # refuse a Host header that is not a loopback name (when bound to loopback)

    def __init__(self, address: tuple[str, int], explorer: Explorer) -> None:
        self.explorer = explorer
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, Handler)
        self.check_host = is_loopback(str(self.server_address[0]))  # as bound: '127.1' is 127.0.0.1

    def heavy(self, arrival: Arrival) -> bool:
        """Whether the request asks an endpoint that computes with the model (`api.HEAVY`): those run
        in a lane of their own (`connection.py`). A POST that awaits its body is only checked (the
        handler computes nothing before the body); any other method computes without one."""
        words = request_words(bytes(arrival.data[:arrival.data.find(b"\n") + 1]))
        try:
            path = urlsplit(words[1]).path if len(words) == 3 else ""
        except ValueError:
            return False
        return path in HEAVY and not (words[0] == "POST" and arrival.awaiting_body())

    def server_bind(self) -> None:
        """As HTTPServer's, without its reverse DNS lookup of the host (slow on a machine without DNS)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke mid-request: nothing to print."""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                device: str | torch.device = "cpu") -> ExplorerServer:
    """The explorer of `run_dir`, its model on `device` (cpu, cuda, auto), bound to host:port (0: a
    free port), not yet serving: call `serve_forever()` (a thread in tests), then `shutdown()` and
    `server_close()`. A bad run is a CheckpointError, a device that is not there or an address that
    cannot be bound a ConfigError (one sentence each)."""
    explorer = Explorer.load(run_dir, device)
    try:
        return ExplorerServer((host, port), explorer)
    except (OSError, OverflowError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"cannot listen on {host}:{port} ({why.rstrip('.').lower()}).") from None
