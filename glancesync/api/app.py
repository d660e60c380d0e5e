"""The HTTP layer: FastAPI routes, JSON errors, the OpenAPI document (/openapi.json, /docs).

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, where the
engine's blocking Keystone/Glance calls belong; the event loop only parses and answers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from glancesync import __version__
from glancesync.api.auth import AuthError, KeystoneUnavailable, TokenInfo
from glancesync.api.service import (
    BadRegion,
    Conflict,
    NotFound,
    Options,
    RegionUnavailable,
    Service,
    build_service,
)
from glancesync.exceptions import GlanceSyncError

log = logging.getLogger("glancesync.api")

API_UPDATED = "2026-12-01T00:00:00Z"  # when this version of the API last changed
PROJECT_URL = "https://pypi.org/project/glancesync/"
OPTIONS_ENV = "GLANCESYNC_API_OPTIONS"  # main.py -> each server worker process


# -- documents (their JSON shapes, for validation and the OpenAPI document) ------------------
class VersionDoc(BaseModel):
    id: str = "v1.0"
    owner: str
    status: str = "SUPPORTED"
    version: str = "1.0"
    updated: str
    runningfrom: str
    href: str


class ImageStatus(BaseModel):
    id: str | None = Field(description="the image's id in that region, null when absent")
    name: str
    status: str = Field(description="ok, pending_upload, error_checksum... as --show-status")
    message: str | None = Field(description="why the image cannot be synchronised, or null")


class RegionStatus(BaseModel):
    images: list[ImageStatus]


class TaskCreated(BaseModel):
    taskId: str  # noqa: N815 - the v1 API's name


class TaskDoc(BaseModel):
    taskId: str  # noqa: N815
    status: str = Field(description="syncing, synced or failed")
    region: str
    requester: str
    started: datetime
    ended: datetime | None
    result: dict[str, Any] | None = Field(
        description="uploaded, replaced, renamed, metadata_updates, uploaded_bytes, failures, "
        "needs_operator, elapsed (seconds); null until the task ends"
    )
    message: str | None = Field(description="why the task failed, or null")
    log: list[str] = Field(description="the engine's log lines of this run")


class ErrorDetail(BaseModel):
    message: str
    code: int


class ErrorDoc(BaseModel):
    error: ErrorDetail


def error(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": code}}, code, headers=headers)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorDoc, "description": text}
    for code, text in (
        (400, "malformed request"),
        (401, "no token, or an invalid or expired one"),
        (403, "the token lacks the required role"),
        (405, "Bad method"),
        (502, "a cloud cannot be reached or listed"),
        (503, "Keystone cannot validate the token now"),
    )
}
REGION_ERRORS = {**ERRORS, 410: {"model": ErrorDoc, "description": "Bad region"}}
TASK_ERRORS = {**ERRORS, 404: {"model": ErrorDoc, "description": "Item not found"}}

RegionName = Annotated[
    str, Path(description="a region as glancesync takes it: Region, or target:Region")
]


def current_service(request: Request) -> Service:
    return request.app.state.service


def requester(
    request: Request,
    x_auth_token: Annotated[str | None, Header(description="a Keystone v3 token")] = None,
) -> TokenInfo:
    return current_service(request).authenticate(x_auth_token)


Svc = Annotated[Service, Depends(current_service)]
Who = Annotated[TokenInfo, Depends(requester)]


def create_app(options: Options, service: Service | None = None) -> FastAPI:
    """The application; ``service`` is built (settings, database) at startup if not given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal service
        if service is None:
            service = build_service(options)
        app.state.service = service
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="glancesync",
        version="1.0",
        summary="Status and synchronisation of Glance images from a master region",
        description="Every endpoint but `GET /` needs a Keystone token in `X-Auth-Token`.",
        lifespan=lifespan,
    )

    @app.get("/", response_model=VersionDoc, summary="service information (no token needed)")
    def version(service: Svc) -> VersionDoc:
        return VersionDoc(
            owner=f"glancesync {__version__}",
            updated=API_UPDATED,
            runningfrom=service.started.isoformat(timespec="seconds").replace("+00:00", "Z"),
            href=PROJECT_URL,
        )

    @app.get(
        "/regions/{region}",
        response_model=RegionStatus,
        responses=REGION_ERRORS,
        summary="the synchronisation status of every selected master image in the region",
    )
    def region_status(
        region: RegionName,
        service: Svc,
        who: Who,
        image: Annotated[str | None, Query(description="only the image of that name")] = None,
    ) -> dict[str, Any]:
        return {"images": service.status(region, image)}

    @app.post(
        "/regions/{region}",
        response_model=TaskCreated,
        responses=REGION_ERRORS,
        summary="start synchronising the region (asynchronous); the running task if any",
    )
    def start_sync(region: RegionName, service: Svc, who: Who) -> TaskCreated:
        return TaskCreated(taskId=service.start_task(region, who))

    @app.get(
        "/regions/{region}/tasks/{task_id}",
        response_model=TaskDoc,
        responses=TASK_ERRORS,
        summary="a task's status, result and log",
    )
    def get_task(region: RegionName, task_id: str, service: Svc, who: Who) -> TaskDoc:
        task = service.task(region, task_id)
        return TaskDoc(
            taskId=task.id,
            status=task.status,
            region=task.region,
            requester=task.requester,
            started=task.started_at,
            ended=task.ended_at,
            result=task.result,
            message=task.message,
            log=task.log,
        )

    @app.delete(
        "/regions/{region}/tasks/{task_id}",
        responses={**TASK_ERRORS, 409: {"model": ErrorDoc, "description": "still syncing"}},
        summary="forget a finished task",
    )
    def delete_task(region: RegionName, task_id: str, service: Svc, who: Who) -> Response:
        service.delete_task(region, task_id)
        return Response(status_code=200)

    # -- errors: always {"error": {"message", "code"}} -----------------------------------
    @app.exception_handler(AuthError)
    def _auth(request: Request, exc: AuthError) -> JSONResponse:
        headers = None
        if exc.code == 401:
            headers = {"WWW-Authenticate": 'Keystone realm="glancesync"'}
        return error(exc.code, exc.message, headers)

    @app.exception_handler(KeystoneUnavailable)
    def _keystone(request: Request, exc: KeystoneUnavailable) -> JSONResponse:
        return error(503, f"cannot validate the token now: {exc}")

    @app.exception_handler(BadRegion)
    def _region(request: Request, exc: BadRegion) -> JSONResponse:
        return error(410, str(exc))

    @app.exception_handler(RegionUnavailable)
    def _cloud(request: Request, exc: RegionUnavailable) -> JSONResponse:
        return error(502, str(exc))

    @app.exception_handler(GlanceSyncError)
    def _engine(request: Request, exc: GlanceSyncError) -> JSONResponse:
        # the master or a target's Keystone cannot be reached, listed or authenticated
        return error(502, str(exc))

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error(404, "Item not found")

    @app.exception_handler(Conflict)
    def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "Item not found", 405: "Bad method"}.get(exc.status_code, str(exc.detail))
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error(400, f"malformed request: {problems}")

    @app.exception_handler(Exception)
    def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error(f"{request.method} {request.url.path}: unexpected error: {exc!r}", exc_info=exc)
        return error(500, f"internal error: {exc!r}")

    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory of every server process: options as main() parsed them."""
    raw = json.loads(os.environ[OPTIONS_ENV])
    raw["overrides"] = tuple(raw.get("overrides") or ())
    return create_app(Options(**raw))
