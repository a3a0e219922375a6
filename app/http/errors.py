"""The one place that turns exceptions into JSON error answers: ``{"error": "..."}``."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..auth import Forbidden, TokenForOtherTask, TokenInvalid, Unauthenticated
from ..executor import GroupBusy, NoRunner, QueueFull, ShuttingDown, TaskRejected, Unserved
from ..store import StoreUnavailable, TaskFinished, TaskNotFound
from ..stream import StreamsClosing, TooManyStreams, TooManyTaskStreams

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, with its status code and a message for the user."""

    status = 400
    headers: dict[str, str] | None = None  # e.g. Retry-After

    def __init__(self, message: str, status: int | None = None, **extra):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra


class Invalid(ApiError):
    """A well-formed request whose fields are wrong (422)."""

    status = 422


# Domain exceptions and the status each one answers with.
_STATUS = {
    Unauthenticated: 401,
    Forbidden: 403,
    TaskNotFound: 404,
    TaskFinished: 409,
    GroupBusy: 409,
    TokenInvalid: 401,
    TokenForOtherTask: 403,
    QueueFull: 429,
    TooManyTaskStreams: 429,
    NoRunner: 503,
    Unserved: 503,
    TaskRejected: 422,
    ShuttingDown: 503,
    StoreUnavailable: 503,
    StreamsClosing: 503,
    TooManyStreams: 503,
}
# Conditions that pass: the client should come back after this many seconds.
_RETRY_AFTER = {QueueFull: "5", StoreUnavailable: "5", TooManyStreams: "5",
                TooManyTaskStreams: "5", StreamsClosing: "2", ShuttingDown: "2"}


def error_response(message: str, code: int, headers=None, **extra):
    """A JSON error answer; ``extra`` adds fields beside ``error``."""
    response = jsonify({"error": message, **extra})
    response.status_code = code
    if headers:
        response.headers.update(headers)
    return response


def init_app(app: Flask) -> None:
    """Answer every error, ours and werkzeug's, as JSON."""
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error_response(error.message, error.status, error.headers, **error.extra)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
        return error_response(error.description or error.name, error.code or 500, headers)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return error_response(f"the body is larger than {limit} bytes (OPS_MAX_REQUEST_BYTES)",
                              413)

    for exc_type, status in _STATUS.items():
        app.register_error_handler(exc_type, _domain_handler(status))

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error")
        return error_response("internal server error", 500)


def _domain_handler(status: int):
    def handle(error: Exception):
        extra, message = {}, str(error)
        if isinstance(error, TaskFinished):
            extra["status"] = error.status.value
        if isinstance(error, GroupBusy):
            extra.update(concurrency_group=error.group, busy_with=error.task_id)
        if isinstance(error, StoreUnavailable):
            log.warning("store unavailable: %s", error)
            message = "the task store is unavailable; try again shortly"
        retry = next((_RETRY_AFTER[t] for t in type(error).__mro__ if t in _RETRY_AFTER), None)
        return error_response(message, status, {"Retry-After": retry} if retry else None, **extra)
    return handle
