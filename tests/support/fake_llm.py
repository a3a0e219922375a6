"""A small OpenAI-compatible chat-completions server for tests, on loopback.

It stands in for a real model server (OpenAI, vLLM, llama.cpp, Ollama), which the tests
cannot run: ``POST /v1/chat/completions`` with ``"stream": true`` answers with Server-Sent
Events in HTTP/1.1 chunks, ``data: {json chunk}`` each and ``data: [DONE]`` at the end, as
those servers do. Directives in the last user message choose what it does, e.g.
``fake: words=50 delay=0.01 fault=broken after=3``:

- ``words=N``: the answer is ``word1 word2 ... wordN `` (one chunk per word; default 5)
- ``delay=S``: seconds before each chunk (default 0)
- ``status=CODE``: answer with that HTTP error and an OpenAI-style error body
- ``fault=KIND after=N``: after N words, ``broken`` (a chunk that is not JSON), ``error``
  (an error object in the stream), ``cut`` (end the body without finishing), ``drop`` (close
  the connection mid-body) or ``stall`` (send nothing more until the client goes);
  ``fault=hang`` sends no headers at all
- ``nodone``: finish (``finish_reason``) but leave out ``data: [DONE]``

With ``api_key`` set, a request without ``Authorization: Bearer <api_key>`` gets a 401 whose
message repeats the key it received, as a careless server might (``echo`` chooses what of it:
the whole key unless set, as a real server shows part of it). Every request is kept in
``requests``; a client that goes away mid-answer is noticed at once (the connection is watched
while waiting) and its time is kept in ``disconnects``.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_WAIT = 60.0


def answer_text(words: int) -> str:
    """The text the server streams for ``words=N``."""
    return "".join(f"word{n} " for n in range(1, words + 1))


def directives(prompt: str) -> dict[str, str]:
    _, _, tail = prompt.partition("fake:")
    found = {}
    for item in tail.split():
        name, _, value = item.partition("=")
        found[name] = value
    return found


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-answer are what the tests do on purpose: no traceback."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeLLM:
    """Serves on ``127.0.0.1`` on a free port; ``url`` is the base URL (``.../v1``)."""

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.echo: Callable[[str], str] = lambda key: key
        self.requests: list[dict] = []
        self.disconnects: list[float] = []
        self.closing = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    @property
    def fake(self) -> FakeLLM:
        return self.server.fake

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                   "body": body})
        if self.path != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        sent = self.headers.get("Authorization", "")
        if self.fake.api_key and sent != f"Bearer {self.fake.api_key}":
            key = sent.removeprefix("Bearer ")
            return self._error(401, f"Incorrect API key provided: {self.fake.echo(key)}")
        prompt = body["messages"][-1]["content"]
        options = directives(prompt)
        if "status" in options:
            return self._error(int(options["status"]), "the fake server was told to fail")
        if options.get("fault") == "hang":
            self.close_connection = True
            return self._wait(MAX_WAIT)
        self._stream(body.get("model", "fake"), options)

    def _stream(self, model: str, options: dict[str, str]) -> None:
        words = int(options.get("words", 5))
        delay = float(options.get("delay", 0))
        fault = options.get("fault")
        after = int(options.get("after", 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b": fake-llm\r\n\r\n")  # a comment, and CRLF line ends, as servers may send
        self._event({"delta": {"role": "assistant", "content": ""}}, model)
        for n in range(1, words + 1):
            if fault and n > after:
                return self._fault(fault)
            if delay and not self._wait(delay):
                return
            if not self._event({"delta": {"content": f"word{n} "}}, model):
                return
        if fault:
            return self._fault(fault)
        self._event({"delta": {}, "finish_reason": "stop"}, model,
                    usage={"prompt_tokens": 3, "completion_tokens": words})
        if "nodone" not in options:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _fault(self, fault: str) -> None:
        if fault == "broken":
            self._chunk(b'data: {"choices": [{"delta": \n\n')
        elif fault == "error":
            self._chunk(b'data: {"error": {"message": "the model is overloaded"}}\n\n')
        elif fault == "stall":
            self._wait(MAX_WAIT)
            return
        elif fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.close_connection = True
        self._chunk(b"")  # fault=cut ends here: a complete body, but no finish and no [DONE]

    def _event(self, choice: dict, model: str, usage: dict | None = None) -> bool:
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                 "created": int(time.time()), "model": model,
                 "choices": [{"index": 0, "finish_reason": None, **choice}]}
        if usage:
            chunk["usage"] = usage
        return self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> bool:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            return True
        except OSError:
            self._gone()
            return False

    def _error(self, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "fake_error"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _wait(self, seconds: float) -> bool:
        """Wait, watching the connection; False (and noted) when the client goes away."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.fake.closing.is_set():
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.01))
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    self._gone()
                    return False
                time.sleep(min(left, 0.01))  # the client sent more: not a close
        return not self.fake.closing.is_set()

    def _gone(self) -> None:
        self.fake.disconnects.append(time.monotonic())
        self.close_connection = True
