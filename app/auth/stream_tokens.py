"""Stream tokens: HMAC-SHA256 signed, bound to one task and an expiry.

Format ``v1.<task_id>.<expires_unix>.<signature>``, the signature being the urlsafe base64
HMAC-SHA256 of ``v1.<task_id>.<expires_unix>``. The first secret signs; every secret
verifies, so a secret can be rotated by putting the new one first.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

VERSION = "v1"


class TokenInvalid(Exception):
    """The token is malformed, tampered with or expired (401)."""


class TokenForOtherTask(Exception):
    """A valid token, for another task (403)."""


class StreamTokens:
    def __init__(self, secrets: Sequence[str], ttl: float, clock: Callable[[], float] = time.time):
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._keys = [s.encode() for s in secrets]
        self.ttl = ttl
        self._clock = clock

    def mint(self, task_id: int) -> tuple[str, datetime]:
        """Return a token for ``task_id`` and the moment it expires."""
        expires = int(self._clock() + self.ttl)
        payload = f"{VERSION}.{task_id}.{expires}"
        token = f"{payload}.{_sign(self._keys[0], payload)}"
        return token, datetime.fromtimestamp(expires, timezone.utc)

    def verify(self, token: str, task_id: int) -> None:
        """Return if the token grants streaming ``task_id``; else raise TokenInvalid or
        TokenForOtherTask."""
        # A token is ASCII as minted; compare_digest raises TypeError on a non-ASCII str.
        if not token.isascii():
            raise TokenInvalid("malformed stream token")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise TokenInvalid("malformed stream token")
        payload, signature = ".".join(parts[:3]), parts[3]
        if not any(hmac.compare_digest(_sign(key, payload), signature) for key in self._keys):
            raise TokenInvalid("invalid stream token signature")
        try:
            bound_task, expires = int(parts[1]), int(parts[2])
        except ValueError:
            raise TokenInvalid("malformed stream token") from None
        if expires <= self._clock():
            raise TokenInvalid("stream token expired: get a new one from POST /ops/stream_tokens")
        if bound_task != task_id:
            raise TokenForOtherTask(f"this stream token is for task {bound_task}, not {task_id}")


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.digest(key, payload.encode(), "sha256")  # one call, OpenSSL's
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
