"""What the gates check requests against, given to them once by :func:`init_app`.

The gates (:mod:`.admin`, :mod:`.metrics`) never reach into the app's services: the factory
hands them the admin token, the metrics token, the stream tokens and the dev-mode flag here,
and a refused credential raises :class:`Unauthenticated`, which the HTTP layer's one error map
turns into 401.
"""

from __future__ import annotations

import dataclasses
import hmac

from flask import Flask, current_app

from .stream_tokens import StreamTokens

EXTENSION = "ops_auth"


class Unauthenticated(Exception):
    """The request carries no valid credential (401); the message says what to send."""


@dataclasses.dataclass(frozen=True)
class Credentials:
    admin_token: str = dataclasses.field(repr=False)
    stream_tokens: StreamTokens
    dev_mode: bool = False
    metrics_token: str | None = dataclasses.field(default=None, repr=False)

    def is_admin_token(self, candidate: str | None) -> bool:
        """Compare in constant time against the admin token."""
        return candidate is not None and _same(candidate, self.admin_token)

    def is_metrics_token(self, candidate: str) -> bool:
        return self.metrics_token is not None and _same(candidate, self.metrics_token)


def _same(candidate: str, expected: str) -> bool:
    # Bytes: compare_digest raises TypeError on str with non-ASCII characters.
    return hmac.compare_digest(candidate.encode(), expected.encode())


def init_app(app: Flask, credentials: Credentials) -> None:
    app.extensions[EXTENSION] = credentials


def credentials() -> Credentials:
    """The current app's credentials."""
    return current_app.extensions[EXTENSION]
