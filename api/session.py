"""Browser sign-in: ``GET /login`` (a page), ``POST /login`` (form field ``key``), ``GET /logout``.

A browser cannot send an ``X-API-Key`` header, so with ``api_keys`` configured a person signs in
once with a key and the server keeps a session cookie (``buque_session``): HttpOnly,
SameSite=Strict, ``Secure`` when the request came over https (directly or through a proxy that
says so), expiring after ``session_hours``. Its value is ``payload.signature``: the payload holds
the expiry and a fingerprint of the key (never the key), signed with HMAC-SHA256 under the
session secret (``session_secret``; generated per process when unset, so sessions end when the
server restarts — ``buque serve --workers N`` generates one for all its workers). The role is
read from the *current* keys on every request: removing a key from ``BUQUE_API_KEYS`` ends the
sessions signed in with it.

Failed sign-ins (a wrong key in the form or in a header) are counted per client address; after
``login_attempts`` failures within ``login_window_s`` seconds the client is refused with 429
(``Retry-After``) until the window has passed, right keys included. Counts are kept per
process.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from buque.api.problems import Problem
from buque.api.settings import Role, Settings

COOKIE = "buque_session"
#: the largest sign-in form accepted (a key is short)
MAX_FORM_BYTES = 4096
router = APIRouter(include_in_schema=False)


# ------------------------------------------------------------------------------------ signing

def secret_of(app_state) -> bytes:
    """The app's session secret: from the settings, or generated once for this process."""
    s: Settings = app_state.settings
    if s.session_secret is not None:
        return s.session_secret.get_secret_value().encode()
    if getattr(app_state, "session_secret", None) is None:
        app_state.session_secret = secrets.token_bytes(32)
    return app_state.session_secret


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def fingerprint(secret: bytes, key: str) -> str:
    """What a session keeps of its key: a keyed hash, so the cookie never reveals it."""
    return _b64(hmac.new(secret, b"key:" + key.encode(), hashlib.sha256).digest()[:18])


