"""Reading requests strictly: JSON bodies, query parameters and path ids, with clear errors."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.routing import BaseConverter
from werkzeug.wsgi import LimitedStream

from .errors import ApiError, Invalid

MAX_ID = 2**63 - 1  # bigint, the ids' column type
# C0/C1 control characters other than tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class TaskIdConverter(BaseConverter):
    """``<task_id:task_id>``: a positive integer, or a 404 that says what was wrong."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> int:
        if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID:
            return int(value)
        raise NotFound(f"no such task: task ids are positive integers, got {value[:40]!r}")

    def to_url(self, value: int) -> str:
        return str(value)


def json_object(allowed: set[str], *, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object with no field outside ``allowed``; when
    ``optional``, no body at all (or an empty one) is an empty object."""
    json_type = request.mimetype == "application/json"
    if not (json_type or optional and request.mimetype == ""):
        raise ApiError("Content-Type must be application/json", 415)
    raw = _body()  # read once: a chunked body cannot be read again
    if optional and not raw:
        return {}
    if not json_type:
        raise ApiError("Content-Type must be application/json", 415)
    try:
        # Decoded here, strictly: json.loads would also take UTF-16, UTF-32 and a BOM.
        payload = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        # "\ud800" parses, but is no text: stored, it would break every answer that encodes
        # it as UTF-8, such as the task's event stream. An ASCII body without a \u escape
        # cannot hold one, and is spared the check.
        if not raw.isascii() or b"\\u" in raw:
            json.dumps(payload, ensure_ascii=False).encode()
    except (ValueError, RecursionError) as error:
        raise ApiError(f"malformed JSON: {_describe(error)}", 400) from None
    if not isinstance(payload, dict):
        raise Invalid("the body must be a JSON object")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)[:200]}; "
                      f"allowed: {', '.join(sorted(allowed))}")
    return payload


def _body() -> bytes:
    """The whole body, or 413 when it is over ``MAX_CONTENT_LENGTH``, however it is framed."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    environ = request.environ
    chunked = request.content_length is None and "wsgi.input_terminated" in environ
    if not chunked or limit is None:
        return request.get_data(cache=True)  # past the limit this raises 413 unread
    # Chunked, the server ending the stream: werkzeug's reader stops at the limit and hands
    # over what it read, cut. Reading one byte more than allowed tells a long body from a
    # full one.
    raw = LimitedStream(environ["wsgi.input"], limit + 1, is_max=True).readall()
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    return raw


def text_field(payload: dict[str, Any], name: str, *, max_length: int, required: bool,
               multiline: bool) -> str | None:
    """A string field: bounded and free of control characters as sent, then stripped.

    The value is checked as sent, not once stripped, so that the API's description
    (docs/openapi.yaml: ``maxLength`` and a ``pattern``) says exactly what is accepted."""
    value = payload.get(name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string")
    if len(value) > max_length:
        raise Invalid(f"{name} is too long ({len(value)} characters, at most {max_length})")
    if _CONTROL.search(value) or (not multiline and ("\n" in value or "\r" in value)):
        raise Invalid(f"{name} must not contain control characters")
    value = value.strip()
    if required and not value:
        raise Invalid(f"{name} must not be blank")
    return value


def int_field(value: Any, name: str, *, low: int = 1, high: int = MAX_ID) -> int:
    """A whole number in ``[low, high]`` from JSON (not a bool, not a fraction).

    ``7.0`` is ``7``: JSON has one number type, and JSON Schema's ``integer`` (the API's
    description, docs/openapi.yaml) admits it."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer")
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}")
    return value


def int_arg(name: str, default: int | None, *, low: int, high: int,
            raw: str | None = None) -> int | None:
    """A whole-number query parameter (or ``raw``, when given) in ``[low, high]``."""
    raw = request.args.get(name) if raw is None else raw
    if raw is None or raw == "":
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise Invalid(f"{name} must be an integer from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _describe(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if isinstance(error, UnicodeEncodeError):
        return "a string holds a lone surrogate (such as \\ud800), which is not Unicode text"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)[:200]
