"""``/ops/recipes``: the command recipes admins may run, with their parameters, and what runs a
task that names none (so that a form can say what will run)."""

from flask import Blueprint, jsonify

from ..auth.gate import requires
from ..roles import Role
from ..services import services

bp = Blueprint("recipes", __name__, url_prefix="/ops")


@bp.get("/recipes")
@requires(Role.VIEWER)
def list_recipes():
    """Every recipe of ``OPS_RECIPES`` (none when it is not set); environment values stay hidden."""
    settings = services().settings
    book = settings.recipes
    return jsonify({"configured": book is not None,
                    "recipes": [recipe.to_dict() for recipe in (book.recipes if book else ())],
                    "dev_mode": settings.dev_mode,
                    "default_runner": _default_runner(settings)})


def _default_runner(settings) -> str | None:
    """The runner of a task without a recipe (as ``choose_runner`` picks it); None: refused."""
    if settings.dev_mode:
        return "dev"
    return "llm" if settings.uses_llm else None
