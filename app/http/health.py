"""``/healthz`` (the process answers), ``/readyz`` (it reaches its store): no auth, no detail."""

import logging

from flask import Blueprint, jsonify

from ..services import services
from .errors import error_response

bp = Blueprint("health", __name__)

log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when the store answers, else 503; why goes to the log, never to the caller."""
    try:
        services().store.check()
    except Exception as error:
        log.warning("not ready: the store check failed: %s: %s", type(error).__name__, error)
        return error_response("not ready", 503, {"Retry-After": "5"})
    return jsonify({"status": "ready"})
