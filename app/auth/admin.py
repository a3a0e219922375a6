"""The admin gate: ``X-Admin-Token`` on every endpoint, plus stream tokens on the stream."""

from __future__ import annotations

import functools
import hmac

from flask import request

from ..errors import Unauthorized
from ..extensions import ops

HEADER = "X-Admin-Token"


def is_admin_token(candidate: str | None) -> bool:
    """Compare in constant time against the configured admin token."""
    if candidate is None:
        return False
    expected = ops().settings.admin_token
    return hmac.compare_digest(candidate.encode(), expected.encode())


def _check_header() -> bool:
    """True for a right header, False when absent; a wrong header is refused outright."""
    token = request.headers.get(HEADER)
    if token is None:
        return False
    if not is_admin_token(token):
        raise Unauthorized("invalid admin token")
    return True


def admin_required(view):
    """Refuse the request with 401 unless it carries the admin token in ``X-Admin-Token``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not _check_header():
            raise Unauthorized(f"missing {HEADER} header")
        return view(*args, **kwargs)
    return wrapped


def stream_access_required(view):
    """Admit a stream request by admin header, ``?token=`` (stream token) or, in dev mode only,
    ``?admin_token=``. The view receives the task id as ``task_id``."""
    @functools.wraps(view)
    def wrapped(task_id: int, **kwargs):
        if _check_header():
            return view(task_id=task_id, **kwargs)
        token = request.args.get("token")
        if token is not None:
            ops().tokens.verify(token, task_id)
            return view(task_id=task_id, **kwargs)
        admin_token = request.args.get("admin_token")
        if admin_token is not None:
            if not ops().settings.dev_mode:
                raise Unauthorized("?admin_token= is accepted only in dev mode (DEV_LOCAL_LLM=1); "
                                   "get a stream token from POST /ops/stream_tokens and pass "
                                   "it as ?token=")
            if not is_admin_token(admin_token):
                raise Unauthorized("invalid admin token")
            return view(task_id=task_id, **kwargs)
        raise Unauthorized(f"missing credentials: send the {HEADER} header or a stream token "
                           "from POST /ops/stream_tokens as ?token=")
    return wrapped
