"""A stand-in for oauth2-proxy's ``/oauth2/auth``, as nginx's ``auth_request`` asks it.

``Cookie: session=<name>`` of a known session is answered 202 with ``X-Auth-Request-Email``
(and ``-User``), like oauth2-proxy with ``--set-xauthrequest``; anything else 401. Every
request's headers are kept, so that tests can say what the service was (not) sent.
"""

from __future__ import annotations

import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .processes import Service

AUTH_PATH = "/oauth2/auth"


class SignInService(Service):
    """``sessions`` maps a session cookie's value to the email it signs in."""

    def __init__(self, sessions: dict[str, str]):
        self.sessions = dict(sessions)
        self.requests: list[dict[str, str]] = []  # each request's path and headers
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> SignInService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # nginx keeps its upstream connections alive

            def do_GET(self):
                seen = {"path": self.path, **{k.lower(): v for k, v in self.headers.items()}}
                with service._lock:
                    service.requests.append(seen)
                email = service.signed_in(self.headers.get("Cookie", ""))
                if self.path.split("?")[0] != AUTH_PATH or email is None:
                    self._answer(401)
                else:
                    self._answer(202, {"X-Auth-Request-Email": email,
                                       "X-Auth-Request-User": email.partition("@")[0]})

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet: the tests read self.requests
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def signed_in(self, cookie_header: str) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(cookie_header)
        except Exception:
            return None
        session = cookie.get("session")
        return self.sessions.get(session.value) if session is not None else None

    def seen(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
