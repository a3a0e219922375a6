"""``/ops/ui``: the dashboard page and its static files; ``/`` and ``/ops/`` lead to it.

The page itself holds no data and needs no auth. A user the authenticating proxy signed in
needs nothing more; anyone else pastes a token into it, and its scripts send the token only
as the ``X-Admin-Token`` header of ``fetch`` calls to the API (and stream with short-lived
stream tokens). Its answers carry a Content-Security-Policy that allows the app's own origin
only (:mod:`.security`).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, make_response, redirect, render_template, request, url_for

from ..auth.credentials import credentials

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

bp = Blueprint("ui", __name__, url_prefix="/ops/ui", template_folder=str(UI_DIR),
               static_folder=str(UI_DIR / "static"), static_url_path="/static")


# Both spellings are rules of their own: with ``strict_slashes=False`` alone, a POST to
# ``/ops/ui`` was a 404 instead of a 405.
@bp.get("")
@bp.get("/")
def dashboard():
    """The page shell; the API's root is passed in so that a mount prefix keeps working, and
    whether a proxy may have signed the user in (else the page asks for a token at once,
    rather than leave a refused call in the audit trail at every visit)."""
    response = make_response(
        render_template("dashboard.html", api_root=f"{request.script_root}/ops",
                        proxy_sign_in=credentials().proxy_header is not None))
    response.headers["Cache-Control"] = "no-cache"
    return response


# Someone who opens the server's address in a browser is looking for the dashboard.
home = Blueprint("home", __name__)


@home.get("/")
@home.get("/ops/")
def to_dashboard():
    """A redirect to the dashboard (public, as the page itself)."""
    return redirect(url_for("ui.dashboard").rstrip("/"), 302)  # /ops/ui, not /ops/ui/
