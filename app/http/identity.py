"""``/ops/whoami``: who the request acts as, so that a page signed in by the proxy needs no
token, and shows only what its role may do."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..auth.gate import current_principal, requires
from ..roles import Role

bp = Blueprint("identity", __name__, url_prefix="/ops")


@bp.get("/whoami")
@requires(Role.VIEWER)
def whoami():
    principal = current_principal()
    role = principal.role
    return jsonify({**principal.to_dict(),
                    "may": {"create": role >= Role.OPERATOR, "cancel": role >= Role.OPERATOR,
                            "audit": role >= Role.ADMIN, "stats": role >= Role.ADMIN}})
