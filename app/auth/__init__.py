"""Who may call what: named credentials and their roles, the proxy sign-in, the metrics gate
and signed stream tokens. Roles are checked in one place, :mod:`.gate`."""

from .credentials import Credentials, Forbidden, Principal, Unauthenticated, init_app
from .gate import current_principal, requires
from .stream_tokens import StreamTokens, TokenForOtherTask, TokenInvalid

__all__ = ["Credentials", "Forbidden", "Principal", "StreamTokens", "TokenForOtherTask",
           "TokenInvalid", "Unauthenticated", "current_principal", "init_app", "requires"]
