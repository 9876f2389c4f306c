"""Who is calling: bearer tokens checked by a server interceptor, TLS credentials, the bind rule.

    tokens  {owner name: token}, from `--token` / $FUSETRAIN_TOKEN (owner "default") and a token
            file (`--token-file` / $FUSETRAIN_TOKEN_FILE): one `NAME TOKEN` or bare `TOKEN` a line
    owner   the name of the caller's token; jobs carry it and other owners get NOT_FOUND

Every fusetrain.v1 call must send `authorization: Bearer <token>` once tokens are configured
(UNAUTHENTICATED otherwise); health and reflection stay open. The presented token is compared with
every configured one (sha256 digests, `hmac.compare_digest`, no early exit), so the time taken does
not depend on how much of a token was right. Without tokens the server serves only loopback
addresses: `check_bind` refuses any other unless the operator says so explicitly.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from typing import Optional

import grpc

_OWNER: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("fusetrain_owner", default=None)


class AuthConfigError(ValueError):
    """Tokens or TLS files that cannot be used; the message says which and why."""


def current_owner() -> Optional[str]:
    """The owner of the call being served (None when authentication is off)."""
    return _OWNER.get()


def load_tokens(token: str = "", token_file: Optional[os.PathLike] = None) -> dict[str, str]:
    """{owner: token} from one token (owner "default") and a token file."""
    tokens: dict[str, str] = {}
    if token:
        tokens["default"] = token
    if token_file:
        path = Path(token_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise AuthConfigError(f"token file {path}: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) > 2:
                raise AuthConfigError(f"token file {path}, line {number}: expected 'NAME TOKEN' or 'TOKEN'")
            name, value = (parts if len(parts) == 2
                           else ("token-" + hashlib.sha256(parts[0].encode()).hexdigest()[:12], parts[0]))
            if len(value) < 16:
                raise AuthConfigError(f"token file {path}, line {number}: a token needs at least 16 "
                                      f"characters")
            if name in tokens and tokens[name] != value:
                raise AuthConfigError(f"token file {path}, line {number}: owner {name!r} is listed twice")
            tokens[name] = value
        if not tokens:
            raise AuthConfigError(f"token file {path} holds no tokens")
    digests = [hashlib.sha256(v.encode()).digest() for v in tokens.values()]
    if len(set(digests)) != len(digests):
        raise AuthConfigError("two owners share one token")
    return tokens


def is_loopback(address: str) -> bool:
    """Whether host:port (or [v6]:port) listens only on this machine."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(address: str, tokens: dict, allow_unauthenticated: bool = False) -> None:
    """Refuse to serve a non-loopback address without tokens."""
    if not tokens and not allow_unauthenticated and not is_loopback(address):
        raise AuthConfigError(
            f"{address} is reachable from other machines: give clients tokens with --token or "
            f"--token-file (or $FUSETRAIN_TOKEN / $FUSETRAIN_TOKEN_FILE), or pass "
            f"--allow-unauthenticated to serve it without authentication")


def server_credentials(cert: Optional[os.PathLike], key: Optional[os.PathLike],
                       client_ca: Optional[os.PathLike] = None):
    """grpc.ServerCredentials for a certificate and key; with `client_ca`, clients must present a
    certificate signed by it (mutual TLS). None when no certificate is given."""
    if not cert and not key:
        if client_ca:
            raise AuthConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (cert and key):
        raise AuthConfigError("TLS needs both --tls-cert and --tls-key")
    try:
        pair = (Path(key).read_bytes(), Path(cert).read_bytes())
        ca = Path(client_ca).read_bytes() if client_ca else None
    except OSError as exc:
        raise AuthConfigError(f"TLS file {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


class TokenInterceptor(grpc.ServerInterceptor):
    """fusetrain.v1 calls must carry `authorization: Bearer <token>` of a configured owner
    (UNAUTHENTICATED otherwise); the handler then runs with `current_owner()` set."""

    def __init__(self, tokens):
        if isinstance(tokens, str):
            tokens = {"default": tokens}
        self._owners = [(name, hashlib.sha256(f"Bearer {t}".encode()).digest()) for name, t in tokens.items()]

    def owner_of(self, header: str) -> Optional[str]:
        sent = hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()
        found = None
        for name, expected in self._owners:     # every token is compared: no early exit
            if hmac.compare_digest(sent, expected):
                found = name
        return found

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith("/fusetrain."):
            return handler
        header = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str):
                header = value
        owner = self.owner_of(header)
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if owner is None:
            def deny(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token: send the header "
                                                               "'authorization: Bearer <token>'")
            fn, stream = deny, False
        else:
            fn = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
            stream = bool(handler.unary_stream or handler.stream_stream)
            fn = _as_owner(fn, owner, stream)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(fn, **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(fn, **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(fn, **kwargs)
        return grpc.stream_stream_rpc_method_handler(fn, **kwargs)


def _as_owner(fn, owner: str, stream: bool):
    if stream:
        def wrapped_stream(request, context):
            token = _OWNER.set(owner)
            try:
                yield from fn(request, context)
            finally:
                try:
                    _OWNER.reset(token)
                except ValueError:      # resumed in another context: nothing to restore there
                    _OWNER.set(None)
        return wrapped_stream

    def wrapped(request, context):
        token = _OWNER.set(owner)
        try:
            return fn(request, context)
        finally:
            _OWNER.reset(token)
    return wrapped
