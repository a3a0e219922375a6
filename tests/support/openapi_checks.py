"""A schemathesis check for the run without credentials (tests/test_openapi_fuzz.py)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import schemathesis

MAX_ID = 2**63 - 1
TASK_PATH = re.compile(r"^/ops/tasks/([^/]*)")


@schemathesis.check
def refused_without_credentials(ctx, response, case):
    """Every request is refused with 401. Four answers come before the credential is looked
    at, and are right then: 414 for a request line longer than gunicorn takes, 405 for a
    method the path does not serve, 404 for a path that names no task (its id is not a
    positive integer), and 200 to OPTIONS, which browsers send without credentials before a
    cross-origin call (CORS preflight); it lists methods only."""
    request = response.request
    expected = 401
    target = urlsplit(request.url)
    line = f"{request.method} {target.path}?{target.query} HTTP/1.1"
    if len(line) > LIMIT_REQUEST_LINE:
        expected = 414  # gunicorn refuses the request line before the app sees it
    elif request.method.upper() == "OPTIONS":
        expected = 200
    elif request.method.upper() != case.operation.method.upper():
        expected = 405
    else:
        match = TASK_PATH.match(urlsplit(request.url).path)
        if match and not _is_task_id(unquote(match.group(1))):
            expected = 404
    if response.status_code != expected:
        raise AssertionError(f"{request.method} {request.url} without credentials answered "
                             f"{response.status_code}, expected {expected}")


LIMIT_REQUEST_LINE = 4094  # gunicorn's limit_request_line default


def _is_task_id(segment: str) -> bool:
    return segment.isascii() and segment.isdigit() and 0 < int(segment) <= MAX_ID
