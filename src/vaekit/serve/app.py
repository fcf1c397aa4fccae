"""The latent explorer's server (`vaekit serve RUN_DIR`): the page (`static.py`) and the JSON API
(`api.py`) over one trained VAE run (`explorer.py`), on localhost.

Why the standard library's `http.server.ThreadingHTTPServer`: it adds no dependency, and one user
on the loopback interface (a page that asks for a decode as a slider moves) is far below what a
thread per connection can serve. It is not a server for the open internet: it binds 127.0.0.1 by
default and `vaekit serve --host` warns for any other address.

    GET  /                      the page (static/index.html)
    GET  /static/NAME           a file directly in static/ (nothing else: no '..', no sub-folders)
    GET, POST /api/...          the JSON API (`api.ROUTES`)

Every request to the API runs under `torch.inference_mode()`. Every error is a 4xx (5xx for a bug)
whose body is {"error": "one sentence."}; http.server's own errors too, and never a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from vaekit.errors import ConfigError
from vaekit.serve.api import ROUTES
from vaekit.serve.explorer import Explorer
from vaekit.serve.request import MAX_BODY, ApiError, content_length, parse_body, parse_query
from vaekit.serve.static import page, static_file

TIMEOUT = 30.0  # seconds a connection may stay silent mid-request
OWN_ERRORS = {400: "the request could not be read (a malformed request line or header).",
              414: "the request line is too long.", 431: "the request headers are too large.",
              501: "this method is not supported; the explorer answers GET and POST."}


class Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    timeout = TIMEOUT

    def version_string(self) -> str:
        return "vaekit-serve"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request, and never a traceback."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, an unsupported method) as JSON, with
        a fixed sentence (http.server's would quote the request); always with headers, even for a
        request line too broken to say its HTTP version."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        self.send_json(code, {"error": OWN_ERRORS.get(code, "the request could not be read.")})

    def send_json(self, status: int, obj: Any) -> None:
        self.send_bytes(status, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def send_bytes(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self) -> dict[str, Any]:
        n = content_length(self.headers.get("Content-Length"))
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"the body is larger than {MAX_BODY // 2**20} MB.")
        return parse_body(self.rfile.read(n))

    def dispatch(self) -> None:
        try:
            url = urlsplit(self.path)
            path = url.path
            if path in ("/", "/index.html"):
                self.method_is("GET")
                return self.send_bytes(200, *page())
            if path.startswith("/static/"):
                self.method_is("GET")
                return self.send_bytes(200, *static_file(path.removeprefix("/static/")))
            route = ROUTES.get(path)
            if route is None:
                raise ApiError(404, f"no such page or API endpoint; the API is {', '.join(ROUTES)}.")
            method, endpoint, params = route
            self.method_is(method)
            query = parse_query(url.query, params)
            body = self.read_body() if method == "POST" else None
            with torch.inference_mode():
                out = endpoint(self.server.explorer, query, body)
            self.send_json(200, out)
        except ApiError as err:
            self.send_json(err.status, {"error": err.message})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # a bug: answered, never a traceback on the console
            self.send_json(500, {"error": f"internal error of the explorer ({type(err).__name__})."})

    def method_is(self, method: str) -> None:
        if self.command != method:
            raise ApiError(405, f"this address answers {method} only, not {self.command[:10]}.")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch


class ExplorerServer(ThreadingHTTPServer):
    """A thread per connection over one read-only `Explorer`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], explorer: Explorer) -> None:
        self.explorer = explorer
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, Handler)

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
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
