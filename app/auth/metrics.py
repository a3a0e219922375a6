"""The gate of ``/metrics``: the admin token, or a scrape-only bearer token."""

from __future__ import annotations

import functools

from flask import request

from .admin import HEADER as ADMIN_HEADER
from .admin import admin_header_present
from .credentials import Unauthenticated, credentials


def metrics_access_required(view):
    """Admit ``X-Admin-Token`` or ``Authorization: Bearer $OPS_METRICS_TOKEN``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if admin_header_present():
            return view(*args, **kwargs)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            if credentials().is_metrics_token(token.strip()):
                return view(*args, **kwargs)
            raise Unauthenticated("invalid metrics token")
        raise Unauthenticated(f"missing credentials: send the {ADMIN_HEADER} header or "
                              "Authorization: Bearer <OPS_METRICS_TOKEN>")
    return wrapped
