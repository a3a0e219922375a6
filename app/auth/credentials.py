"""What the gates check requests against, given to them once by :func:`init_app`.

The gates (:mod:`.gate`, :mod:`.metrics`) never reach into the app's services: the factory
hands them the admin token, the credentials file, the proxy sign-in, the metrics token and
the stream tokens here. A refused credential raises :class:`Unauthenticated` (401), a
credential without the role needed :class:`Forbidden` (403); the HTTP layer's one error map
answers both.
"""

from __future__ import annotations

import dataclasses
import hmac

from flask import Flask, current_app

from ..credential_file import ADMIN_NAME, CredentialFile, CredentialSet
from ..roles import Role
from .stream_tokens import StreamTokens

EXTENSION = "ops_auth"
NO_CREDENTIALS = CredentialSet()


class Unauthenticated(Exception):
    """The request carries no valid credential (401); the message says what to send."""


class Forbidden(Exception):
    """A valid credential without the role needed (403); the message names the role."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token's name (``admin`` for SETTINGS_ADMIN_TOKEN) or the
    proxy's signed-in user, with a role. ``via`` says how: ``admin-token``, ``token`` or
    ``proxy``."""

    name: str
    role: Role
    via: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.label, "via": self.via}


@dataclasses.dataclass(frozen=True)
class Credentials:
    admin_token: str = dataclasses.field(repr=False)
    stream_tokens: StreamTokens
    dev_mode: bool = False
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    file: CredentialFile | None = None
    # The header an authenticating proxy sets to the signed-in user, believed only from
    # FORWARDED_ALLOW_IPS; None: no proxy sign-in.
    proxy_header: str | None = None
    proxy_default_role: Role | None = None

    def by_token(self, candidate: str | None) -> Principal | None:
        """Who holds the token: the admin token, or a named token of the file."""
        if candidate is None:
            return None
        if _same(candidate, self.admin_token):
            return Principal(ADMIN_NAME, Role.ADMIN, "admin-token")
        credential = self.current().by_token(candidate)
        if credential is None:
            return None
        return Principal(credential.name, credential.role, "token")

    def proxy_role(self, user: str) -> Role | None:
        """The role of a user the proxy signed in: the file's ``[[user]]`` entry, else the
        default role (None: the user may do nothing)."""
        return self.current().user_role(user) or self.proxy_default_role

    def current(self) -> CredentialSet:
        return self.file.current() if self.file is not None else NO_CREDENTIALS

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
