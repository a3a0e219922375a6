"""The gate of ``/metrics``: an admin's credential, or a scrape-only bearer token."""

from __future__ import annotations

import functools

from flask import request

from ..roles import Role
from .credentials import credentials
from .gate import HEADER as ADMIN_HEADER
from .gate import check_role, current_principal, refuse


def metrics_access_required(view):
    """Admit an admin (``X-Admin-Token`` or the proxy) or
    ``Authorization: Bearer $OPS_METRICS_TOKEN``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        principal = current_principal()
        if principal is not None:
            check_role(principal, Role.ADMIN)
            return view(*args, **kwargs)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            if credentials().is_metrics_token(token.strip()):
                return view(*args, **kwargs)
            refuse("invalid metrics token")
        refuse(f"missing credentials: send the {ADMIN_HEADER} header or "
               "Authorization: Bearer <OPS_METRICS_TOKEN>")
    wrapped.required_role = Role.ADMIN
    return wrapped
