"""``/ops/ui``: the dashboard page and its static files.

The page itself holds no data and needs no auth: the admin pastes the token into it, and its
scripts send the token only as the ``X-Admin-Token`` header of ``fetch`` calls to the
admin-gated API (and stream with short-lived stream tokens). Every answer of this blueprint
carries a Content-Security-Policy that allows the app's own origin only: no inline script or
style, no third-party host, no framing.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, make_response, render_template, request

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

bp = Blueprint("ui", __name__, url_prefix="/ops/ui", template_folder=str(UI_DIR),
               static_folder=str(UI_DIR / "static"), static_url_path="/static")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # stream URLs carry a (short-lived) token
    "X-Frame-Options": "DENY",
}


# Both spellings are rules of their own: with ``strict_slashes=False`` alone, a POST to
# ``/ops/ui`` was a 404 instead of a 405.
@bp.get("")
@bp.get("/")
def dashboard():
    """The page shell; the API's root is passed in so that a mount prefix keeps working."""
    response = make_response(
        render_template("dashboard.html", api_root=f"{request.script_root}/ops"))
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.after_request
def add_security_headers(response):
    response.headers.update(SECURITY_HEADERS)
    return response
