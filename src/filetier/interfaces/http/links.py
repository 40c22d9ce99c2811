"""Download links over HTTP: minting and revoking them (``/v1``, with a token) and serving
them (``/links/{token}``, without one).

``POST /v1/files/{id}/links``     mint: ``{"expires_in", "single_use", "range", "direct"}``
``DELETE /v1/links/{link_id}``    revoke one link
``DELETE /v1/files/{id}/links``   revoke every link to a file
``DELETE /v1/links``              revoke every link of the caller
``GET|HEAD /links/{token}``       the content, through the authenticated route's code

A link that cannot be served, for any reason, is the same 404 (see
:mod:`filetier.links`). The served body is the authenticated route's: the same headers,
verification and ranges, and each use is a download history row ``downloaded_by =
"link:<id>"``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from filetier.errors import InvalidInputError, NotFoundError
from filetier.interfaces.common.links import DEFAULT_EXPIRES_IN, mint_link
from filetier.interfaces.common.ranges import ByteRange
from filetier.interfaces.http.content import find_record
from filetier.interfaces.http.params import check_keys, json_object, only_params, runtime_of
from filetier.interfaces.http.routes import serve_content
from filetier.links import link_invalid, parse_link_id


async def create_link(request: Request) -> Response:
    only_params(request)
    runtime = runtime_of(request)
    store = runtime.store_for(request)
    body = await json_object(request)
    check_keys(body, {"expires_in", "single_use", "range", "direct"}, set())
    expires_in = body.get("expires_in", min(DEFAULT_EXPIRES_IN, store.settings.link_max_seconds))
    single_use, direct, range_header = (
        body.get("single_use", False),
        body.get("direct", False),
        body.get("range"),
    )
    record = await find_record(store, request.path_params["file_id"])
    if isinstance(expires_in, float) and expires_in.is_integer():
        expires_in = int(expires_in)  # JSON does not tell 60 from 60.0
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise InvalidInputError("expires_in must be a whole number of seconds")
    if not isinstance(single_use, bool) or not isinstance(direct, bool):
        raise InvalidInputError("single_use and direct must be true or false")
    if range_header is not None and not isinstance(range_header, str):
        raise InvalidInputError("range must be a string such as 'bytes=0-1023'")
    answer = await mint_link(
        runtime.link_authority(),
        store,
        record,
        request_base=str(request.base_url),
        expires_in=expires_in,
        single_use=single_use,
        range_header=range_header,
        direct=direct,
    )
    return JSONResponse(answer, status_code=201)


async def revoke_link(request: Request) -> Response:
    only_params(request)
    runtime = runtime_of(request)
    store = runtime.store_for(request)
    link_id = parse_link_id(request.path_params["link_id"])
    revoked = await runtime.link_authority().revoke(store.owner, link_id=link_id)
    return JSONResponse({"revoked": revoked})


async def revoke_file_links(request: Request) -> Response:
    only_params(request)
    runtime = runtime_of(request)
    store = runtime.store_for(request)
    record = await find_record(store, request.path_params["file_id"])
    revoked = await runtime.link_authority().revoke(store.owner, file_id=record.file_id)
    return JSONResponse({"revoked": revoked})


async def revoke_all_links(request: Request) -> Response:
    only_params(request)
    runtime = runtime_of(request)
    store = runtime.store_for(request)
    return JSONResponse({"revoked": await runtime.link_authority().revoke(store.owner)})


async def link_content(request: Request) -> Response:
    """Serve a link: no token, and one 404 for every link that cannot be served."""
    if request.query_params:
        raise link_invalid()
    runtime = runtime_of(request)
    links = runtime.link_authority()
    grant = await links.check(request.path_params["token"])
    store = runtime.root_store().as_owner(grant.owner)
    try:
        record = await find_record(store, str(grant.file_id))
    except NotFoundError:
        raise link_invalid() from None  # the file was deleted: said as for any dead link
    bound = None
    if grant.range_start is not None and grant.range_end is not None:
        bound = ByteRange(grant.range_start, min(grant.range_end, record.size - 1), record.size)

    async def use() -> None:
        await links.use(grant)

    return await serve_content(
        request,
        runtime,
        store,
        record,
        bound_range=bound,
        before_body=use,
        downloaded_by=f"link:{grant.link_id.hex}",
    )


__all__ = [
    "create_link",
    "link_content",
    "revoke_all_links",
    "revoke_file_links",
    "revoke_link",
]
