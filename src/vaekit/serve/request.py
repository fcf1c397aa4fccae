"""What a request to the explorer may hold: its JSON body, its query string, the fields and numbers
in them, and the limits on each. A request refused is an `ApiError`: an HTTP status (4xx) and one
sentence, which the server answers as {"error": "..."}."""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from vaekit.config import is_int, is_number

MAX_BODY = 3 * 2**20  # bytes of a request body (a base64 upload of images.MAX_UPLOAD is 4/3 of it)
MAX_QUERY_FIELDS = 16  # fields of a query string (an endpoint takes at most 2)
INT_TEXT = re.compile(r"-?[0-9]{1,12}")  # an integer as a query string may write it
LENGTH_TEXT = re.compile(r"[0-9]+")  # a Content-Length header's value, once stripped (any length)
SHOWN = 40  # characters of an unknown name that a refusal quotes


class ApiError(Exception):
    """A request the API refuses: an HTTP status, one sentence and the headers the status calls for
    (a 405's Allow)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _quoted(key: str) -> str:
    """A name a request gives, quoted as written: unprintable characters escaped, cut short past
    SHOWN characters."""
    shown = key if key.isprintable() else ascii(key)[1:-1]
    return f"'{shown[:SHOWN]}...' (its name cut short)" if len(shown) > SHOWN else f"'{shown}'"


def _unknown(key: str, kind: str) -> str:
    """An unknown `kind` (a field, a query parameter) that a request gives, named as written."""
    return f"the request gives an empty {kind} name" if not key else f"unknown {kind} {_quoted(key)}"


def check_fields(body: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Exactly the fields named: an unknown or a missing one is a 400."""
    expected = ", ".join(required + optional)
    for key in body:
        if key not in required and key not in optional:
            raise ApiError(400, f"{_unknown(key, 'field')}; this request takes {expected}.")
    for key in required:
        if key not in body:
            raise ApiError(400, f"the field '{key}' is missing; this request takes {expected}.")


def as_int(value: object, what: str, low: int, high: int) -> int:
    if not is_int(value):
        raise ApiError(400, f"{what} must be an integer between {low} and {high}.")
    if not low <= value <= high:
        got = f", got {value}" if abs(value) < 10**15 else ""
        raise ApiError(400, f"{what} must be between {low} and {high}{got}.")
    return value


def query_int(query: dict[str, str], key: str, low: int, high: int, default: int | None = None) -> int:
    text = query.get(key)
    if text is None:
        if default is None:
            raise ApiError(400, f"the query parameter '{key}' is missing.")
        return default
    if not INT_TEXT.fullmatch(text):
        digits = len(text.lstrip("-"))
        if re.fullmatch(r"-?[0-9]+", text):  # an integer, too long to read
            raise ApiError(400, f"the query parameter '{key}' must be between {low} and {high}, got a "
                                f"{digits}-digit number.")
        raise ApiError(400, f"the query parameter '{key}' must be an integer between {low} and {high}.")
    return as_int(int(text), f"the query parameter '{key}'", low, high)


def numbers(value: object, what: str, length: int) -> list[float]:
    """A JSON list of `length` finite numbers (NaN and infinities cannot be written in JSON; the
    body parser refuses them too)."""
    if not isinstance(value, list) or len(value) != length:
        raise ApiError(400, f"{what} must be a list of {length} numbers.")
    out = []
    for v in value:
        if not is_number(v):
            raise ApiError(400, f"{what} must hold only numbers.")
        if isinstance(v, int) and abs(v) > 1e300:
            raise ApiError(422, f"{what} holds a number too large to be a latent or a pixel.")
        f = float(v)
        if not math.isfinite(f):  # 1e99999 as written: the JSON parser reads it as infinity
            raise ApiError(422, f"{what} holds a number too large to be a latent or a pixel.")
        out.append(f)
    return out


