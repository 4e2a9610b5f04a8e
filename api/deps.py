"""Request dependencies: the run store, the run named by ``run=``, access, paging, formats, links."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request

from buque.api import session
from buque.api.encoders import CSV, GEOJSON, JSON, XLSX
from buque.api.problems import Problem
from buque.api.settings import Role, Settings
from buque.api.store import RunStoreBase, ServedRun, UnknownRun
from buque.api.stores import open_store

_store_lock = threading.Lock()
LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> RunStoreBase:
    """The store the lifespan loaded; loaded here on first use when no lifespan ran."""
    store = getattr(request.app.state, "store", None)
    if store is None:
        with _store_lock:
            store = getattr(request.app.state, "store", None)
            if store is None:
                store = open_store(get_settings(request))
                request.app.state.store = store
    return store


# ------------------------------------------------------------------------------------- access

def _key_of(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def role_of(request: Request) -> Role:
    """The caller's role; every caller is ``office`` when the server has no keys configured.
    A key in a header wins; else a browser's session cookie (:mod:`api.session`)."""
    s = get_settings(request)
    if not s.api_keys:
        return "office"
    key = _key_of(request)
    if key is not None:
        session.check_rate(request)
        found = session.match_key(s.api_keys, key)
        if found is None:
            session.attempts_of(request).fail(session.client_of(request))
            raise Problem(401, "unknown API key", kind="unauthorized",
                          headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})
        return found
    cookie = request.cookies.get(session.COOKIE)
    if cookie:
        role = session.session_role(session.secret_of(request.app.state), cookie, s.api_keys)
        if role is not None:
            return role
    host = request.client.host if request.client else ""
    if s.open_loopback and host in LOOPBACK:
        return "viewer"
    raise Problem(401, "this server requires an API key: send it in the X-API-Key header "
                  "(or as Authorization: Bearer KEY), or sign in at /login in a browser",
                  kind="unauthorized", headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})


def page_viewer(request: Request) -> Role:
    """Access to a page a person opens (``/map``, ``/docs``): with no key or session, a
    redirect to the sign-in page instead of a 401."""
    try:
        return role_of(request)
    except Problem as e:
        if e.status != 401:
            raise
        path = request.url.path
        root = request.scope.get("root_path", "").rstrip("/")
        if root and path.startswith(root + "/"):  # behind a proxy's prefix: the app's own path
            path = path[len(root):]
        if request.url.query:
            path += "?" + request.url.query
        raise session.SignInRequired(path) from None


def viewer(request: Request) -> Role:
    return role_of(request)


def office(request: Request) -> Role:
    role = role_of(request)
    if role != "office":
        raise Problem(403, "this resource needs an office API key", kind="forbidden")
    return role


# ------------------------------------------------------------------------------------ the run

RunParam = Annotated[str | None, Query(
    description="Run id or the run's folder name (see `/runs`); the newest run when absent.",
    max_length=100)]


def unknown_run(store: RunStoreBase, run_id: str | None) -> Problem:
    if run_id is None:
        return Problem(404, f"no runs in {store.label}", kind="no-run")
    shown = ", ".join(store.ids[-20:])
    return Problem(404, f"no run {run_id!r}; known runs: {shown or 'none'}", kind="unknown-run")


def get_run(request: Request, run: RunParam = None) -> ServedRun:
    store = get_store(request)
    try:
        return store.get(run)
    except UnknownRun:
        raise unknown_run(store, run) from None


Run = Annotated[ServedRun, Depends(get_run)]


# ------------------------------------------------------------------------ unknown parameters

_allowed_cache: dict[int, frozenset[str]] = {}


