"""Who is looking at a console page: the session, its owner, and the page's headers.

Every console endpoint is wrapped by :func:`Guard.page`, which (in order) finds the
session, resolves its token to an owner with the API's own resolver, refuses a
state-changing request without the session's CSRF token, refuses operator-only pages to
other owners, puts the owner into the request scope exactly where the API's access gate
puts it (so :meth:`Runtime.store_for` scopes the store the same way for both), and
turns domain errors into an HTML page with the status the error table gives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from filetier.errors import FiletierError, mapping_for
from filetier.interfaces.http.access import OWNER_STATE_KEY
from filetier.interfaces.http.errors import error_response
from filetier.interfaces.http.runtime import Runtime
from filetier.interfaces.web.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    Sessions,
)
from filetier.store import FileStore

# No inline script or style anywhere: everything the page runs or wears is a file under
# /static. Frames only for the PDF preview, from this origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class Visitor:
    """The signed-in user of one request."""

    owner: str
    operator: bool
    session: Session
    store: FileStore


Handler = Callable[[Request, Visitor], Awaitable[Response]]


def is_operator(runtime: Runtime, owner: str) -> bool:
    """The same rule as the MCP tools' ``require_operator``: the server's own owner."""
    return owner == runtime.settings.owner


def secure(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def is_https(request: Request, public_url: str | None) -> bool:
    """Whether the browser reaches the console over https: directly, or through the TLS
    proxy that ``FILETIER_PUBLIC_URL`` names (the server itself then sees plain http)."""
    return request.url.scheme == "https" or (public_url or "").lower().startswith("https://")


class Guard:
    def __init__(self, runtime: Runtime, sessions: Sessions, templates: Jinja2Templates) -> None:
        self.runtime = runtime
        self.sessions = sessions
        self.templates = templates

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, object],
        *,
        visitor: Visitor | None = None,
        status_code: int = 200,
    ) -> Response:
        full = {
            "visitor": visitor,
            "csrf": visitor.session.csrf if visitor else None,
            "active": None,
            **context,
        }
        return secure(self.templates.TemplateResponse(request, name, full, status_code=status_code))

    def error_page(
        self, request: Request, status: int, title: str, message: str, visitor: Visitor | None
    ) -> Response:
        return self.render(
            request,
            "error.html",
            {"title": title, "message": message, "status": status},
            visitor=visitor,
            status_code=status,
        )

    def page(
        self,
        handler: Handler,
        *,
        operator_only: bool = False,
        json_errors: bool = False,
        json_when_asked: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind a session: see the module docstring for the checks.
        Refusals and errors are JSON bodies with ``json_errors``, or with
        ``json_when_asked`` when the request accepts JSON (the page's script), else pages."""

        async def endpoint(request: Request) -> Response:
            as_json = json_errors or (json_when_asked and wants_json(request))
            session_id = request.cookies.get(SESSION_COOKIE)
            session = self.sessions.get(session_id)
            owner = await self.runtime.owner_for(session.token) if session else None
            if session is None or owner is None:
                self.sessions.close(session_id)  # a revoked token ends its session
                return self._signed_out(request, as_json)
            write = request.method in WRITE_METHODS
            if write and not session.csrf_matches(await _presented_csrf(request)):
                return self._refuse(
                    request,
                    as_json,
                    403,
                    "Request refused",
                    "this request did not carry the page's security token (CSRF): reload "
                    "the page and try again",
                )
            state = request.scope.setdefault("state", {})
            state[OWNER_STATE_KEY] = owner
            state["owner"] = owner
            visitor = Visitor(
                owner=owner,
                operator=is_operator(self.runtime, owner),
                session=session,
                store=self.runtime.store_for(request),
            )
            if operator_only and not visitor.operator:
                return self.error_page(
                    request,
                    403,
                    "Operators only",
                    "this page acts on every owner's files, so only the server's operator "
                    "may use it",
                    visitor,
                )
            try:
                response = await handler(request, visitor)
            except FiletierError as exc:
                if as_json:
                    raise  # the API's handler answers with the JSON error body
                status = mapping_for(exc).http_status
                title = "Not found" if status == 404 else "Something went wrong"
                return self.error_page(
                    request, status, title, self.runtime.redact(exc.message), visitor
                )
            return response

        return endpoint

    def _signed_out(self, request: Request, json_errors: bool) -> Response:
        if json_errors or request.method in WRITE_METHODS:
            return self._refuse(
                request,
                json_errors,
                401,
                "Signed out",
                "your session has ended: sign in again",
            )
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return secure(RedirectResponse(f"/signin?next={quote(target, safe='')}", 303))

    def _refuse(
        self, request: Request, json_errors: bool, status: int, title: str, message: str
    ) -> Response:
        if json_errors:
            response: JSONResponse = error_response(status, title.replace(" ", ""), message)
            return secure(response)
        return self.error_page(request, status, title, message, None)


def wants_json(request: Request) -> bool:
    """The console's script asks for JSON; a browser following a form asks for HTML."""
    return "application/json" in request.headers.get("accept", "")


# The console's own forms (sign-in, delete, sign-out, a link) are a few hundred bytes.
FORM_MAX_BYTES = 16 * 1024


async def small_form(request: Request) -> FormData | None:
    """The posted form, or None when it is not one of the console's small forms: its
    declared length missing or over FORM_MAX_BYTES (refused unread: the server reads no
    more than a request declares), or a file part in it. Parsed without these bounds, a
    sign-in request, which needs no token, could make the server hold a gigabyte."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > FORM_MAX_BYTES:
        return None
    try:
        return await request.form(max_files=0, max_fields=32, max_part_size=FORM_MAX_BYTES)
    except HTTPException:
        return None  # a file part, or too many fields


async def _presented_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await small_form(request)
        value = form.get(CSRF_FIELD) if form is not None else None
        return value if isinstance(value, str) else None
    return None


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another origin."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/files"
    return target
