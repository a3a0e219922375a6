"""The LLM runner: asks an OpenAI-compatible chat-completions endpoint and streams the answer.

The task's title and body are the prompt (one user message). The request is sent with
``requests`` and ``"stream": true``; the answer arrives as Server-Sent Events whose
``data:`` lines are JSON chunks, ending with ``data: [DONE]``. Text is passed on in ``text``
events, batched (:class:`Answer`): a batch goes out once ``batch_seconds`` have passed since
the previous one or it holds ``batch_chars`` characters, so a long answer is a few dozen events.
``done`` carries the whole text. HTTP errors, timeouts, malformed chunks and a stream that
ends early fail the task with a reason that says which; the API key never appears in one.
A cancel shuts the connection's socket down at once (:class:`CloseOnStop`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ..runner import RunContext, TaskFailed

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # one SSE line; a server sending more is broken
MAX_DETAIL = 300
CONNECT_TIMEOUT = 10.0
POLL_SECONDS = 0.05
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


class Answer:
    """The answer so far, and the batching of its text into ``text`` events."""

    def __init__(self, emit: Callable[[str, dict], Any], batch_seconds: float, batch_chars: int,
                 clock: Callable[[], float] = time.monotonic):
        self._emit = emit
        self._seconds = batch_seconds
        self._chars = batch_chars
        self._clock = clock
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._pending_chars = 0
        self._last = clock()  # the first text goes out at once after a slow start
        self.events = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars >= self._chars or self._clock() - self._last >= self._seconds:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._emit("text", {"text": "".join(self._pending)})
            self.events += 1
            self._pending.clear()
            self._pending_chars = 0
            self._last = self._clock()


class CloseOnStop:
    """While active, shut the response's socket down as soon as the task is asked to stop.

    A read blocked on the socket then returns at once, in a thread or a greenlet alike."""

    def __init__(self, ctx: RunContext):
        self._stopping = ctx.stopping
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._watch, name="llm-close-on-stop",
                                        daemon=True)

    def __enter__(self) -> CloseOnStop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def attach(self, response: requests.Response) -> None:
        with self._lock:
            self._response = response
        if self._stopping.is_set():
            self._shut(response)

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._stopping.wait(POLL_SECONDS):
                with self._lock:
                    response = self._response
                if response is not None:
                    self._shut(response)
                    return
                # Not connected yet: the runner looks at the stop signal once it is.
                self._done.wait(POLL_SECONDS)

    @staticmethod
    def _shut(response: requests.Response) -> None:
        try:
            response.raw.shutdown()
        except (ValueError, RuntimeError, OSError):
            pass  # already closed or released


class LLMRunner:
    name = "llm"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 timeout: float = 60.0, batch_seconds: float = 1.0, batch_chars: int = 2000,
                 clock: Callable[[], float] = time.monotonic):
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        parts = urlsplit(base_url)
        self.server = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self.batch_seconds = batch_seconds
        self.batch_chars = batch_chars
        self._clock = clock

    def run(self, task, ctx: RunContext) -> dict[str, Any]:
        answer = Answer(ctx.emit, self.batch_seconds, self.batch_chars, self._clock)
        try:
            return self._ask(task, ctx, answer)
        except TaskFailed as error:
            failure = error
        except TRANSPORT_ERRORS as error:
            failure = TaskFailed(self._describe(error))
        finally:
            answer.flush()
        ctx.checkpoint()  # a stop closed the stream: the stop, not the broken read, ends it
        log.warning("task %s: %s", task.id, self._redact(failure.reason))
        raise TaskFailed(self._redact(failure.reason), chars=len(answer.text),
                         **failure.data) from None

    def _ask(self, task, ctx: RunContext, answer: Answer) -> dict[str, Any]:
        prompt = task.title if not task.body else f"{task.title}\n\n{task.body}"
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = {"model": self.model, "stream": True,
                "messages": [{"role": "user", "content": prompt}]}
        log.info("task %s: asking %s (model %s)", task.id, self.server, self.model)
        with CloseOnStop(ctx) as guard:
            response = requests.post(self.url, json=body, headers=headers, stream=True,
                                     timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout))
            with response:
                guard.attach(response)
                ctx.checkpoint()
                if response.status_code != 200:
                    raise TaskFailed(self._http_error(response), http_status=response.status_code)
                result = self._read(response, ctx, answer)
        answer.flush()
        return {"text": answer.text, "chars": len(answer.text), "text_events": answer.events,
                **result}

    def _read(self, response: requests.Response, ctx: RunContext, answer: Answer) -> dict:
        """Consume the event stream into ``answer``; the rest of the ``done`` data."""
        result: dict[str, Any] = {"model": self.model, "finish_reason": None}
        for payload in sse_data(response.raw):
            ctx.checkpoint()
            if payload == "[DONE]":
                return result
            chunk = _json_chunk(payload)
            if "error" in chunk:
                raise TaskFailed(f"the model server reported an error: {_message(chunk)}")
            if isinstance(chunk.get("model"), str):
                result["model"] = chunk["model"]
            if isinstance(chunk.get("usage"), dict):
                result["usage"] = chunk["usage"]
            for text, finish_reason in _choices(chunk, payload):
                answer.add(text)
                result["finish_reason"] = finish_reason or result["finish_reason"]
        if result["finish_reason"] is None:
            raise TaskFailed("the model server ended the stream before the answer was complete")
        return result  # finished, though without the closing [DONE]

    def _http_error(self, response: requests.Response) -> str:
        try:
            raw = response.raw.read(8192, decode_content=True)
        except TRANSPORT_ERRORS:
            raw = b""
        detail = raw.decode("utf-8", "replace").strip()
        try:
            detail = _message(json.loads(detail))
        except ValueError:
            pass
        detail = " ".join(detail.split())[:MAX_DETAIL]
        return f"the model server answered HTTP {response.status_code}" + (
            f": {detail}" if detail else "")

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, requests.ConnectTimeout):
            return f"could not connect to the model server at {self.server} in time"
        if isinstance(error, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
            return (f"the model server sent nothing for {self.timeout:g} s "
                    "(OPS_LLM_TIMEOUT_SECONDS)")
        cause = _os_error(error)
        if isinstance(error, requests.ConnectionError):  # raised before the answer began
            return f"could not reach the model server at {self.server}: {cause or 'failed'}"
        return "the connection to the model server broke" + (f": {cause}" if cause else "")

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


def sse_data(raw) -> Iterator[str]:
    """The ``data`` of each Server-Sent Event read from ``raw`` (as it arrives)."""
    buffer = bytearray()
    data: list[str] = []
    while True:
        block = raw.read1(READ_BYTES, decode_content=True)
        if not block:
            break
        buffer += block
        *lines, rest = buffer.split(b"\n")
        buffer[:] = rest
        if len(buffer) > MAX_LINE_BYTES:
            raise TaskFailed("malformed stream from the model server: a line over "
                             f"{MAX_LINE_BYTES} bytes")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:].removeprefix(b" ")
                try:
                    data.append(value.decode("utf-8"))
                except UnicodeDecodeError:
                    raise TaskFailed("malformed chunk from the model server: not UTF-8") from None
            # Comments (":"), event:, id: and retry: lines carry nothing we need.
    if data:
        yield "\n".join(data)


def _json_chunk(payload: str) -> dict:
    try:
        chunk = json.loads(payload)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise TaskFailed(f"malformed chunk from the model server: {_snippet(payload)}")
    return chunk


def _choices(chunk: dict, payload: str) -> Iterator[tuple[str, str | None]]:
    """Each choice's new text and finish reason; TaskFailed when the shape is wrong."""
    malformed = TaskFailed(f"malformed chunk from the model server: {_snippet(payload)}")
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise malformed
    for choice in choices:
        if not isinstance(choice, dict):
            raise malformed
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise malformed
        text = delta.get("content") or ""
        finish = choice.get("finish_reason")
        if not isinstance(text, str) or not isinstance(finish, (str, type(None))):
            raise malformed
        yield text, finish


def _message(body: Any) -> str:
    """The human part of an OpenAI-style error body: ``{"error": {"message": ...}}``."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or json.dumps(error)
    return " ".join(str(error).split())[:MAX_DETAIL]


def _snippet(text: str) -> str:
    return repr(text[:80]) + ("…" if len(text) > 80 else "")


def _os_error(error: BaseException | None) -> str | None:
    """The operating system's words for a failure buried in requests' exception chain."""
    for _ in range(10):
        if error is None:
            break
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        reason = getattr(error, "reason", None)
        first = error.args[0] if error.args else None
        error = next((e for e in (reason, error.__cause__, error.__context__, first)
                      if isinstance(e, BaseException)), None)
    return None
