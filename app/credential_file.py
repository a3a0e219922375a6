"""The credentials file (``OPS_TOKENS_FILE``): named tokens and the roles of proxy users.

TOML, hashes only, never a token::

    [[token]]
    name = "alice"
    role = "operator"
    sha256 = "<hex SHA-256 of the token>"

    [[user]]              # a user signed in by the authenticating proxy
    email = "bob@example.com"
    role = "viewer"

:class:`CredentialFile` re-reads the file when it changes (its size, time or inode), at most
once per ``check_every`` seconds, or at once after :meth:`CredentialFile.reload_soon` (the
worker's SIGHUP). A file that fails to parse leaves the previous credentials in force and is
reported once. ``flask --app wsgi ops token new NAME --role ROLE`` makes a token and its stanza.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from typing import Any

from .roles import Role

log = logging.getLogger(__name__)

ADMIN_NAME = "admin"  # SETTINGS_ADMIN_TOKEN's name; no credential of the file may take it
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_USER_LENGTH = 254
TOKEN_PREFIX = "ops_"


class CredentialFileError(Exception):
    """The file cannot be read or is not a valid credentials file; the message says where."""


@dataclasses.dataclass(frozen=True)
class Credential:
    """A named holder of a role: a token's owner, or a user signed in by the proxy."""

    name: str
    role: Role


@dataclasses.dataclass(frozen=True)
class CredentialSet:
    """What one version of the file grants."""

    tokens: Mapping[str, Credential] = dataclasses.field(default_factory=dict)  # by sha256
    users: Mapping[str, Role] = dataclasses.field(default_factory=dict)  # by lower-case email

    def by_token(self, token: str) -> Credential | None:
        # Looked up by the token's hash: what a timing difference could reveal is the hash
        # of a guess, which says nothing about the tokens.
        return self.tokens.get(token_hash(token))

    def user_role(self, user: str) -> Role | None:
        return self.users.get(user.strip().lower())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def stanza(name: str, role: Role, token: str) -> str:
    """The ``[[token]]`` entry that grants ``token`` to ``name``."""
    return (f'[[token]]\nname = "{name}"\nrole = "{role.label}"\n'
            f'sha256 = "{token_hash(token)}"\n')


def parse_credentials(text: str, source: str = "credentials file") -> CredentialSet:
    """Read a credentials file's text; CredentialFileError says what is wrong, and where."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CredentialFileError(f"{source}: not valid TOML: {error}") from None
    unknown = set(document) - {"token", "user"}
    if unknown:
        raise CredentialFileError(f"{source}: unknown table {sorted(unknown)[0]!r} "
                                  "(only [[token]] and [[user]] entries)")
    tokens: dict[str, Credential] = {}
    names: set[str] = set()
    for index, entry in enumerate(_entries(document, "token", source), 1):
        where = f"{source}: token #{index}"
        _only(entry, {"name", "role", "sha256"}, where)
        name = _field(entry, "name", where)
        if not NAME.fullmatch(name):
            raise CredentialFileError(f"{where}: name must be 1-64 letters, digits or ._@+- "
                                      f"starting with a letter or digit, got {name[:40]!r}")
        if name == ADMIN_NAME:
            raise CredentialFileError(f"{where}: the name {ADMIN_NAME!r} is "
                                      "SETTINGS_ADMIN_TOKEN's")
        if name in names:
            raise CredentialFileError(f"{where}: a second token named {name!r}")
        digest = _field(entry, "sha256", where).lower()
        if not SHA256.fullmatch(digest):
            raise CredentialFileError(f"{where} ({name}): sha256 must be 64 hex digits (the "
                                      "token's SHA-256, never the token itself)")
        if digest in tokens:
            raise CredentialFileError(f"{where} ({name}): the same token as "
                                      f"{tokens[digest].name!r}")
        names.add(name)
        tokens[digest] = Credential(name, _role(entry, where))
    users: dict[str, Role] = {}
    for index, entry in enumerate(_entries(document, "user", source), 1):
        where = f"{source}: user #{index}"
        _only(entry, {"email", "role"}, where)
        email = _field(entry, "email", where).strip().lower()
        if not email or len(email) > MAX_USER_LENGTH or not email.isprintable():
            raise CredentialFileError(f"{where}: email must be 1-{MAX_USER_LENGTH} printable "
                                      "characters")
        if email in users:
            raise CredentialFileError(f"{where}: {email!r} is listed twice")
        users[email] = _role(entry, where)
    return CredentialSet(tokens, users)


def _entries(document: dict, key: str, source: str) -> list[dict]:
    entries = document.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CredentialFileError(f"{source}: {key} entries are written [[{key}]]")
    return entries


def _only(entry: dict, allowed: set[str], where: str) -> None:
    extra = set(entry) - allowed
    if extra:
        raise CredentialFileError(f"{where}: unknown key {sorted(extra)[0]!r} "
                                  f"(allowed: {', '.join(sorted(allowed))})")


def _field(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise CredentialFileError(f"{where}: {key} is required, as a string")
    return value


def _role(entry: dict, where: str) -> Role:
    try:
        return Role.parse(entry.get("role"))
    except ValueError as error:
        raise CredentialFileError(f"{where}: {error}") from None


def load_credentials(path: str | os.PathLike) -> CredentialSet:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialFileError(f"{path}: cannot be read: {error}") from None
    return parse_credentials(text, str(path))


Reloaded = Callable[[bool, dict[str, Any]], None]


class CredentialFile:
    """The file's credentials as last read well, re-read when the file changes.

    ``on_reload(ok, detail)`` hears of every re-read after the first: ``ok`` with the counts,
    or not with the error (then the previous credentials stay in force)."""

    def __init__(self, path: str | os.PathLike, *, on_reload: Reloaded | None = None,
                 check_every: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.path = os.fspath(path)
        self.on_reload = on_reload
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._current = load_credentials(self.path)  # a bad file at start stops the start
        self._checked = clock()
        self._force = False

    def current(self) -> CredentialSet:
        """The credentials in force, after a re-read if the file changed."""
        if self._force or self._clock() - self._checked >= self._check_every:
            self.refresh()
        return self._current

    def reload_soon(self) -> None:
        """Re-read at the next use, changed or not (safe in a signal handler: sets a flag)."""
        self._force = True

    def refresh(self) -> None:
        """Re-read the file if it changed since the last read (or a reload was asked for)."""
        with self._lock:
            forced, self._force = self._force, False
            self._checked = self._clock()
            signature = self._stat()
            if signature == self._signature and not forced:
                return
            self._signature = signature
            try:
                fresh = load_credentials(self.path)
            except CredentialFileError as error:
                log.error("credentials file not reloaded, the previous credentials stay in "
                          "force: %s", error)
                self._report(False, {"error": str(error)})
                return
            self._current = fresh
        log.info("credentials file reloaded: %d tokens, %d users", len(fresh.tokens),
                 len(fresh.users))
        self._report(True, {"tokens": len(fresh.tokens), "users": len(fresh.users)})

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _report(self, ok: bool, detail: dict[str, Any]) -> None:
        if self.on_reload is not None:
            try:
                self.on_reload(ok, detail)
            except Exception:
                log.exception("credentials file: the reload listener failed")
