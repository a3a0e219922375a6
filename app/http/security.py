"""Every security header the service sends, set in this one place: those every answer carries,
the dashboard's Content-Security-Policy, and CORS for the origins an admin allowed (none by
default)."""

from __future__ import annotations

from flask import Flask, request

ALLOWED_HEADERS = "Content-Type, Last-Event-ID, X-Admin-Token"
EXPOSED_HEADERS = "Location, Retry-After, X-Request-ID"

# The dashboard (the ``ui`` blueprint) loads from the app's own origin only: no inline script
# or style, no third-party host, no framing.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
DASHBOARD_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}


def init_app(app: Flask, cors_origins: frozenset[str]) -> None:
    @app.after_request
    def secure_headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # stream URLs carry a token
        if request.blueprint == "ui":
            response.headers.update(DASHBOARD_HEADERS)
        # API answers hold task data and tokens: never cached. Streams set their own no-cache.
        response.headers.setdefault("Cache-Control", "no-store")
        origin = request.headers.get("Origin")
        if origin and origin in cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.vary.add("Origin")
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST"
                response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        return response
