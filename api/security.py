"""Security headers on every response: a Content-Security-Policy, ``nosniff``, a referrer policy.

Names, codes and ids shown on the pages come from input files anyone can edit. The pages build
their DOM with ``textContent`` only (``api/static/map.js``); the policy is the second line of
defence: scripts only from this server (no inline script, no ``eval``), connections only to it,
nothing framed. MapLibre needs ``blob:`` workers and images; its canvas and controls set inline
styles, hence ``style-src 'unsafe-inline'`` (styles cannot run script).

``/docs`` (Swagger UI, served from the ``swagger-ui-bundle`` package) starts with one inline
script written by FastAPI; its response sets a policy that allows that script by its SHA-256
hash. A response that sets its own policy keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; worker-src 'self' blob:; child-src 'self' blob:; "
       "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
REFERRER_POLICY = "same-origin"
_INLINE = re.compile(r"<script>(.*?)</script>", re.S)


def inline_script_hashes(html: str) -> list[str]:
    """CSP sources (``'sha256-...'``) for the inline ``<script>`` elements of ``html``."""
    return ["'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in _INLINE.findall(html)]


def docs_policy(html: str) -> str:
    """The policy of the offline Swagger UI page ``html``: its inline script by hash, all
    assets from this server."""
    return (f"default-src 'self'; script-src 'self' {' '.join(inline_script_hashes(html))}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI middleware adding the headers to each HTTP response (per-path policies in
    ``policies``; a policy set by the response itself is kept)."""

    def __init__(self, app: ASGIApp, policies: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.policies = dict(policies or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policies.get(scope.get("path", ""), CSP)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers.setdefault("Referrer-Policy", REFERRER_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
