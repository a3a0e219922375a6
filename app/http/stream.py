"""``/ops/tasks/<id>/stream`` (Server-Sent Events) and ``/ops/stream_tokens``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from ..auth.gate import requires, stream_access_required
from ..roles import Role
from ..services import services
from ..store import isoformat
from ..stream import event_stream
from .audit import audit_task, audited
from .parsing import MAX_ID, int_arg, int_field, json_object

bp = Blueprint("stream", __name__, url_prefix="/ops")

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


class StreamResponse(Response):
    """A response whose WSGI body is the stream's generator itself.

    An idle stream is a greenlet parked in its generator for as long as the stream lasts, and
    its saved stack grows with every iterator between the server and that generator (werkzeug
    adds two: ``ClosingIterator`` and ``iter_encoded``). Handing the server the generator
    (``event_stream`` yields bytes) and, once the headers are out, keeping only the close
    callbacks rather than the whole response, saves each idle stream about 1.3 KB of saved
    stack and five objects for the collector (bench/notes.md)."""

    def get_app_iter(self, environ):
        if environ["REQUEST_METHOD"] == "HEAD" or self.status_code != 200:
            return super().get_app_iter(environ)
        return _Body(self.response, self._on_close)


class _Body:
    """The WSGI iterable of a stream: iterating it is iterating the generator; ``close()``
    closes the generator, then runs the response's close callbacks, as werkzeug's would."""

    __slots__ = ("_events", "_on_close")

    def __init__(self, events, on_close):
        self._events = events
        self._on_close = on_close

    def __iter__(self):
        return self._events

    def close(self) -> None:
        try:
            self._events.close()
        finally:
            for callback in self._on_close:
                callback()


@bp.get("/tasks/<task_id:task_id>/stream")
@stream_access_required
def stream_task(task_id: int, signed_in: bool):
    """Replay events after ``Last-Event-ID`` (or ``?last_event_id=``), then stream live ones."""
    svc = services()
    task = svc.store.get_task(task_id)  # 404 before any stream starts
    # The header wins: on a reconnect EventSource sends it with the first URL, whose
    # ?last_event_id= is then stale. The query is checked all the same; an empty header is none.
    last_id = int_arg("last_event_id", 0, low=0, high=MAX_ID)
    header = request.headers.get("Last-Event-ID")
    if header:
        last_id = int_arg("last_event_id", 0, low=0, high=MAX_ID, raw=header)
    # 429 past the task's cap, 503 past the process's; released when the response closes.
    release = svc.streams.admit(task_id, admin=signed_in)
    _limit_send_time(svc.settings.stream_send_timeout)
    body = event_stream(svc.store, task_id, last_id, finished=task.status.is_terminal,
                        heartbeat=svc.settings.heartbeat_seconds, retry_ms=svc.settings.retry_ms,
                        max_seconds=svc.settings.stream_max_seconds, tracker=svc.streams)
    response = StreamResponse(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(release)
    return response


def _limit_send_time(seconds: float) -> None:
    """Drop a client that stops reading: a write blocked this long fails and ends the stream.

    gunicorn does not hand the app its connection's socket under a public name, so it is
    found where gunicorn keeps it (the gevent_pywsgi worker's ``gunicorn.sock``, or the
    request body's reader for the other workers); another server keeps its own timeouts.
    tests/test_faults.py shows the timeout acting under the worker we ship."""
    environ = request.environ
    sock = environ.get("gunicorn.sock")
    if sock is None:
        reader = getattr(environ.get("wsgi.input"), "reader", None)
        sock = getattr(getattr(reader, "unreader", None), "sock", None)
    if sock is not None and hasattr(sock, "settimeout"):
        sock.settimeout(seconds)


@bp.post("/stream_tokens")
@audited("stream_token.mint")
@requires(Role.VIEWER)
def create_stream_token():
    """A short-lived token that lets an EventSource stream one task without the admin token."""
    payload = json_object({"task_id"})
    task_id = int_field(payload.get("task_id"), "task_id", high=MAX_ID)
    audit_task(task_id)
    services().store.get_task(task_id)  # 404 for an unknown task
    token, expires_at = services().tokens.mint(task_id)
    return jsonify({"token": token, "expires_at": isoformat(expires_at), "task_id": task_id,
                    "stream_url": url_for("stream.stream_task", task_id=task_id, token=token)})
