"""The LLM runner: asks an OpenAI-compatible chat-completions endpoint and streams the answer.

The task's title and body are the prompt (one user message). The request is sent with
``requests`` and ``"stream": true``; the answer is read as it arrives (:mod:`.wire`) and its
text passed on in batched ``text`` events (:mod:`.answer`); ``done`` carries the whole text.
HTTP errors, timeouts, malformed chunks and a stream that ends early fail the task with a
reason that says which; the API key never appears in one. A cancel shuts the connection's
socket down at once (:mod:`.connection`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ....logs import REDACTED, redact_pieces, secret_pieces
from ...runner import RunContext, TaskFailed
from . import wire
from .answer import Answer
from .connection import CloseOnStop

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


class LLMRunner:
    name = "llm"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 timeout: float, batch_seconds: float, batch_chars: int,
                 clock: Callable[[], float] = time.monotonic):
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        parts = urlsplit(base_url)
        self.server = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.model = model
        self._api_key = api_key
        self._key_pieces = secret_pieces((api_key,)) if api_key else frozenset()
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
        for payload in wire.payloads(response.raw):
            ctx.checkpoint()
            if payload == wire.DONE:
                return result
            chunk = wire.parse_chunk(payload)
            if isinstance(chunk.get("model"), str):
                result["model"] = chunk["model"]
            if isinstance(chunk.get("usage"), dict):
                result["usage"] = chunk["usage"]
            for text, finish_reason in wire.deltas(chunk, payload):
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
            detail = wire.error_message(json.loads(detail))
        except ValueError:
            pass
        detail = " ".join(detail.split())[:wire.MAX_DETAIL]
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
        """Without the API key, whole or any piece of 8 characters or more: servers echo
        part of a wrong key ("Incorrect API key provided: sk-abc12...wxyz")."""
        if not self._api_key:
            return text
        return redact_pieces(text.replace(self._api_key, REDACTED), self._key_pieces)


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
