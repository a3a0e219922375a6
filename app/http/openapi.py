"""``/ops/openapi.json``: the API's OpenAPI description, ``docs/openapi.yaml``, as JSON.

Public: it describes the API and holds no secret. The service runs from its checkout, so the
file is read from there; it is parsed once per change (parsing YAML is CPU work, which would
stall every stream of a gevent worker if done on each request).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import yaml
from flask import Blueprint, jsonify

from .errors import ApiError

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"

bp = Blueprint("openapi", __name__, url_prefix="/ops")

log = logging.getLogger(__name__)


@bp.get("/openapi.json")
def openapi_document():
    try:
        modified = SPEC_PATH.stat().st_mtime_ns
    except FileNotFoundError:
        raise ApiError("the API description (docs/openapi.yaml) is not installed with this "
                       "copy of the service; see docs/api.md", 404) from None
    return jsonify(_load(SPEC_PATH, modified))


@functools.lru_cache(maxsize=1)
def _load(path: Path, modified: int) -> dict:
    """The parsed document; ``modified`` is only the cache key, so that an edit is seen."""
    try:
        document = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader",
                                                                yaml.SafeLoader))
    except yaml.YAMLError as error:
        log.error("%s is not valid YAML: %s", path, error)
        raise ApiError("the API description (docs/openapi.yaml) is not valid YAML", 500) from None
    if not isinstance(document, dict):
        raise ApiError("the API description (docs/openapi.yaml) is not a YAML mapping", 500)
    return document
