"""Credentials files for tests: named tokens of each role, and proxy users."""

from __future__ import annotations

from pathlib import Path

from app.credential_file import stanza
from app.roles import Role

# One named token per role (at least 24 characters, like a real one).
TOKENS = {"vera": (Role.VIEWER, "viewer-token-0123456789abcdef"),
          "otto": (Role.OPERATOR, "operator-token-0123456789abcdef"),
          "ada": (Role.ADMIN, "named-admin-token-0123456789ab")}


def credentials_text(tokens: dict[str, tuple[Role, str]] | None = None,
                     users: dict[str, Role] | None = None) -> str:
    """A credentials file granting ``tokens`` (name: (role, token)) and ``users``."""
    parts = [stanza(name, role, token) for name, (role, token) in (tokens or {}).items()]
    parts += [f'[[user]]\nemail = "{email}"\nrole = "{role.label}"\n'
              for email, role in (users or {}).items()]
    return "\n".join(parts)


def write_credentials(path: Path, tokens: dict[str, tuple[Role, str]] | None = None,
                      users: dict[str, Role] | None = None) -> Path:
    path.write_text(credentials_text(TOKENS if tokens is None else tokens, users))
    return path


def headers_of(name: str) -> dict[str, str]:
    """The headers that act as the named token ``name`` of TOKENS."""
    return {"X-Admin-Token": TOKENS[name][1]}
