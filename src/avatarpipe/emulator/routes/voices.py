"""Custom voice routes: ``/customvoice/{projects,models,endpoints}[/{id}]``, actions, operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from avatarpipe.emulator.resource import EmulatedResource
from avatarpipe.emulator.routes import json_body, json_response, paging, version
from avatarpipe.emulator.voices import KINDS, Voices

__all__ = ["router"]


def router(resource: EmulatedResource) -> APIRouter:
    """The custom voice routes over ``resource``."""
    api = APIRouter()
    voices = resource.voices

    @api.get("/customvoice/operations/{id}")
    async def cv_operation(id: str) -> JSONResponse:
        return json_response(resource.operations.get("customvoice", id))

    for kind in KINDS:
        api.add_api_route(f"/customvoice/{kind}", _list(voices, kind), methods=["GET"])
        api.add_api_route(f"/customvoice/{kind}/{{id}}", _get(voices, kind), methods=["GET"])
        api.add_api_route(f"/customvoice/{kind}/{{id}}", _delete(voices, kind), methods=["DELETE"])

    @api.put("/customvoice/projects/{id}")
    async def create_project(id: str, request: Request) -> JSONResponse:
        raw = await json_body(request)
        return json_response(voices.create_project(id, raw, version(request)), 201)

    @api.put("/customvoice/models/{id}")
    async def create_model(id: str, request: Request) -> JSONResponse:
        raw = await json_body(request)
        op_id = request.headers.get("operation-id")
        body, headers = voices.create_model(id, raw, op_id, version(request))
        return json_response(body, 201, headers)

    @api.put("/customvoice/endpoints/{id}")
    async def create_endpoint(id: str, request: Request) -> JSONResponse:
        raw = await json_body(request)
        op_id = request.headers.get("operation-id")
        body, headers = voices.create_endpoint(id, raw, op_id, version(request))
        return json_response(body, 201, headers)

    @api.post("/customvoice/endpoints/{id}:suspend")
    async def suspend_endpoint(id: str, request: Request) -> JSONResponse:
        op_id = request.headers.get("operation-id")
        body, headers = voices.endpoint_action(id, "suspend", op_id, version(request))
        return json_response(body, 202, headers)

    @api.post("/customvoice/endpoints/{id}:resume")
    async def resume_endpoint(id: str, request: Request) -> JSONResponse:
        op_id = request.headers.get("operation-id")
        body, headers = voices.endpoint_action(id, "resume", op_id, version(request))
        return json_response(body, 202, headers)

    return api


def _list(voices: Voices, kind: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def handler(request: Request) -> JSONResponse:
        skip, top = paging(request)
        flt = request.query_params.get("filter")
        return json_response(voices.page(kind, skip, top, flt, version(request)))

    return handler


def _get(voices: Voices, kind: str) -> Callable[[str], Awaitable[JSONResponse]]:
    async def handler(id: str) -> JSONResponse:
        return json_response(voices.get(kind, id).body)

    return handler


def _delete(voices: Voices, kind: str) -> Callable[[str, Request], Awaitable[Response]]:
    async def handler(id: str, request: Request) -> Response:
        force = request.query_params.get("forceDelete", "false").lower() == "true"
        voices.delete(kind, id, force)
        return Response(status_code=204)

    return handler
