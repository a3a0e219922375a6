"""Logs: one line per request and per task state change, as text or JSON lines, secrets redacted.

- :func:`configure_logging` (called by ``wsgi.py``) sends the app's records to stderr, as JSON
  lines when ``OPS_LOG_JSON=1``.
- :data:`request_id` holds the id of the request being served; the HTTP layer
  (:mod:`app.http.request_log`) sets it and writes one line per request, and every record
  made meanwhile carries it.
- :class:`GunicornLogger` (``logger_class`` in ``gunicorn.conf.py``) gives gunicorn's error and
  access logs the same format and the same redaction.

Redaction: the values of the ``token`` and ``admin_token`` query parameters, of headers that
carry credentials, and any literal value of a secret variable of the environment (``*_TOKEN``,
``*_SECRET``, ``*_KEY``, ``*PASSWORD*``) become ``[redacted]`` in every line written.
:func:`redact_pieces` also blanks out any piece of a secret, for text from another server
that may echo part of one (the LLM runner's failures).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

from gunicorn import glogging

from .config import ConfigError, ServerSettings, declarations, read_env

REDACTED = "[redacted]"
SECRET_PARAMS = frozenset({"token", "admin_token"})
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"

_PARAM = re.compile(r"(?:(?<=[?&;])|^)([^=&;\s\"'?#]+)=([^&;\s\"'#]*)", re.M)
_CREDENTIAL_HEADER = re.compile(
    r"\b(x-admin-token|authorization)([\"']?\s*[:=]\s*[\"']?)(?:bearer\s+)?[^\s\"',;}\]]+", re.I)
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|KEY)$|PASSWORD", re.I)
# Fields every LogRecord has; anything else on a record came from ``extra=`` and goes to JSON.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
MIN_LITERAL_SECRET = 8  # shorter values (``adm`` in dev) would blank out ordinary words

# The id of the request this greenlet or thread is serving (None outside a request).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class Redactor:
    """Blanks out credentials in a line of text."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """One that also knows the values of the environment's secret variables."""
        env = os.environ if environ is None else environ
        values = []
        for name, value in env.items():
            if _SECRET_NAME.search(name):
                values.extend(v.strip() for v in value.split(","))
        return cls(tuple(v for v in values if len(v) >= MIN_LITERAL_SECRET))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        # Each pattern runs only on lines that could match it (most lines cannot): a secret
        # parameter's name is "token" unless it is percent-encoded.
        lowered = text.lower()
        if "token=" in lowered or "%" in text:
            text = _PARAM.sub(_redact_param, text)
        if "x-admin-token" in lowered or "authorization" in lowered:
            text = _CREDENTIAL_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        return text


def secret_pieces(secrets: tuple[str, ...]) -> frozenset[str]:
    """Every run of ``MIN_LITERAL_SECRET`` characters of the secrets, for
    :func:`redact_pieces`: any longer piece of a secret is a chain of them."""
    size = MIN_LITERAL_SECRET
    return frozenset(s[i:i + size] for s in secrets for i in range(len(s) - size + 1))


def redact_pieces(text: str, pieces: frozenset[str]) -> str:
    """``text`` with each stretch made of overlapping ``pieces`` replaced by ``[redacted]``.

    A scan of every position: cheap for one error message, too slow for every log line."""
    size = MIN_LITERAL_SECRET
    spans: list[list[int]] = []
    for start in range(len(text) - size + 1):
        if text[start:start + size] in pieces:
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + size
            else:
                spans.append([start, start + size])
    if not spans:
        return text
    kept, end = [], 0
    for start, stop in spans:
        kept += [text[end:start], REDACTED]
        end = stop
    return "".join(kept) + text[end:]


def _redact_param(match: re.Match) -> str:
    name = match.group(1)
    return f"{name}={REDACTED}" if unquote_plus(name).lower() in SECRET_PARAMS else match.group(0)


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner`` (any formatter), then redacts the line."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor):
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message and the ``extra`` fields."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        entry = {"time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "level": record.levelname, "logger": record.name, "pid": record.process,
                 "message": record.getMessage()}
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        entry = {k: self.redactor(v) if isinstance(v, str) else v for k, v in entry.items()}
        return json.dumps(entry, default=str, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Stamps records made while serving a request with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            current = request_id.get()
            if current:
                record.request_id = current
        return True


def log_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``log_json`` and ``log_level`` as declared in :class:`app.config.ServerSettings`.

    A wrong value falls back to the defaults here: logging must work to say what is wrong,
    and gunicorn's start-up check refuses the value in one line."""
    names = ("log_json", "log_level")
    try:
        return read_env(ServerSettings, environ, names)
    except ConfigError:
        return {name: d.default for name, d in declarations(ServerSettings).items()
                if name in names}


def json_logs_enabled(environ: Mapping[str, str] | None = None) -> bool:
    return bool(log_settings(environ)["log_json"])


def make_formatter(redactor: Redactor, base: logging.Formatter | None = None) -> logging.Formatter:
    """JSON when ``OPS_LOG_JSON=1``, else ``base`` (or the text format), redacted either way."""
    if json_logs_enabled():
        return JsonFormatter(redactor)
    return RedactingFormatter(base or logging.Formatter(TEXT_FORMAT), redactor)


def configure_logging() -> None:
    """Send the app's records (and the dev server's) to stderr, beside gunicorn's own log."""
    level = str(log_settings()["log_level"]).upper()
    # Record fields no format of ours shows; not gathering them makes every line cheaper
    # (the logging HOWTO's "Optimization" section).
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(Redactor.from_environ()))
    handler.addFilter(RequestIdFilter())
    for name in ("app", "werkzeug"):  # werkzeug: `flask run` logs request lines with queries
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(level)


def redact_query(query: str) -> str:
    """``a=1&token=abc`` -> ``a=1&token=[redacted]``."""
    return _PARAM.sub(_redact_param, query)


# -- gunicorn ---------------------------------------------------------------------------------

# Access-log atoms that hold credentials; they are never written, whatever the format asks.
_CREDENTIAL_ATOMS = frozenset({
    "{x-admin-token}i", "{authorization}i", "{cookie}i",
    "{http_x_admin_token}e", "{http_authorization}e", "{http_cookie}e"})
_QUERY_ATOMS = ("r", "q", "{raw_uri}e", "{query_string}e", "{request_uri}e")


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, writing the app's format and never a credential."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        redactor = Redactor.from_environ()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                base = handler.formatter
                if isinstance(base, (RedactingFormatter, JsonFormatter)):
                    continue  # set up before a configuration reload
                handler.setFormatter(make_formatter(redactor, base))

    def exception(self, msg, *args, **kwargs) -> None:
        """A connection dropped on a socket timeout is expected (a stream's client stopped
        reading: OPS_STREAM_SEND_TIMEOUT), so one line says so instead of a traceback."""
        if isinstance(sys.exc_info()[1], TimeoutError):
            self.warning("connection dropped: the client stopped reading (send timeout)")
            return
        super().exception(msg, *args, **kwargs)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in _CREDENTIAL_ATOMS & atoms.keys():
            atoms[key] = REDACTED
        for key in _QUERY_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query_in(atoms[key])
        return atoms


def redact_query_in(text: str) -> str:
    """Redact the secret parameters of the query inside ``text`` (a request line or a URI)."""
    head, sep, query = text.partition("?")
    if not sep:
        return redact_query(text) if "=" in text else text
    return head + sep + redact_query(query)
