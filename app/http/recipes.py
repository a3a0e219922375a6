"""``/ops/recipes``: the command recipes admins may run, with their parameters."""

from flask import Blueprint, jsonify

from ..auth.admin import admin_required
from ..services import services

bp = Blueprint("recipes", __name__, url_prefix="/ops")


@bp.get("/recipes")
@admin_required
def list_recipes():
    """Every recipe of ``OPS_RECIPES`` (none when it is not set); environment values stay hidden."""
    book = services().settings.recipes
    return jsonify({"configured": book is not None,
                    "recipes": [recipe.to_dict() for recipe in (book.recipes if book else ())]})
