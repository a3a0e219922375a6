"""Believe ``X-Forwarded-For``/``-Proto`` only from the reverse proxy.

nginx appends the address it saw to ``X-Forwarded-For``; when the request comes from a trusted
proxy address (``FORWARDED_ALLOW_IPS``, the variable gunicorn reads for the same purpose),
the last entry becomes ``request.remote_addr``. Anyone else's forwarded headers are ignored,
so a client cannot choose the address written to the logs. A request from a trusted proxy is
marked (``TRUSTED_PEER``) for the proxy sign-in, which believes the user header only then.
"""

from __future__ import annotations

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix

from ..auth.gate import TRUSTED_PEER


class TrustedProxyFix:
    """WSGI middleware: werkzeug's ProxyFix (one proxy hop), for trusted peers only."""

    def __init__(self, wsgi_app, trusted: tuple[str, ...]):
        self._plain = wsgi_app
        self._fixed = ProxyFix(wsgi_app, x_for=1, x_proto=1)
        self._any = "*" in trusted
        self._networks = [ipaddress.ip_network(t, strict=False) for t in trusted if t != "*"]

    def trusts(self, address: str | None) -> bool:
        if self._any:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False  # a unix socket peer, or nothing
        return any(ip in network for network in self._networks)

    def __call__(self, environ, start_response):
        if self.trusts(environ.get("REMOTE_ADDR")):
            environ[TRUSTED_PEER] = True
            return self._fixed(environ, start_response)
        environ.pop(TRUSTED_PEER, None)  # only this middleware says so
        return self._plain(environ, start_response)
