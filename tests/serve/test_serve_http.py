"""`vaekit serve` at the HTTP level, against what a hostile client or a web page can send: every such
request gets a 4xx and one JSON sentence (never a 5xx, never silence, never a silent accept), slow
clients are cut at a deadline, a burst of connections is answered (200 or 503), not reset, and the
server answers a good request after each. Raw requests go over a socket (`serve_client.raw_socket`)
where http.client would refuse to send them."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_client import LATENT, Client, raw_socket, serve, split_reply

from vaekit.serve import app
from vaekit.serve.request import MAX_BODY, MAX_QUERY_FIELDS

Z = json.dumps({"z": [0.0] * LATENT}).encode()


@pytest.fixture(scope="module")
def client(run_dir: Path) -> Iterator[Client]:
    yield from serve(run_dir)


def ask(client: Client, data: bytes, timeout: float = 10,
        half_close: bool = False) -> tuple[int, dict[str, str], bytes]:
    return split_reply(raw_socket(client, data, timeout, half_close))


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body


def json_post(body: bytes, *headers: str) -> bytes:
    length = f"Content-Length: {len(body)}"
    return post("/api/decode", body, "Content-Type: application/json", length, *headers)


def check_refusal(reply: tuple[int, dict[str, str], bytes], expected: int,
                  one_sentence: Callable[..., None]) -> dict[str, str]:
    status, headers, body = reply
    assert status == expected, (status, body)
    assert headers["content-type"] == "application/json"
    out = json.loads(body)
    assert set(out) == {"error"}, out
    one_sentence(out["error"])
    return headers


def still_answers(client: Client) -> None:
    assert client.get("/api/info")["latent_dim"] == LATENT


# ----------------------------------------------------------------------------- the request line


@pytest.mark.parametrize("path", ["/api/info", "/api/samples", "/api/code", "/api/map", "/"])
def test_too_many_query_fields(client: Client, one_sentence: Callable[..., None], path: str) -> None:
    query = "&".join(f"n={i}" for i in range(MAX_QUERY_FIELDS + 1))
    status, _, body = client.raw("GET", f"{path}?{query}")
    if path == "/":  # the page takes no query and ignores one
        assert status == 200
        return
    check_refusal((status, {"content-type": "application/json"}, body), 400, one_sentence)
    assert f"at most {MAX_QUERY_FIELDS}" in json.loads(body)["error"]
    status, _, body = client.raw("GET", f"{path}?" + "&" * 40)  # empty fields count too
    check_refusal((status, {"content-type": "application/json"}, body), 400, one_sentence)
    still_answers(client)


ALLOW = {"/": "GET, HEAD", "/static/app.js": "GET, HEAD", "/api/info": "GET, HEAD",
         "/api/samples": "GET, HEAD", "/api/decode": "POST", "/api/encode": "POST",
         "/nowhere": "GET, HEAD, POST"}


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PATCH", "OPTIONS", "PUT", "DELETE", "PROPFIND",
                                    "FOO"])
def test_methods_other_than_get_head_post(client: Client, one_sentence: Callable[..., None],
                                          method: str) -> None:
    for path, allow in ALLOW.items():
        reply = ask(client, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert check_refusal(reply, 405, one_sentence)["allow"] == allow, path
    if method == "CONNECT":
        reply = ask(client, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")
        assert check_refusal(reply, 405, one_sentence)["allow"] == "GET, HEAD, POST"
    still_answers(client)


def test_the_wrong_one_of_get_and_post_says_allow(client: Client, one_sentence: Callable[..., None]) -> None:
    reply = ask(client, b"GET /api/decode HTTP/1.0\r\n\r\n")
    assert check_refusal(reply, 405, one_sentence)["allow"] == "POST"
    reply = ask(client, json_post(b"{}").replace(b"/api/decode", b"/api/info"))
    assert check_refusal(reply, 405, one_sentence)["allow"] == "GET, HEAD"


def test_head_is_get_without_a_body(client: Client) -> None:
    for path in ("/", "/static/app.js", "/api/info", "/api/samples?n=2", "/api/code?index=3"):
        get_status, get_headers, get_body = client.raw("GET", path)
        status, headers, body = split_reply(raw_socket(client, f"HEAD {path} HTTP/1.0\r\n\r\n".encode()))
        assert (status, body) == (200, b""), path
        assert headers["content-type"] == get_headers["content-type"]
        assert int(headers["content-length"]) == len(get_body) > 0
    status, headers, body = split_reply(raw_socket(client, b"HEAD /api/decode HTTP/1.0\r\n\r\n"))
    assert (status, headers["allow"], body) == (405, "POST", b"")
    status, headers, body = split_reply(raw_socket(client, b"HEAD /api/code HTTP/1.0\r\n\r\n"))
    assert (status, body) == (400, b"")


@pytest.mark.parametrize("data", [
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 client's connection preface
    b"GET / HTTP/2.0\r\n\r\n", b"GET /api/info HTTP/3.0\r\n\r\n", b"GET / HTTP/0.9\r\n\r\n",
    b"GET / HTTP/1.1.1\r\n\r\n", b"GET / FTP/1.0\r\n\r\n", b"GET / http/1.1\r\n\r\n",
], ids=lambda d: d.split(b"\r\n")[0].decode())
def test_versions_other_than_http_1(client: Client, one_sentence: Callable[..., None], data: bytes) -> None:
    reply = raw_socket(client, data, timeout=10)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:80]
    check_refusal(split_reply(reply), 400, one_sentence)
    still_answers(client)


@pytest.mark.parametrize("data", [b"GET /\r\n", b"GET /api/info\r\n\r\n", b"POST /api/decode\r\n",
                                  b"GET\r\n\r\n", b"GET / HTTP/1.0 extra\r\n\r\n",
                                  b"\x00\x01 / HTTP/1.0\r\n\r\n", b"G(E)T / HTTP/1.0\r\n\r\n", b"\r\n\r\n",
                                  b"GET http://[::1/api/info HTTP/1.0\r\n\r\n"])
def test_malformed_request_lines_are_refused(client: Client, one_sentence: Callable[..., None],
                                             data: bytes) -> None:
    """A request line without its version (HTTP/0.9) is answered with a status line, at once (an
    empty line is one after the one ignored before the request line)."""
    t0 = time.monotonic()
    reply = raw_socket(client, data, timeout=5)
    assert time.monotonic() - t0 < 4
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:80]
    check_refusal(split_reply(reply), 400, one_sentence)


@pytest.mark.parametrize("data", [b"GET /api/info\x00 HTTP/1.1\r\nHost: localhost\r\n\r\n",
                                  "GET /api/code?index=\u0660 HTTP/1.0\r\n\r\n".encode(),
                                  b"GET /\xa0 HTTP/1.0\r\n\r\n", b"GET /\x7f HTTP/1.0\r\n\r\n"],
                         ids=["nul", "arabic-zero", "nbsp", "del"])
def test_a_byte_not_printable_ascii_in_the_request_line_is_named(
        client: Client, one_sentence: Callable[..., None], data: bytes) -> None:
    """A control byte, or a byte of another encoding than ASCII (a target sends those
    percent-encoded), is a 400 that names the byte: not a 404 for a path holding a NUL, not a
    request line split at 0xA0, which Python counts as a space."""
    line = data.split(b"\r\n")[0]
    odd = next(b for b in line if not (0x20 <= b <= 0x7E or b == 0x09))
    reply = split_reply(raw_socket(client, data, timeout=10))
    check_refusal(reply, 400, one_sentence)
    assert f"0x{odd:02X}" in json.loads(reply[2])["error"], reply
    still_answers(client)


# the first bytes of a TLS 1.2/1.3 ClientHello (a record of type 22, version 3.1): no line ending
# comes, and the client waits for the server's answer
CLIENT_HELLO = bytes.fromhex("16030100f4010000f00303") + bytes(range(32)) + b"\x00\x20\x13\x01"


@pytest.mark.parametrize(("data", "named"), [(CLIENT_HELLO, "http://, not https://"),
                                             (b"\x00\x01GET / HT", "0x00"), (b"GET /\xa0", "0xA0")],
                         ids=["tls-client-hello", "nul", "nbsp"])
def test_a_request_line_no_request_has_is_refused_before_its_end(
        client: Client, one_sentence: Callable[..., None], data: bytes, named: str) -> None:
    """A connection that opens with a byte no request line holds is answered at once, without the
    line's end, which a TLS client (https:// to the explorer) never sends: it would wait out the
    request deadline (30 s here) for a 408. The socket's 10 s timeout fails the test first."""
    assert client.server.request_timeout >= 30
    reply = split_reply(raw_socket(client, data, timeout=10))
    check_refusal(reply, 400, one_sentence)
    assert named in json.loads(reply[2])["error"], reply
    still_answers(client)


