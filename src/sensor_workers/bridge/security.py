"""Access rules: bearer token, origin allowlist, request body size. Pure; no FastAPI state."""

from collections.abc import Mapping
import hmac
import json
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(' ')
    if scheme.lower() != 'bearer' or not token.strip():
        return None
    return token.strip()


def token_ok(expected: str, presented: str | None) -> bool:
    """Return whether no token is required or the presented one matches (constant time)."""
    if not expected:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Browsers send `Origin`; allow none (not a browser), same origin, or a listed one.

    `*` in `allowed` allows every origin. A page served by the bridge itself is same-origin.
    """
    if origin is None:
        return True
    if '*' in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ('http', 'https') and host is not None and parts.netloc == host


def refusal(headers: Mapping[str, str], query_token: str | None, auth_token: str,
            allowed_origins: tuple[str, ...]) -> str | None:
    """Return why a request is refused, `origin` or `token`, or None when it may pass.

    The token comes from `?token=` when given (websockets: browsers cannot set their headers),
    else from `Authorization: Bearer`.
    """
    if not origin_allowed(headers.get('origin'), headers.get('host'), allowed_origins):
        return 'origin'
    if not token_ok(auth_token, query_token or bearer_token(headers.get('authorization'))):
        return 'token'
    return None


class BodySizeLimit:
    """Refuse HTTP request bodies over `max_bytes` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        for name, value in scope.get('headers', []):
            if name == b'content-length':
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await _reject(send, 413 if declared > 0 else 400,
                                  f'request body over {self.max_bytes} bytes'
                                  if declared > 0 else 'bad Content-Length')
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message['type'] == 'http.request':
                received += len(message.get('body', b''))
                if received > self.max_bytes:
                    raise HTTPException(413, f'request body over {self.max_bytes} bytes')
            return message

        await self.app(scope, limited_receive, send)


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({'detail': detail}).encode()
    await send({'type': 'http.response.start', 'status': status,
                'headers': [(b'content-type', b'application/json'),
                            (b'content-length', str(len(body)).encode())]})
    await send({'type': 'http.response.body', 'body': body})
