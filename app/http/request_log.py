"""One log line per request, written when its answer is closed (for a stream: when it ends).

Each request gets an id (nginx's ``X-Request-ID`` when it is well formed, else a new one),
returned as ``X-Request-ID`` and carried by every record logged while it is served.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
import uuid
from urllib.parse import quote

from flask import Flask, g, request

from .. import logs

HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_ADDRESS = re.compile(r"[0-9A-Za-z.:%\[\]-]{1,64}\Z")  # IPv4, IPv6 (with a zone), a host

log = logging.getLogger("app.requests")


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)


def _start_request() -> None:
    incoming = request.headers.get(HEADER, "")
    g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_id_token = logs.request_id.set(g.request_id)
    g.request_started = time.perf_counter()


def _end_request(error=None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        try:
            logs.request_id.reset(token)
        except ValueError:  # set in another context (a server that switched them): harmless
            logs.request_id.set(None)


def _finish_request(response):
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[HEADER] = request_id
    fields = {"method": request.method, "path": request_target(),
              "status_code": response.status_code, "remote_addr": request.remote_addr or "-",
              "request_id": request_id}
    principal = g.get("principal")
    if principal is not None:
        fields["actor"] = principal.name
    started = g.get("request_started", time.perf_counter())
    # Logged on close so that a stream's line tells how long the stream stayed open. A
    # partial, not a closure: a stream holds it as long as it lasts, and it is one object
    # for the collector to scan where a closure is three.
    response.call_on_close(functools.partial(_log_request, fields, started))
    return response


def _log_request(fields: dict, started: float) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    actor = f" actor={_plain(fields['actor'])}" if "actor" in fields else ""
    log.info("%s %s %s %.1fms remote=%s request_id=%s%s", fields["method"], fields["path"],
             fields["status_code"], duration_ms, _plain(fields["remote_addr"]),
             fields["request_id"], actor, extra={**fields, "duration_ms": duration_ms})


def _plain(address: str | None) -> str:
    """The client's address as one token of the line: from a proxy's header it could hold
    spaces or ``key=value`` text that would read as fields of its own."""
    if not address:
        return "-"
    return address if _ADDRESS.match(address) else json.dumps(address)


def request_target() -> str:
    """The path and query as sent, secret parameters redacted, safe for one log line."""
    target = quote(request.path, safe="/:@!$&'()*+,;=-._~%")
    query = request.query_string.decode("latin-1")
    if query:
        target += "?" + logs.redact_query(query)
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", target)