def parse_query(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS) if text else []
    except ValueError:  # more fields than max_num_fields
        raise ApiError(400, f"the query string has too many fields (at most {MAX_QUERY_FIELDS}).") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            names = ", ".join(allowed) if allowed else "none"
            raise ApiError(400, f"{_unknown(key, 'query parameter')}; this request takes {names}.")
        if key in query:
            raise ApiError(400, f"the query parameter {_quoted(key)} is given twice.")
        query[key] = value
    return query


def _no_constants(name: str) -> float:
    raise ValueError(name)


def _integer(text: str) -> int:
    """A JSON integer; one of more digits than any number the API takes (Python's int() refuses
    over 4,300) is read as 10**400 with its sign, which every check refuses as too large."""
    if len(text) <= 400:
        return int(text)
    return -(10**400) if text.startswith("-") else 10**400


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate")
    return out


def check_framing(lengths: list[str] | None, codings: list[str] | None) -> None:
    """The framing headers of a request of any method (`lengths`: each Content-Length it gives,
    `codings`: each Transfer-Encoding): 400 unless there is no Content-Length or one number of
    bytes, and no Transfer-Encoding (RFC 9112 6.3: an invalid Content-Length is an error, not a
    length to guess)."""
    if codings is not None:
        raise ApiError(400, "a body framed by a Transfer-Encoding is refused; send it with a Content-Length "
                       "alone.")
    if lengths is None:
        return
    if len(lengths) > 1:
        raise ApiError(400, "the Content-Length header is given more than once.")
    if not LENGTH_TEXT.fullmatch(lengths[0].strip()):
        raise ApiError(400, "the Content-Length header must be a number of bytes.")


def content_length(lengths: list[str] | None, codings: list[str] | None) -> int:
    """The bytes a POST's Content-Length header announces (`lengths`: each one the request gives):
    411 without one (a chunked body among them), 400 unless one number or beside a Transfer-Encoding
    (`codings`, which would frame the body another way: `check_framing`). The server holds it
    against MAX_BODY."""
    if lengths is None and codings is not None:
        raise ApiError(411, "a body sent chunked (Transfer-Encoding) is not accepted; send it with a "
                       "Content-Length header.")
    if lengths is None:
        raise ApiError(411, "a POST needs a Content-Length header and a JSON body.")
    check_framing(lengths, codings)
    digits = lengths[0].strip().lstrip("0") or "0"  # leading zeros are the same number (RFC 9110 8.6)
    return int(digits) if len(digits) <= 18 else MAX_BODY + 1  # a number, larger than any body taken


def no_content_coding(codings: list[str] | None) -> None:
    """415 when a POST's body comes with a Content-Encoding (gzip...), which the explorer does not
    decode: the answer says the one it takes (RFC 9110 15.5.16, 12.5.3)."""
    if codings is not None:
        raise ApiError(415, "content codings are not accepted: send the body as plain JSON, without a "
                       "Content-Encoding header.", {"Accept-Encoding": "identity"})


def json_content_type(kinds: list[str] | None) -> None:
    """415 unless the request says Content-Type: application/json once, with no parameter but
    charset=utf-8; the sentence names what the request sent. A page of another site may POST
    text/plain, a form or multipart without asking the server first; a JSON body makes the browser
    ask (a CORS preflight, which the explorer never grants)."""
    want = "a POST's body must be sent with the header Content-Type: application/json"
    if kinds is None:
        raise ApiError(415, f"{want}, which this request does not have.")
    if len(kinds) != 1:
        raise ApiError(415, f"{want} once, but this request has {len(kinds)} Content-Type headers.")
    kind, *params = kinds[0].split(";")
    if kind.strip().lower() != "application/json":
        raise ApiError(415, f"{want}, got {kinds[0].strip()[:60]!r}.")
    for param in filter(str.strip, params):
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            raise ApiError(415, f"Content-Type: application/json takes no parameter but charset=utf-8 (the "
                           f"body is UTF-8 JSON), got {param.strip()[:60]!r}.")


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body: one JSON object, no NaN/Infinity, no repeated keys."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants,
                          object_pairs_hook=_no_duplicates, parse_int=_integer)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "the body must be one JSON object (UTF-8, finite numbers, no repeated "
                       "keys).") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object, not another JSON value.")
    return body
