"""Settings read from the environment: how a field is declared (:func:`setting`), one reader
per kind of value, and :func:`read_env`, which reads the declared fields of a settings class.

A reader turns a variable's raw text (None when it is unset) into the field's value, or raises
:class:`ConfigError` naming the variable. The settings classes themselves are in
:mod:`app.config`. Like it, this module must not import Flask, requests or ``ssl``: gunicorn's
master imports it before any worker monkey-patches.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .credential_file import CredentialFileError, load_credentials
from .isolation import RecipeUser
from .recipes import NAME as POOL_NAME
from .recipes import NotifyTarget, RecipeBook, RecipeFileError, check_notify_url, load_recipes
from .roles import Role

MIN_SECRET_LENGTH = 16
HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class ConfigError(Exception):
    """The environment cannot run the service; the message says what to set."""


Reader = Callable[[str | None, "Declaration"], Any]


@dataclasses.dataclass(frozen=True)
class Declaration:
    """One environment variable behind a field: how to read it, and what the docs show."""

    env: str
    read: Reader  # the raw value (None when the variable is unset) to the field's value
    default: Any
    low: float | None = None
    high: float | None = None
    help: str = ""
    shown: str | None = None  # the docs' default, when the value alone does not say it
    required: str | None = None  # for a setting without default: how to set it

    @property
    def documented_default(self) -> str:
        """The default as the Default column of docs/configuration.md writes it."""
        if self.shown is not None:
            return self.shown
        if self.required is not None:
            return "(required)"
        value = self.default
        if value is None or value == () or value == frozenset():
            return "unset"
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)


# -- readers: a variable's raw text (None when unset) to a value, or ConfigError --------------

def text(raw: str | None, d: Declaration) -> Any:
    return (raw or "").strip() or d.default


def flag(raw: str | None, d: Declaration) -> bool:
    if raw is None or not raw.strip():
        return d.default
    return raw.strip().lower() in TRUE_WORDS


def number_reader(kind: type) -> Reader:
    def read(raw: str | None, d: Declaration):
        raw = (raw or "").strip()
        if not raw:
            return d.default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{d.env} must be a{'n integer' if kind is int else ' number'}, "
                              f"got {raw!r}") from None
        if not d.low <= value <= d.high:
            raise ConfigError(f"{d.env} must be between {d.low} and {d.high}, got {raw}")
        return value
    return read


integer = number_reader(int)
number = number_reader(float)


def secret(raw: str | None, d: Declaration) -> str | None:
    value = text(raw, d)
    if value is not None and len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{d.env} must be at least {MIN_SECRET_LENGTH} characters long")
    return value


def secrets(raw: str | None, d: Declaration) -> tuple[str, ...]:
    """Comma-separated secrets; set but blank is refused, not taken for unset."""
    if raw is None:
        return d.default
    secrets = tuple(s.strip() for s in raw.split(","))
    if not all(secrets) or any(len(s) < MIN_SECRET_LENGTH for s in secrets):
        raise ConfigError(
            f"{d.env} must be one or more comma-separated secrets of at least "
            f"{MIN_SECRET_LENGTH} characters each (the first signs, all verify)"
        )
    return secrets


def addresses(raw: str | None, d: Declaration) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (``10.0.0.0/8``), or ``*`` for any.

    Set but blank means none (trust no proxy), as gunicorn reads it."""
    if raw is None:
        return d.default
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{d.env} must list IP addresses or networks separated by commas "
                              f"(or *), got {entry!r}") from None
    return entries


def pools(raw: str | None, d: Declaration) -> tuple[str, ...] | None:
    """Comma-separated pool names, or ``*`` (the default) for every pool."""
    if raw is None or raw.strip() in ("", "*"):
        return d.default
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    for name in names:
        if POOL_NAME.fullmatch(name) is None:
            raise ConfigError(f"{d.env} must list pool names (lowercase letters, digits, "
                              f"'_', '.', '-') separated by commas, or *; got {name[:40]!r}")
    return names


def origins(raw: str | None, d: Declaration) -> frozenset[str]:
    origins = frozenset(o.strip().rstrip("/") for o in (raw or "").split(",") if o.strip())
    return origins or d.default


def http_url(raw: str | None, d: Declaration) -> str | None:
    url = (raw or "").strip().rstrip("/") or d.default
    if url:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(f"{d.env} must be an http(s) URL such as "
                              "https://api.openai.com/v1 (chat completions are posted to "
                              "<base>/chat/completions)")
    return url