# ----------------------------------------------------------------------------- headers and bodies


@pytest.mark.parametrize("head", [b"no colon\r\n", b" X-Folded: 1\r\n", b"Host: localhost\r\n folded\r\n",
                                  b"X-A: 1\r\nno colon\r\nHost: evil.example\r\n", b": no name\r\n",
                                  b"X-\xff: 1\r\n"])
def test_malformed_header_lines_are_refused(client: Client, one_sentence: Callable[..., None],
                                            head: bytes) -> None:
    """The email parser drops a line it cannot read, and every line after it (a Host among them)."""
    check_refusal(ask(client, b"GET /api/info HTTP/1.1\r\n" + head + b"\r\n"), 400, one_sentence)
    still_answers(client)


@pytest.mark.parametrize(("kind", "named"), [
    (None, "does not have"), ("", "got ''"), ("text/plain", "'text/plain'"),
    ("text/plain;charset=UTF-8", "'text/plain;charset=UTF-8'"),
    ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
    ("multipart/form-data; boundary=x", "'multipart/form-data; boundary=x'"),
    ("application/jsonp", "'application/jsonp'"), ("application/json-patch+json", "json-patch"),
    ("application/json; charset=latin-1", "but charset=utf-8 (the body is UTF-8 JSON), got 'charset=latin-1"),
    ("application/json; version=2", "got 'version=2'"),
    ("application/json, text/plain", "'application/json, text/plain'")])
