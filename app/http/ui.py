"""``/ops/ui``: the dashboard page and its static files.

The page itself holds no data and needs no auth: the admin pastes the token into it, and its
scripts send the token only as the ``X-Admin-Token`` header of ``fetch`` calls to the
admin-gated API (and stream with short-lived stream tokens). Its answers carry a
Content-Security-Policy that allows the app's own origin only (:mod:`.security`).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, make_response, render_template, request

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

bp = Blueprint("ui", __name__, url_prefix="/ops/ui", template_folder=str(UI_DIR),
               static_folder=str(UI_DIR / "static"), static_url_path="/static")


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
