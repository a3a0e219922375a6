"""Who may call what: the admin gate, the metrics gate and signed stream tokens."""

from .credentials import Credentials, Unauthenticated, init_app
from .stream_tokens import StreamTokens, TokenForOtherTask, TokenInvalid

__all__ = ["Credentials", "StreamTokens", "TokenForOtherTask", "TokenInvalid",
           "Unauthenticated", "init_app"]