def notify_urls(raw: str | None, d: Declaration) -> tuple[NotifyTarget, ...]:
    """Comma-separated http(s) URLs, each told of every task (the JSON summary)."""
    targets = []
    for entry in (raw or "").split(","):
        if entry.strip():
            try:
                targets.append(NotifyTarget(check_notify_url(entry)))
            except ValueError as error:
                raise ConfigError(f"{d.env}: {error}") from None
    return tuple(targets) or d.default


def public_url(raw: str | None, d: Declaration) -> str | None:
    url = (raw or "").strip().rstrip("/") or d.default
    if url:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query \
                or parts.fragment:
            raise ConfigError(f"{d.env} must be the http(s) URL users reach the service at, "
                              "such as https://ops.example.com (notifications link to "
                              "<url>/ops/ui#/tasks/<id>)")
    return url


def recipe_file(raw: str | None, d: Declaration) -> RecipeBook | None:
    path = (raw or "").strip()
    if not path:
        return d.default
    try:
        return load_recipes(path)
    except RecipeFileError as error:
        raise ConfigError(f"{d.env}: {error}") from None


def credential_file(raw: str | None, d: Declaration) -> str | None:
    """The path of a credentials file that reads well now (it is re-read as it changes)."""
    path = (raw or "").strip()
    if not path:
        return d.default
    try:
        load_credentials(path)
    except CredentialFileError as error:
        raise ConfigError(f"{d.env}: {error}") from None
    return path


def header_name(raw: str | None, d: Declaration) -> str | None:
    name = (raw or "").strip()
    if not name:
        return d.default
    if not HEADER_NAME.fullmatch(name):
        raise ConfigError(f"{d.env} must be an HTTP header name such as X-Forwarded-Email, "
                          f"got {name[:40]!r}")
    return name


def role(raw: str | None, d: Declaration) -> Role | None:
    text = (raw or "").strip()
    if not text or text.lower() == "none":
        return d.default
    try:
        return Role.parse(text)
    except ValueError as error:
        raise ConfigError(f"{d.env}: {error} (or none)") from None


def user(raw: str | None, d: Declaration) -> RecipeUser | None:
    text = (raw or "").strip()
    if not text:
        return d.default
    try:
        user = RecipeUser.lookup(text)
    except (KeyError, OverflowError):
        raise ConfigError(f"{d.env}: no user {text!r} on this system") from None
    if user.uid == 0:
        raise ConfigError(f"{d.env} must be an unprivileged user, not root")
    return user


_READERS: dict[type, Reader] = {bool: flag, int: integer, float: number, str: text}


def setting(env: str, default: Any = dataclasses.MISSING, *, help: str,
            read: Reader | None = None, low: float | None = None, high: float | None = None,
            shown: str | None = None, required: str | None = None, repr: bool = True) -> Any:
    """A field read from the variable ``env``: the one place its name, default and bounds live.

    The reader follows the default's type (flag, int, float, text) unless ``read`` is given.
    A ``required`` setting has no default; the text says how to set it."""
    if read is None:
        read = _READERS.get(type(default), text)
    if read in (integer, number) and (low is None or high is None):
        raise TypeError(f"{env}: a number needs bounds")
    declaration = Declaration(env, read, None if required else default, low, high, help,
                              shown, required)
    if required:
        return dataclasses.field(repr=repr, metadata={"setting": declaration})
    return dataclasses.field(default=default, repr=repr, metadata={"setting": declaration})


def declarations(cls: type) -> dict[str, Declaration]:
    """The declared fields of a settings class, by field name, in declaration order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls)
            if "setting" in f.metadata}


def read_env(cls: type, environ: Mapping[str, str] | None = None,
             names: Iterable[str] | None = None) -> dict[str, Any]:
    """Read the declared fields of ``cls`` (or only ``names``) from ``environ`` (default
    ``os.environ``), in declaration order; ConfigError names the first wrong variable."""
    env = os.environ if environ is None else environ
    wanted = None if names is None else set(names)
    values = {}
    for name, d in declarations(cls).items():
        if wanted is not None and name not in wanted:
            continue
        value = d.read(env.get(d.env), d)
        if value is None and d.required:
            raise ConfigError(f"{d.env} is not set: {d.required}")
        values[name] = value
    return values