def test_a_post_needs_a_json_content_type(client: Client, one_sentence: Callable[..., None],
                                          kind: str | None, named: str) -> None:
    """A page of another site may POST text/plain, a form or multipart without asking (no CORS
    preflight); only application/json needs a preflight, which the explorer never grants. The
    sentence names what was sent."""
    headers = [f"Content-Length: {len(Z)}"] + ([] if kind is None else [f"Content-Type: {kind}"])
    reply = ask(client, post("/api/decode", Z, *headers))
    check_refusal(reply, 415, one_sentence)
    assert named in json.loads(reply[2])["error"], reply
    still_answers(client)


@pytest.mark.parametrize("kind", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                  'application/json;charset="UTF-8"'])
def test_json_content_types_are_taken(client: Client, kind: str) -> None:
    reply = ask(client, post("/api/decode", Z, f"Content-Type: {kind}", f"Content-Length: {len(Z)}"))
    assert reply[0] == 200, reply


def test_two_content_types_are_refused(client: Client, one_sentence: Callable[..., None]) -> None:
    reply = ask(client, json_post(Z, "Content-Type: text/plain"))
    check_refusal(reply, 415, one_sentence)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity"])
def test_a_content_coding_is_refused(client: Client, one_sentence: Callable[..., None], coding: str) -> None:
    """A body sent gzipped (here truly so, or said to be) is not JSON the server can read: 415, which
    names the content coding and the Accept-Encoding taken (RFC 9110 15.5.16)."""
    body = gzip.compress(Z) if coding == "gzip" else Z
    headers = check_refusal(ask(client, post("/api/decode", body, "Content-Type: application/json",
                                             f"Content-Length: {len(body)}", f"Content-Encoding: {coding}")),
                            415, one_sentence)
    assert headers["accept-encoding"] == "identity"
    assert "content coding" in ask(client, json_post(Z, f"Content-Encoding: {coding}"))[2].decode()
    still_answers(client)


def test_a_chunked_body_without_a_length_is_asked_for_with_one(client: Client,
                                                               one_sentence: Callable[..., None]) -> None:
    """RFC 9112 6.3: a server that does not take a chunked body may answer 411; the sentence says
    that the chunked body is what is refused, and a Content-Length what is wanted."""
    chunked = b"%x\r\n" % len(Z) + Z + b"\r\n0\r\n\r\n"
    reply = ask(client, post("/api/decode", chunked, "Content-Type: application/json",
                             "Transfer-Encoding: chunked"))
    check_refusal(reply, 411, one_sentence)
    error = json.loads(reply[2])["error"]
    assert "chunked" in error and "Content-Length" in error
    still_answers(client)


