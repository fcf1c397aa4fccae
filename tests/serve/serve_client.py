"""What the explorer's tests share: a server over a run on 127.0.0.1 (`serve`), a small HTTP client
(`Client`) and raw bytes over a socket (`raw_socket`, `split_reply`) for requests no client sends."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vaekit.serve import app

LATENT = 3  # more than 2: the default map is PCA


class Client:
    def __init__(self, server: app.ExplorerServer) -> None:
        self.server = server
        self.host, self.port = server.server_address[:2]

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(str(self.host), int(self.port), timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        status, h, out = self.raw(method, path, data, headers)
        return status, json.loads(out) if h.get("content-type") == "application/json" else out

    def get(self, path: str) -> Any:
        status, out = self.call("GET", path)
        assert status == 200, out
        return out

    def post(self, path: str, body: Any) -> Any:
        status, out = self.call("POST", path, body)
        assert status == 200, out
        return out


def serve(run_dir: Path, **settings: Any) -> Iterator[Client]:
    """A server over `run_dir` in a thread; `settings` override the server's attributes (its
    limits) before it serves."""
    server = app.make_server(run_dir, "127.0.0.1", 0)
    for name, value in settings.items():
        assert hasattr(server, name), name
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def raw_socket(client: Client, data: bytes, timeout: float = 30, half_close: bool = False) -> bytes:
    """`data` sent as it is on a new connection (`half_close`: then the sending side shut), and
    everything the server answers until it closes."""
    with socket.create_connection((str(client.host), int(client.port)), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def split_reply(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of a raw HTTP/1.x answer."""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), reply[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body