def _query_aliases(dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_aliases(sub)
    return names


def reject_unknown_params(request: Request) -> None:
    """A query parameter the endpoint does not define is an error (OGC API - Features core),
    so a typo such as ``mising=road`` never silently returns everything."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    allowed = _allowed_cache.get(id(route))
    if allowed is None:
        allowed = frozenset(_query_aliases(route.dependant))
        _allowed_cache[id(route)] = allowed
    unknown = [k for k in request.query_params if k not in allowed]
    if unknown:
        raise Problem(400, f"unknown query parameter(s): {', '.join(sorted(set(unknown)))}; "
                      f"this endpoint takes: {', '.join(sorted(allowed)) or 'none'}",
                      kind="unknown-parameter")


# --------------------------------------------------------------------------------- paging

@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int
    explicit: bool  # the request gave a limit


def paging(request: Request,
           limit: Annotated[int | None, Query(ge=1, description="Items per page; larger values "
                                              "are capped at the server's maximum.")] = None,
           offset: Annotated[int, Query(ge=0, le=1_000_000_000,
                                        description="Items to skip.")] = 0) -> Paging:
    s = get_settings(request)
    if limit is None:
        return Paging(s.default_limit, offset, False)
    return Paging(min(limit, s.max_limit), offset, True)


def window(n: int, page: Paging, fmt: str, max_export: int) -> slice:
    """Rows to return: a page for JSON; for CSV/XLSX everything matched unless a limit is given
    (more than ``max_export`` rows is an error: a download is never silently cut)."""
    if fmt in ("csv", "xlsx") and not page.explicit:
        if n - page.offset > max_export:
            raise Problem(400, f"{n - page.offset:,} rows match; a {fmt.upper()} download holds "
                          f"at most {max_export:,} (max_export_rows): give limit and offset to "
                          "download it in parts", kind="too-many-rows", limit=max_export,
                          matched=n)
        return slice(page.offset, min(n, page.offset + max_export))
    return slice(page.offset, min(n, page.offset + page.limit))


# -------------------------------------------------------------------------------- formats

MEDIA = {"json": JSON, "geojson": GEOJSON, "csv": CSV, "xlsx": XLSX}
ACCEPT = {"application/geo+json": "geojson", "application/json": "json", "text/csv": "csv",
          "application/csv": "csv", XLSX: "xlsx"}

FeatureFormat = Literal["json", "geojson", "csv", "xlsx"]
#: comma-separated filters shared by the villages, summary, projects and diff routes
Counties = Annotated[str | None, Query(description="County name(s), comma-separated.",
                                       max_length=2000)]
Townships = Annotated[str | None, Query(description="Township name(s), comma-separated.",
                                        max_length=2000)]
Indicators = Annotated[str | None, Query(description="Indicator key(s), comma-separated.",
                                         max_length=2000)]
Levels = Annotated[str | None, Query(description="admin and/or natural.", max_length=2000)]
Codes = Annotated[str | None, Query(description="Village code(s), comma-separated.",
                                    max_length=2000)]

TableFormat = Literal["json", "csv", "xlsx"]
FeatureF = Annotated[FeatureFormat | None, Query(
    description="Output format: json/geojson (GeoJSON), csv (UTF-8 with BOM) or xlsx. "
    "Overrides the Accept header.")]
TableF = Annotated[TableFormat | None, Query(
    description="Output format: json, csv (UTF-8 with BOM) or xlsx. Overrides the Accept header.")]


def negotiate(request: Request, f: str | None, allowed: tuple[str, ...], default: str) -> str:
    """``f=`` wins; else the most preferred type of the Accept header we can produce."""
    if f is not None:
        return f
    accept = request.headers.get("accept")
    if not accept:
        return default
    entries = []
    for i, part in enumerate(accept.split(",")):
        bits = [b.strip() for b in part.split(";")]
        mime, q = bits[0].lower(), 1.0
        for b in bits[1:]:
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            entries.append((-q, i, mime))
    for _, _, mime in sorted(entries):
        fmt = ACCEPT.get(mime)
        if fmt in allowed:
            return fmt
        if mime in ("*/*", "application/*"):
            return default
    return default


# --------------------------------------------------------------------------------- links

def attachment(name: str) -> dict[str, str]:
    """The header that makes a browser save the response as ``name``."""
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def link(href: str, rel: str, type: str | None = None, title: str | None = None) -> dict[str, str]:
    d = {"href": href, "rel": rel}
    if type:
        d["type"] = type
    if title:
        d["title"] = title
    return d


def url_for(request: Request, path: str, **params: str | int | None) -> str:
    base = str(request.base_url).rstrip("/")
    q = {k: v for k, v in params.items() if v is not None}
    from urllib.parse import urlencode

    return f"{base}{path}" + (f"?{urlencode(q)}" if q else "")


def with_params(request: Request, **params: str | int | None) -> str:
    """This request's URL with some query parameters replaced (``None`` removes one)."""
    url = request.url
    drop = [k for k, v in params.items() if v is None]
    if drop:
        url = url.remove_query_params(drop)
    keep = {k: v for k, v in params.items() if v is not None}
    if keep:
        url = url.include_query_params(**keep)
    return str(url)


def paging_links(request: Request, page: Paging, returned: int, matched: int,
                 media: str, fmt_param: str | None = None) -> list[dict[str, str]]:
    links = [link(str(request.url), "self", media)]
    lim = page.limit
    if page.offset + returned < matched and returned > 0:
        links.append(link(with_params(request, offset=page.offset + returned, limit=lim),
                          "next", media, "next page"))
    if page.offset > 0:
        prev = max(0, page.offset - lim)
        links.append(link(with_params(request, offset=prev or None, limit=lim), "prev", media,
                          "previous page"))
    return links


def alternates(request: Request, current: str, formats: tuple[str, ...]) -> list[dict[str, str]]:
    out = []
    for fmt in formats:
        if fmt != current and not (fmt == "json" and current == "geojson"):
            out.append(link(with_params(request, f=fmt), "alternate", MEDIA[fmt].split(";")[0],
                            f"this document as {fmt.upper()}"))
    return out