@pytest.mark.parametrize("headers", [
    ("Content-Length: 2", "Content-Length: 5"),
    (f"Content-Length: {len(Z)}",),  # the same one twice
    ("Transfer-Encoding: chunked",),
    ("Transfer-Encoding: identity",),
], ids=["two lengths", "one length twice", "chunked", "identity"])
def test_ambiguous_body_lengths_are_refused(client: Client, one_sentence: Callable[..., None],
                                            headers: tuple[str, ...]) -> None:
    """Content-Length given twice, or beside a Transfer-Encoding, could frame the body two ways."""
    check_refusal(ask(client, json_post(Z, *headers)), 400, one_sentence)
    still_answers(client)


@pytest.mark.parametrize("path", ["/api/info", "/", "/api/samples?n=2"])
@pytest.mark.parametrize("headers", [
    ("Content-Length: -1",), ("Content-Length: 1, 2",), ("Content-Length: abc",),
    ("Content-Length: 2", "Content-Length: 5"), ("Transfer-Encoding: chunked",),
], ids=["negative", "list", "text", "two lengths", "chunked"])
def test_a_get_framed_wrongly_is_refused(client: Client, one_sentence: Callable[..., None], path: str,
                                         headers: tuple[str, ...]) -> None:
    """A GET reads no body, but an invalid Content-Length is an error whatever the method (RFC 9112
    6.3), and a GET with a body framed by a Transfer-Encoding cannot be told from the next request."""
    data = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(h + "\r\n" for h in headers)
            + "\r\n").encode()
    check_refusal(ask(client, data, half_close=True), 400, one_sentence)
    empty = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()
    assert ask(client, empty)[0] == 200


@pytest.mark.parametrize("data", [
    b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"X: a\rContent-Length: 100\r\n\r\n",  # a Content-Length hidden from one parser
    b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\rX: y\r\n\r\n",
    b"GET /api/info\rHTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
], ids=["hidden length", "in a header", "in the request line"])
def test_a_bare_cr_is_refused_at_once(client: Client, one_sentence: Callable[..., None], data: bytes) -> None:
    """A CR not followed by LF is a line break to the header parser and not to the doorman's framing:
    400 at once, before a worker waits for a body that will not come."""
    t0 = time.monotonic()
    check_refusal(ask(client, data, timeout=10), 400, one_sentence)
    assert time.monotonic() - t0 < 3
    still_answers(client)


def test_headers_that_never_end_are_refused(client: Client, one_sentence: Callable[..., None]) -> None:
    """A client that closes its side before the empty line that ends the headers sent an
    incomplete request: 400, not the answer to what part of it says."""
    reply = ask(client, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n", half_close=True)
    check_refusal(reply, 400, one_sentence)
    still_answers(client)


def test_a_body_shorter_than_its_content_length(client: Client, one_sentence: Callable[..., None]) -> None:
    data = post("/api/decode", Z, "Content-Type: application/json", f"Content-Length: {len(Z) + 10}")
    check_refusal(ask(client, data, half_close=True), 400, one_sentence)


def test_the_413_reaches_a_client_that_sends_its_whole_body(client: Client,
                                                             one_sentence: Callable[..., None]) -> None:
    """The server answers before the body has arrived and reads the rest before it closes (a close
    with unread bytes would be a reset, and the client would never see the 413)."""
    body = b"{" + b" " * (2 * MAX_BODY) + b"}"
    reply = ask(client, json_post(body), timeout=30)
    check_refusal(reply, 413, one_sentence)
    still_answers(client)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.nip.io", "localhost.evil",
                                  "", "127.0.0.1:80:80", "[::1", "0.0.0.0", "10.0.0.1:8765"])
