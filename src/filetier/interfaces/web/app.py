"""``console_routes(runtime)``: the console's routes, mounted beside the API's in one app.

The pages live at the root (``/``, ``/files``, ``/overview``, ...); the API keeps
``/v1`` and ``/mcp``. Sign-in and sign-out are here; every other page is wrapped by
:class:`~filetier.interfaces.web.guard.Guard`.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from filetier.interfaces.http.runtime import Runtime
from filetier.interfaces.web.guard import Guard, is_https, safe_next, secure, small_form
from filetier.interfaces.web.sessions import (
    CSRF_FIELD,
    LIFETIME_SECONDS,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Sessions,
    new_secret,
    same_secret,
)
from filetier.interfaces.web.views import Pages

HERE = Path(__file__).parent
SIGNIN_FORM_SECONDS = 3600
TOKEN_FIELD_MAX = 512


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


class SignIn:
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def _form(
        self, request: Request, *, error: str | None = None, status_code: int = 200
    ) -> Response:
        secret = new_secret()
        response = self.guard.render(
            request,
            "signin.html",
            {
                "signin_secret": secret,
                "next": safe_next(request.query_params.get("next")),
                "error": error,
                "signed_out": request.query_params.get("signed_out") == "1",
            },
            status_code=status_code,
        )
        response.set_cookie(
            SIGNIN_COOKIE,
            secret,
            max_age=SIGNIN_FORM_SECONDS,
            path="/signin",
            httponly=True,
            samesite="strict",
            secure=is_https(request, self.guard.runtime.settings.public_url),
        )
        return response

    async def show(self, request: Request) -> Response:
        return self._form(request)

    async def submit(self, request: Request) -> Response:
        form = await small_form(request)
        if form is None:
            return self._form(
                request,
                error="The sign-in form was not one this page sends: try again.",
                status_code=413,
            )
        presented = form.get(CSRF_FIELD)
        if not same_secret(
            request.cookies.get(SIGNIN_COOKIE), presented if isinstance(presented, str) else None
        ):
            return self._form(
                request,
                error="The sign-in form had expired or did not come from this site: try again.",
                status_code=403,
            )
        raw = form.get("token")
        token = raw.strip() if isinstance(raw, str) else ""
        owner = (
            await self.guard.runtime.owner_for(token)
            if token and len(token) <= TOKEN_FIELD_MAX
            else None
        )
        if owner is None:
            return self._form(
                request,
                error="That token was not accepted. Check it and try again.",
                status_code=401,
            )
        # A new id on every sign-in (no fixation); the session this browser had ends.
        self.guard.sessions.close(request.cookies.get(SESSION_COOKIE))
        session_id, _ = self.guard.sessions.open(token)
        target = form.get("next")
        response = secure(
            RedirectResponse(safe_next(target if isinstance(target, str) else None), 303)
        )
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=LIFETIME_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=is_https(request, self.guard.runtime.settings.public_url),
        )
        response.delete_cookie(SIGNIN_COOKIE, path="/signin")
        return response


def console_routes(runtime: Runtime) -> list[BaseRoute]:
    guard = Guard(runtime, Sessions(), _templates())
    pages = Pages(guard)
    signin = SignIn(guard)

    async def home(request: Request) -> Response:
        return secure(RedirectResponse("/files", 303))

    async def signout(request: Request, visitor: object) -> Response:
        guard.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = secure(RedirectResponse("/signin?signed_out=1", 303))
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return [
        Route("/", home, methods=["GET"]),
        Route("/signin", signin.show, methods=["GET"]),
        Route("/signin", signin.submit, methods=["POST"]),
        Route("/signout", guard.page(signout), methods=["POST"]),
        Route("/files", guard.page(pages.files), methods=["GET"]),
        Route("/files/upload", guard.page(pages.upload, json_errors=True), methods=["POST"]),
        Route("/files/{file_id}", guard.page(pages.file), methods=["GET"]),
        Route("/files/{file_id}/download", guard.page(pages.download), methods=["GET", "HEAD"]),
        Route("/files/{file_id}/preview", guard.page(pages.preview), methods=["GET", "HEAD"]),
        Route(
            "/files/{file_id}/link",
            guard.page(pages.link, json_when_asked=True),
            methods=["POST"],
        ),
        Route("/files/{file_id}/delete", guard.page(pages.confirm_delete), methods=["GET"]),
        Route("/files/{file_id}/delete", guard.page(pages.delete), methods=["POST"]),
        Route("/overview", guard.page(pages.overview), methods=["GET"]),
        Route("/maintenance", guard.page(pages.maintenance, operator_only=True), methods=["GET"]),
        Route(
            "/maintenance/{operation}",
            guard.page(pages.plan, operator_only=True),
            methods=["GET"],
        ),
        Route(
            "/maintenance/{operation}",
            guard.page(pages.run, operator_only=True),
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
