"""The one place roles are checked: who a request acts as, and whether that role may do it.

A request acts as the holder of its ``X-Admin-Token`` (the admin token, or a named token of
``OPS_TOKENS_FILE``), else as the user named by the authenticating proxy's header (believed
only from a trusted proxy), else as nobody. Views declare the role they need with
:func:`requires`; the stream also admits stream tokens (:func:`stream_access_required`).
"""

from __future__ import annotations

import functools

from flask import g, request

from ..roles import Role
from .credentials import Forbidden, Principal, Unauthenticated, credentials
from .stream_tokens import TokenForOtherTask, TokenInvalid

HEADER = "X-Admin-Token"
# Set in the WSGI environ by the HTTP layer's proxy fix when the peer is a trusted proxy.
TRUSTED_PEER = "ops.trusted_peer"
# Browsers send these on every request a page makes: a signed-in user's browser must not be
# made to change anything from another site (the proxy's cookie goes with any request).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNSET = object()


def current_principal() -> Principal | None:
    """Who the request acts as (None: nobody); raises Unauthenticated for a wrong token or
    a proxy header from an untrusted peer, Forbidden for a proxy user without a role."""
    cached = g.get("principal", _UNSET)
    if cached is _UNSET:
        cached = g.principal = _identify()
    return cached


def _identify() -> Principal | None:
    known = credentials()
    token = request.headers.get(HEADER)
    if token is not None:
        principal = known.by_token(token)
        if principal is None:
            refuse(f"invalid {HEADER}")
        return principal
    if known.proxy_header is None:
        return None
    # Lower case, as the credentials file keeps emails: one user, one actor name, however
    # the identity provider spells it (the audit trail and created_by match names exactly).
    user = request.headers.get(known.proxy_header, "").strip().lower()
    if not user:
        return None
    if not request.environ.get(TRUSTED_PEER):
        refuse(f"{known.proxy_header} is believed only from a trusted proxy "
               "(FORWARDED_ALLOW_IPS)", actor=user)
    role = known.proxy_role(user)
    if role is None:
        forbid(f"{user} has no role here: an admin adds a [[user]] entry for it to "
               "OPS_TOKENS_FILE", actor=user)
    if request.method not in SAFE_METHODS and not _same_site():
        forbid("a cross-site request cannot act for a signed-in user", actor=user)
    return Principal(user, role, "proxy")


def _same_site() -> bool:
    """False when the browser says the request came from another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def refuse(message: str, actor: str | None = None):
    """Answer 401, and note the refusal for the audit trail."""
    g.auth_refused = (message, actor)
    raise Unauthenticated(message)


def forbid(message: str, actor: str | None = None):
    """Answer 403, and note the refusal for the audit trail."""
    g.auth_refused = (message, actor)
    raise Forbidden(message)


def missing_credentials() -> str:
    message = f"missing credentials: send the {HEADER} header"
    if credentials().proxy_header is not None:
        message += " or sign in through the proxy"
    return message


def check_role(principal: Principal, needed: Role, what: str = "this") -> None:
    """Forbidden unless ``principal`` holds ``needed`` (or a higher role)."""
    if principal.role < needed:
        forbid(f"{what} needs the {needed.label} role; {principal.name} is "
               f"{principal.role.label}", actor=principal.name)


def requires(role: Role):
    """Admit the request only for a principal holding ``role``: 401 without a credential,
    403 with one that lacks the role. The view's ``required_role`` says which (tests walk
    the URL map with it)."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                refuse(missing_credentials())
            check_role(principal, role)
            return view(*args, **kwargs)
        wrapped.required_role = role
        return wrapped
    return decorate


def stream_access_required(view):
    """Admit a stream (or log) request by a viewer's credential, a ``?token=`` stream token
    or, in dev mode only, ``?admin_token=``. The view receives the task id as ``task_id``,
    and as ``signed_in`` whether a credential (not a stream token) admitted it."""
    @functools.wraps(view)
    def wrapped(task_id: int, **kwargs):
        principal = current_principal()
        if principal is not None:
            check_role(principal, Role.VIEWER)
            return view(task_id=task_id, signed_in=True, **kwargs)
        known = credentials()
        token = request.args.get("token")
        if token is not None:
            try:
                known.stream_tokens.verify(token, task_id)
            except (TokenInvalid, TokenForOtherTask) as error:
                g.auth_refused = (str(error), None)
                raise
            return view(task_id=task_id, signed_in=False, **kwargs)
        admin_token = request.args.get("admin_token")
        if admin_token is not None:
            if not known.dev_mode:
                refuse("?admin_token= is accepted only in dev mode (DEV_LOCAL_LLM=1); get a "
                       "stream token from POST /ops/stream_tokens and pass it as ?token=")
            principal = known.by_token(admin_token)
            if principal is None:
                refuse("invalid admin token")
            g.principal = principal
            return view(task_id=task_id, signed_in=True, **kwargs)
        refuse(f"{missing_credentials()}, or a stream token from POST /ops/stream_tokens "
               "as ?token=")
    wrapped.required_role = Role.VIEWER
    return wrapped