def test_the_host_must_name_this_machine(client: Client, one_sentence: Callable[..., None],
                                         host: str) -> None:
    """A page whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name as Host."""
    check_refusal(ask(client, f"GET /api/info HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()), 400, one_sentence)
    check_refusal(ask(client, json_post(Z, f"Host: {host}").replace(b"Host: 127.0.0.1\r\n", b"")), 400,
                  one_sentence)


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_an_absolute_target_of_another_host_names_the_target_not_the_host_header(
        client: Client, one_sentence: Callable[..., None], version: str) -> None:
    """`GET http://evil.example/api/info` with Host 127.0.0.1: the target's host is the one refused
    (RFC 9112 3.2.2), so the sentence names the request target; a Host header of another machine
    is named as the Host header."""
    head = f"GET http://evil.example/api/info HTTP/{version}\r\nHost: 127.0.0.1\r\n\r\n".encode()
    said = check_refusal_body(ask(client, head), one_sentence)
    assert said.startswith("the request target must name this machine") and "evil.example" in said, said
    said = check_refusal_body(ask(client, b"GET /api/info HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
                              one_sentence)
    assert said.startswith("the Host header must name this machine") and "evil.example" in said, said
    port = b"GET http://127.0.0.1:0/api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    said = check_refusal_body(ask(client, port), one_sentence)
    assert said.startswith("the request target's port must be 1 to 65535"), said


def test_loopback_hosts_are_taken(client: Client, one_sentence: Callable[..., None]) -> None:
    port = client.port
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LocalHost", f"[::1]:{port}",
                 "127.0.0.2"):
        assert ask(client, f"GET /api/info HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())[0] == 200, host
    assert ask(client, b"GET /api/info HTTP/1.0\r\n\r\n")[0] == 200  # no Host (HTTP/1.0)
    for second in (f"localhost:{port}", "127.0.0.1"):  # each names this machine: it is the repeat
        twice = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: {second}\r\n\r\n".encode()
        assert "more than once" in check_refusal_body(ask(client, twice), one_sentence)


def check_refusal_body(reply: tuple[int, dict[str, str], bytes], one_sentence: Callable[..., None]) -> str:
    check_refusal(reply, 400, one_sentence)
    return str(json.loads(reply[2])["error"])


@pytest.mark.parametrize("length", ["2", "002", "0000000000000000002", "0" * 200 + "2"])
def test_a_content_length_with_leading_zeros_is_its_number(client: Client, length: str) -> None:
    """RFC 9110 8.6: 1*DIGIT; zeros in front change nothing (not a length past every body)."""
    said = f"Content-Length: {length}".encode()
    status, _, body = ask(client, json_post(b"{}").replace(b"Content-Length: 2", said))
    assert status == 400 and "more than 3 MB" not in body.decode() and "larger" not in body.decode(), body


@pytest.mark.parametrize("request_head", [
    b"GET /api/info HTTP/1.1\r\n\r\n",  # HTTP/1.1 without a Host (RFC 9112 3.2)
    b"GET http://evil.example/api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # the target's host rules
    b"GET http://evil.example/api/info HTTP/1.0\r\n\r\n",
    b"GET http://127.0.0.1:99999999999/api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # no such port
    b"GET http:/api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # not a URL
    b"GET ftp://127.0.0.1/api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n",  # ports are 1 to 65535 (RFC 793)
    b"GET /api/info HTTP/1.1\r\nHost: localhost:0\r\n\r\n",
    b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\0b\r\n\r\n",  # NUL in a field (RFC 9110 5.5)
])
def test_targets_and_hosts_no_client_should_send(client: Client, one_sentence: Callable[..., None],
                                                 request_head: bytes) -> None:
    check_refusal(ask(client, request_head), 400, one_sentence)
    still_answers(client)


@pytest.mark.parametrize("port", ["0", "99999", "123456", "65536" + "0" * 40, "9" * 5000])
def test_a_host_of_this_machine_with_a_port_past_65535_is_told_the_port(
        client: Client, run_dir: Path, one_sentence: Callable[..., None], port: str) -> None:
    """The host names this machine; only its port is wrong, of whatever length: the port sentence,
    not the one for another machine's name (DNS rebinding), and not taken off loopback either."""
    head = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    said = check_refusal_body(ask(client, head), one_sentence)
    assert said.startswith("the Host header's port must be 1 to 65535, got ") and len(said) < 200, said
    for other in serve(run_dir, check_host=False):
        assert ask(other, head.replace(b"127.0.0.1", b"explorer.lan"))[0] == 400
    still_answers(client)


def test_a_host_port_with_zeros_in_front_is_its_number(client: Client) -> None:
    head = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{'0' * 30}{client.port}\r\n\r\n".encode()
    assert ask(client, head)[0] == 200


def test_an_absolute_url_of_this_machine_is_taken(client: Client) -> None:
    url = f"http://127.0.0.1:{client.port}/api/info"
    assert ask(client, f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())[0] == 200
    assert ask(client, f"GET {url} HTTP/1.0\r\n\r\n".encode())[0] == 200


def test_any_host_is_taken_off_loopback(run_dir: Path) -> None:
    """Served on another address (`--host`), the names it is reached by are not known."""
    for other in serve(run_dir, check_host=False):
        assert ask(other, b"GET /api/info HTTP/1.1\r\nHost: explorer.lan:8765\r\n\r\n")[0] == 200
        assert ask(other, b"GET /api/info HTTP/1.1\r\nHost: explorer.lan:65536\r\n\r\n")[0] == 400


# ----------------------------------------------------------------------------- slow clients


@pytest.fixture(scope="module")
def quick(run_dir: Path) -> Iterator[Client]:
    """A server that gives a request 1 s to arrive."""
    yield from serve(run_dir, request_timeout=1.0)


def trickle(client: Client, first: bytes, then: bytes, seconds: float) -> tuple[bytes, float]:
    """`first`, then `then` every 0.2 s until the server answers or closes or `seconds` pass: (what
    it answered, after how many seconds)."""
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection((str(client.host), int(client.port)), timeout=seconds) as s:
        s.sendall(first)
        s.settimeout(0.2)
        while time.monotonic() - t0 < seconds:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                try:
                    s.sendall(then)
                except OSError:
                    break
                continue
            except OSError:
                break
            if not chunk:
                break
            reply += chunk
    return reply, time.monotonic() - t0


def test_a_slow_request_is_cut_at_its_deadline(quick: Client, one_sentence: Callable[..., None]) -> None:
    """Slowloris: a header line every 0.2 s would keep a thread forever under a timeout per read."""
    reply, seconds = trickle(quick, b"GET /api/info HTTP/1.0\r\n", b"X-Slow: 1\r\n", 5.0)
    assert seconds < 3.5, reply
    check_refusal(split_reply(reply), 408, one_sentence)
    reply, seconds = trickle(quick, json_post(Z + b" " * 100)[:-90], b" ", 5.0)  # a slow body
    assert seconds < 3.5, reply
    check_refusal(split_reply(reply), 408, one_sentence)
    still_answers(quick)


def test_a_silent_connection_is_closed(quick: Client) -> None:
    reply, seconds = trickle(quick, b"", b"", 5.0)
    assert (reply, seconds < 3.5) == (b"", True)


def test_a_content_length_that_lies_is_cut(quick: Client, one_sentence: Callable[..., None]) -> None:
    data = post("/api/decode", Z, "Content-Type: application/json", f"Content-Length: {len(Z) + 10}")
    t0 = time.monotonic()
    reply = raw_socket(quick, data, timeout=5)
    assert time.monotonic() - t0 < 3.5
    check_refusal(split_reply(reply), 408, one_sentence)


# ----------------------------------------------------------------------------- many clients


def burst(client: Client, n: int, data: bytes) -> dict[Any, int]:
    """`n` connections at once, each sending `data`: how many got each status, or each error."""
    counts: dict[Any, int] = {}
    barrier = threading.Barrier(n)
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        try:
            outcome: Any = split_reply(raw_socket(client, data, timeout=30))[0]
        except OSError as err:
            outcome = type(err).__name__
        with lock:
            counts[outcome] = counts.get(outcome, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return counts


def test_a_burst_of_connections_is_answered_not_reset(client: Client) -> None:
    counts = burst(client, 200, json_post(Z))
    assert set(counts) <= {200, 503}, counts
    assert sum(counts.values()) == 200 and counts.get(200, 0) > 0, counts
    still_answers(client)


def test_a_full_server_answers_503(run_dir: Path, one_sentence: Callable[..., None],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The one worker held by a request inside an endpoint, the next request is answered 503 at
    once, and the held one is answered when its endpoint returns."""
    entered, release = threading.Event(), threading.Event()

    def hold(explorer: Any, query: Any, body: Any) -> dict[str, bool]:
        entered.set()
        release.wait(10)
        return {"held": True}

    monkeypatch.setitem(app.ROUTES, "/api/hold", ("GET", hold, ()))
    for small in serve(run_dir, max_connections=1):
        with socket.create_connection((str(small.host), int(small.port)), timeout=10) as held:
            held.sendall(b"GET /api/hold HTTP/1.0\r\n\r\n")  # holds the one worker
            assert entered.wait(10)
            t0 = time.monotonic()
            headers = check_refusal(ask(small, b"GET /api/info HTTP/1.0\r\n\r\n"), 503, one_sentence)
            assert time.monotonic() - t0 < 2
            assert headers["retry-after"] == "1"
            release.set()
            chunks = []
            while chunk := held.recv(65536):
                chunks.append(chunk)
        assert split_reply(b"".join(chunks))[0] == 200
        still_answers(small)


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_answers_are_http_1_1_one_per_connection_even_when_requests_are_pipelined(
        client: Client, version: bytes) -> None:
    """Status lines say HTTP/1.1, the version of the interim 100 Continue too (RFC 9110 6.2: a
    server sends its own version), and the connection closes after the first answer: a second
    request sent on it at once is never answered (no keep-alive to smuggle a request into)."""
    one = b"GET /api/info " + version + b"\r\nHost: 127.0.0.1\r\n\r\n"
    reply = raw_socket(client, one + one, timeout=10)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:80]
    assert reply.count(b"HTTP/1.") == 1, reply[:400]
    status, headers, body = split_reply(reply)
    assert headers["connection"] == "close" and json.loads(body)["latent_dim"] == LATENT


@pytest.mark.parametrize(("key", "shown"), [
    ("foo-bar", "unknown field 'foo-bar';"), ("", "an empty field name;"), ("é ok", "unknown field 'é ok';"),
    ("a\nb", "unknown field 'a\\nb';"),
    ("k" * 300, "unknown field '" + "k" * 40 + "...' (its name cut short);"),
], ids=["dash", "empty", "accent", "newline", "long"])
def test_an_unknown_field_is_named_as_sent(client: Client, one_sentence: Callable[..., None], key: str,
                                            shown: str) -> None:
    body = json.dumps({"z": [0.0] * LATENT, key: 1}).encode()
    error = json.loads(ask(client, json_post(body))[2])["error"]
    one_sentence(error, shown)


@pytest.mark.parametrize(("query", "shown"), [
    ("=1", "an empty query parameter name;"), ("foo-bar=1", "unknown query parameter 'foo-bar';"),
    ("q" * 300 + "=1", "unknown query parameter '" + "q" * 40 + "...' (its name cut short);"),
    ("n=1&n=2", "the query parameter 'n' is given twice."),
], ids=["empty", "dash", "long", "twice"])
def test_an_unknown_query_parameter_is_named_as_sent(client: Client, one_sentence: Callable[..., None],
                                                     query: str, shown: str) -> None:
    reply = ask(client, f"GET /api/samples?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    check_refusal(reply, 400, one_sentence)
    one_sentence(json.loads(reply[2])["error"], shown)


@pytest.mark.parametrize("empty", [b"\r\n", b"\n"], ids=["CRLF", "LF"])
def test_one_empty_line_before_the_request_line_is_ignored(client: Client, one_sentence: Callable[..., None],
                                                           empty: bytes) -> None:
    """RFC 9112 2.2: a server SHOULD ignore at least one empty line received before the request
    line (a client may send a CRLF after a previous POST's body); two are still refused, at once."""
    status, _, body = ask(client, empty + b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 200 and json.loads(body)["latent_dim"] == LATENT
    status, _, body = ask(client, empty + json_post(Z))  # its body waited for, past the empty line
    assert (status, json.loads(body)) == (200, client.post("/api/decode", json.loads(Z)))
    t0 = time.monotonic()
    check_refusal(ask(client, empty * 2 + b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 400,
                  one_sentence)
    assert time.monotonic() - t0 < 3
