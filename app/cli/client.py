"""The HTTP API of a running server, as the task commands call it, and what its failures mean
to the person at the terminal."""

from __future__ import annotations

import socket
import ssl

import click
import requests


class AnswerError(click.ClickException):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Unreachable(click.ClickException):
    """No answer from the server: refused, unknown host, timed out."""


class Api:
    """The API of a running server, called with one token: ``source`` names the variable it
    came from (``OPS_TOKEN`` or ``SETTINGS_ADMIN_TOKEN``), for the messages."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0,
                 source: str = "SETTINGS_ADMIN_TOKEN"):
        self.url = url.rstrip("/")
        self.token = token
        self.source = source
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.send(method, path, timeout=self.timeout, **kwargs)
        return response.json()

    def send(self, method: str, path: str, **kwargs) -> requests.Response:
        """The answer, or a ClickException that says what went wrong."""
        if not self.token:
            raise click.UsageError("no token: export yours as OPS_TOKEN, or the server's admin "
                                   "token as SETTINGS_ADMIN_TOKEN")
        headers = {"X-Admin-Token": self.token, **kwargs.pop("headers", {})}
        try:
            response = self.session.request(method, self.url + path, headers=headers, **kwargs)
        except requests.RequestException as error:
            raise Unreachable(f"cannot reach {self.url}: {why(error)}") from None
        if response.status_code >= 400:
            # read before closing: a stream's too
            message = _message(method, path, response, self.source)
            response.close()
            raise AnswerError(message, response.status_code)
        return response


def _message(method: str, path: str, response: requests.Response, source: str) -> str:
    """The server's own words for an error, with the status; ``task 9 not found`` for a 404."""
    status, error = response.status_code, _error_of(response)
    if status == 404 and error.startswith("task "):
        return error
    if status == 401:
        hint = (f"is {source} a token of this server?" if source == "OPS_TOKEN" else
                f"is {source} the server's admin token?")
        return f"401 {error or 'unauthorized'} ({hint})"
    if not error:
        return f"{method} {path}: {status} {response.reason or ''}".rstrip()
    return f"{status} {error}"


def _error_of(response: requests.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return response.text[:200].strip()
    return str(answer.get("error", "")) if isinstance(answer, dict) else ""


def why(error: requests.RequestException) -> str:
    """A few words for a failed request, instead of urllib3's ``Max retries exceeded`` text."""
    if isinstance(error, requests.ConnectTimeout):
        return "timed out while connecting"
    if isinstance(error, requests.ReadTimeout):
        return "no answer in time"
    causes, seen = [error], set()
    while causes:
        cause = causes.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is the server running? --url or OPS_URL names it)"
        if isinstance(cause, socket.gaierror):
            return "unknown host"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, TimeoutError):
            return "timed out"
        # requests wraps urllib3's MaxRetryError, whose reason wraps the socket's error
        causes.extend(c for c in (*cause.args, getattr(cause, "reason", None), cause.__cause__,
                                  cause.__context__) if isinstance(c, BaseException))
    if isinstance(error, requests.ConnectionError):
        return "the connection failed"
    return type(error).__name__
