"""Batch avatar routes: ``/avatar/batchsyntheses[/{id}]`` and ``/avatar/operations/{id}``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from avatarpipe.emulator.resource import EmulatedResource
from avatarpipe.emulator.routes import json_body, json_response, paging, version

__all__ = ["router"]


def router(resource: EmulatedResource) -> APIRouter:
    """The batch avatar routes over ``resource``."""
    api = APIRouter()
    jobs = resource.jobs

    @api.get("/avatar/batchsyntheses")
    @api.get("/avatar/batchsyntheses/")
    async def list_jobs(request: Request) -> JSONResponse:
        skip, top = paging(request)
        return json_response(await asyncio.to_thread(jobs.page, skip, top, version(request)))

    @api.put("/avatar/batchsyntheses/{id}")
    async def create_job(id: str, request: Request) -> JSONResponse:
        raw = await json_body(request)
        body, headers = await asyncio.to_thread(
            jobs.create, id, raw, request.headers.get("operation-id"), version(request)
        )
        return json_response(body, 201, headers)

    @api.get("/avatar/batchsyntheses/{id}")
    async def get_job(id: str) -> JSONResponse:
        return json_response(await asyncio.to_thread(jobs.get, id))

    @api.delete("/avatar/batchsyntheses/{id}")
    async def delete_job(id: str) -> Response:
        await asyncio.to_thread(jobs.delete, id)
        return Response(status_code=204)

    @api.get("/avatar/operations/{id}")
    async def avatar_operation(id: str) -> JSONResponse:
        return json_response(resource.operations.get("avatar", id))

    return api
