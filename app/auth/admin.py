"""The admin gate: ``X-Admin-Token`` on every endpoint, plus stream tokens on the stream."""

from __future__ import annotations

import functools

from flask import request

from .credentials import Unauthenticated, credentials

HEADER = "X-Admin-Token"


def admin_header_present() -> bool:
    """True for a right ``X-Admin-Token``, False when absent; a wrong one is refused outright."""
    token = request.headers.get(HEADER)
    if token is None:
        return False
    if not credentials().is_admin_token(token):
        raise Unauthenticated("invalid admin token")
    return True


def admin_required(view):
    """Refuse the request with 401 unless it carries the admin token in ``X-Admin-Token``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not admin_header_present():
            raise Unauthenticated(f"missing {HEADER} header")
        return view(*args, **kwargs)
    return wrapped


def stream_access_required(view):
    """Admit a stream request by admin header, ``?token=`` (stream token) or, in dev mode only,
    ``?admin_token=``. The view receives the task id as ``task_id``, and as
    ``admin_credential`` whether the admin token (header or query) admitted it."""
    @functools.wraps(view)
    def wrapped(task_id: int, **kwargs):
        if admin_header_present():
            return view(task_id=task_id, admin_credential=True, **kwargs)
        known = credentials()
        token = request.args.get("token")
        if token is not None:
            known.stream_tokens.verify(token, task_id)
            return view(task_id=task_id, admin_credential=False, **kwargs)
        admin_token = request.args.get("admin_token")
        if admin_token is not None:
            if not known.dev_mode:
                raise Unauthenticated("?admin_token= is accepted only in dev mode "
                                      "(DEV_LOCAL_LLM=1); get a stream token from "
                                      "POST /ops/stream_tokens and pass it as ?token=")
            if not known.is_admin_token(admin_token):
                raise Unauthenticated("invalid admin token")
            return view(task_id=task_id, admin_credential=True, **kwargs)
        raise Unauthenticated(f"missing credentials: send the {HEADER} header or a stream token "
                              "from POST /ops/stream_tokens as ?token=")
    return wrapped
