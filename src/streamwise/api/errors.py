"""Every failure before the first byte becomes an HTTP status with Flowise's error JSON.

`STATUS` is the one table from the exception tree (`streamwise.errors`) to HTTP statuses; the most
specific class wins. Messages are the exceptions' own, which are written to be shown; `detail` (what
only the log may see) goes to the log.
"""

from __future__ import annotations

import logging

import redis.exceptions as redis_exc
import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from streamwise.errors import (
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    Conflict,
    FlowError,
    Forbidden,
    Gone,
    InternalError,
    LengthRequired,
    LimitExceeded,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
    NotFound,
    RateLimited,
    ShuttingDown,
    StorageError,
    StreamwiseError,
    Unauthorized,
    Unavailable,
)
from streamwise.wire.errors import error_body

logger = logging.getLogger("streamwise.api")

STATUS: dict[type[StreamwiseError], int] = {
    BadRequest: 400,
    BodyTooLarge: 413,
    BodyTimeout: 408,
    LengthRequired: 411,
    LimitExceeded: 400,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    NotFound: 404,
    Gone: 410,
    Conflict: 409,
    FlowError: 400,
    ModelError: 502,
    ModelRateLimited: 429,
    ModelTimeout: 504,
    StorageError: 503,
    ShuttingDown: 503,
    Unavailable: 503,
    InternalError: 500,
}


def status_of(error: StreamwiseError) -> int:
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status_code, message), status_code=status_code, headers=headers)


def response_for(error: StreamwiseError) -> JSONResponse:
    """The HTTP answer for a failure of the tree, with the headers some of them call for."""
    headers: dict[str, str] = {}
    if isinstance(error, BodyTimeout):
        headers["Connection"] = "close"  # the rest of that body may never come
    if isinstance(error, ModelRateLimited) and error.retry_after:
        headers["Retry-After"] = error.retry_after
    if isinstance(error, RateLimited) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        if error.ask_browser:
            # Basic first, in a header of its own: a browser then asks for the key (as the
            # password) on a bound chat page. Chromium ignores a Basic challenge that follows another
            # in the same header line.
            headers["WWW-Authenticate"] = 'Basic realm="Streamwise"'
        else:
            headers["WWW-Authenticate"] = "Bearer"
    response = error_response(status_of(error), error.message, headers or None)
    if isinstance(error, Unauthorized) and error.ask_browser:
        response.headers.append("WWW-Authenticate", "Bearer")
    return response


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StreamwiseError)
    async def _streamwise_error(request: Request, exc: StreamwiseError) -> JSONResponse:
        if exc.detail:
            logger.info("%s %s: %s (%s)", request.method, request.url.path, exc.message, exc.detail)
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(400, f"Invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, message, headers or None)

    # A peer that is down is the server being unavailable, not a bug: 503, and the peer named in the
    # log only (its address never reaches the client).
    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(ConnectionError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("%s %s: the database is unavailable: %r", request.method, request.url.path, exc)
        return error_response(503, "The database is unavailable; try again shortly")

    @app.exception_handler(redis_exc.ConnectionError)
    @app.exception_handler(redis_exc.TimeoutError)
    async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("%s %s: Redis is unavailable: %r", request.method, request.url.path, exc)
        return error_response(503, "The server cannot reach Redis; try again shortly")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's): the ones
    for which some route would match in full."""
    routes = request.app.router.routes
    return [
        method
        for method in sorted(_METHODS)
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
