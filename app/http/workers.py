"""``/ops/workers``: the server processes that share the task queue, as their heartbeat rows
say (hosts, pools, load, last seen)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..auth.gate import requires
from ..roles import Role
from ..services import services

bp = Blueprint("workers", __name__, url_prefix="/ops")


@bp.get("/workers")
@requires(Role.VIEWER)
def list_workers():
    """Every process seen within a day, live ones first, this one marked ``this``."""
    fleet = services().executor.fleet
    rows = sorted(fleet.to_dicts(), key=lambda row: (not row["live"], row["host"], row["pid"]))
    return jsonify({"workers": rows, "live_seconds": fleet.live_seconds})