def sign(secret: bytes, key: str, expires: float) -> str:
    payload = _b64(json.dumps({"k": fingerprint(secret, key), "e": int(expires)},
                              separators=(",", ":")).encode())
    mac = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def session_role(secret: bytes, value: str, keys: dict[str, Role],
                 now: float | None = None) -> Role | None:
    """The role of a session cookie's value, or None when it is forged, expired, or its key
    is no longer configured."""
    payload, _, mac = value.partition(".")
    good = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, good):
        return None
    try:
        data = json.loads(_unb64(payload))
        fp, exp = str(data["k"]), float(data["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if exp <= (time.time() if now is None else now):
        return None
    for k, role in keys.items():
        if hmac.compare_digest(fingerprint(secret, k), fp):
            return role
    return None


def match_key(keys: dict[str, Role], key: str) -> Role | None:
    """The role of ``key``, compared in constant time against every configured key."""
    found: Role | None = None
    for k, role in keys.items():
        if hmac.compare_digest(k.encode(), key.encode()):
            found = role
    return found


# ------------------------------------------------------------------------------ rate limiting

class Attempts:
    """Failed sign-ins per client in a sliding window."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window = limit, window_s
        self._failed: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> collections.deque[float]:
        q = self._failed.setdefault(client, collections.deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again (0: it may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._recent(client, now)
            if len(q) < self.limit:
                return 0
            return max(1, math.ceil(q[-self.limit] + self.window - now))

    def fail(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failed) > 100_000:  # many clients: forget those with no recent failure
                for c in [c for c, q in self._failed.items() if not q]:
                    del self._failed[c]


def attempts_of(request: Request) -> Attempts:
    st = request.app.state
    if getattr(st, "attempts", None) is None:
        s: Settings = st.settings
        st.attempts = Attempts(s.login_attempts, s.login_window_s)
    return st.attempts


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


def check_rate(request: Request) -> None:
    """Refuse a client that failed too often lately (429 with ``Retry-After``)."""
    wait = attempts_of(request).retry_after(client_of(request))
    if wait:
        s: Settings = request.app.state.settings
        raise Problem(429, f"too many failed sign-ins from this address: at most "
                      f"{s.login_attempts} in {s.login_window_s:g} s (login_attempts, "
                      f"login_window_s); try again in {wait} s", kind="too-many-sign-ins",
                      headers={"Retry-After": str(wait)}, limit=s.login_attempts,
                      window_s=s.login_window_s)


# ------------------------------------------------------------------------------------ routes

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>补缺 · 登录 / Sign in</title>
<link rel="icon" href="{root}/favicon.ico">
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif;
       background: #f4f1ea; margin: 0; display: flex; min-height: 100vh;
       align-items: center; justify-content: center; }}
form {{ background: #fff; padding: 24px 28px; box-shadow: 0 2px 8px rgba(0,0,0,.15);
       width: 320px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
p {{ color: #555; font-size: 13px; margin: 4px 0 14px; }}
label {{ display: block; font-size: 14px; margin-bottom: 4px; }}
input {{ width: 100%; box-sizing: border-box; padding: 6px; font-size: 15px; }}
button {{ margin-top: 14px; width: 100%; padding: 8px; font-size: 15px; }}
.error {{ color: #b00020; }}
</style>
</head>
<body>
<form method="post" action="{root}/login">
<h1>基础设施缺口图 · 登录</h1>
<p>Infrastructure gap map · sign in</p>
{error}
<label for="key">访问密钥 / Access key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 / Sign in</button>
</form>
</body>
</html>
"""
ERROR = '<p class="error" id="error">密钥无效 / Unknown key</p>'


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in (anything else: ``/map``)."""
    if (value and value.startswith("/") and not value.startswith("//") and "\\" not in value
            and not any(c.isspace() or ord(c) < 32 for c in value)):
        return value
    return "/map"


def login_page(request: Request, next_: str, error: bool = False, status: int = 200
               ) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    html = PAGE.format(root=escape(root), next=escape(safe_next(next_)),
                       error=ERROR if error else "")
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https: directly, or through a proxy saying so."""
    fwd = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or fwd == "https"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    s: Settings = request.app.state.settings
    if not s.api_keys:  # nothing to sign in to
        return RedirectResponse(safe_next(next), status_code=303)
    return login_page(request, next or "/map")


@router.post("/login")
async def login(request: Request) -> Response:
    s: Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise Problem(403, "sign-in forms are only accepted from this server's own page",
                      kind="cross-origin-sign-in")
    check_rate(request)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Problem(413, f"the sign-in form is larger than {MAX_FORM_BYTES} bytes",
                      kind="body-too-large", limit=MAX_FORM_BYTES)
    form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    key = (form.get("key") or [""])[0].strip()
    next_ = safe_next((form.get("next") or [None])[0])
    root = request.scope.get("root_path", "").rstrip("/")
    if not s.api_keys:
        return RedirectResponse(root + next_, status_code=303)
    if not key or match_key(s.api_keys, key) is None:
        attempts_of(request).fail(client_of(request))
        return login_page(request, next_, error=True, status=401)
    hours = s.session_hours
    value = sign(secret_of(request.app.state), key, time.time() + hours * 3600)
    r = RedirectResponse(root + next_, status_code=303)
    r.set_cookie(COOKIE, value, max_age=int(hours * 3600), path=root or "/", httponly=True,
                 samesite="strict", secure=is_https(request))
    r.headers["Cache-Control"] = "no-store"
    return r


@router.get("/logout")
def logout(request: Request) -> Response:
    root = request.scope.get("root_path", "").rstrip("/")
    r = RedirectResponse(root + "/login", status_code=303)
    r.delete_cookie(COOKIE, path=root or "/", httponly=True, samesite="strict",
                    secure=is_https(request))
    r.headers["Cache-Control"] = "no-store"
    r.headers["Clear-Site-Data"] = '"cache"'
    return r


class SignInRequired(Exception):
    """Raised for a page opened with no session: answered with a redirect to ``/login``."""

    def __init__(self, next_: str) -> None:
        self.next = next_


def install(app) -> None:
    from urllib.parse import quote

    @app.exception_handler(SignInRequired)
    async def _to_login(request: Request, exc: SignInRequired) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}/login?next={quote(exc.next, safe='/')}",
                                status_code=303, headers={"Cache-Control": "no-store"})
