"""The emulator's own admin routes under ``/emulator/`` (not an Azure API).

Custom avatars (``avatars[/{name}]``, ``:deploy``, ``/deployment``), ``seed``, ``config`` and
``stats``. They need the key when one is configured, and are never rate limited or faulted.
:class:`avatarpipe.speech.emulator_admin.EmulatorAdminClient` is their client.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from avatarpipe.emulator.apierror import bad_request
from avatarpipe.emulator.resource import EmulatedResource
from avatarpipe.emulator.routes import json_response

__all__ = ["router"]


def _parse_seed(raw: bytes, content_type: str) -> Any:
    try:
        if "json" in content_type:
            return json.loads(raw)
        return yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"The seed is not valid YAML or JSON: {exc}") from None


def stats_view(resource: EmulatedResource) -> dict[str, Any]:
    """The body of ``GET /emulator/stats``."""
    data = resource.store.stats()
    counters: dict[str, int] = data.pop("counters")
    faults = {k.split(".", 1)[1]: v for k, v in counters.items() if k.startswith("fault.")}
    return {
        "request_times": data["request_times"],
        "requests_by_route": data["requests_by_route"],
        "jobs_created": counters.get("jobs_created", 0),
        "jobs_expired": counters.get("jobs_expired", 0),
        "jobs_by_status": data["jobs_by_status"],
        "puts_by_job_id": data["puts_by_job_id"],
        "downloads": counters.get("downloads", 0),
        "downloads_by_kind": {
            "video": counters.get("downloads.video", 0),
            "summary": counters.get("downloads.summary", 0),
        },
        "rate_limited": counters.get("ratelimit.429", 0),
        "faults_injected": faults,
    }


def router(resource: EmulatedResource) -> APIRouter:
    """The admin routes over ``resource``."""
    api = APIRouter(prefix="/emulator")
    avatars = resource.avatars

    @api.get("/avatars")
    async def list_avatars() -> JSONResponse:
        return json_response({"value": avatars.list_views()})

    @api.get("/avatars/{name}")
    async def get_avatar(name: str) -> JSONResponse:
        return json_response(avatars.get(name))

    @api.put("/avatars/{name}")
    async def put_avatar(name: str) -> JSONResponse:
        view, created = avatars.create(name)
        return json_response(view, 201 if created else 200)

    @api.delete("/avatars/{name}")
    async def delete_avatar(name: str) -> Response:
        avatars.delete(name)
        return Response(status_code=204)

    @api.post("/avatars/{name}:deploy")
    async def deploy_avatar(name: str) -> JSONResponse:
        return json_response(avatars.deploy(name), 202)

    @api.delete("/avatars/{name}/deployment")
    async def remove_deployment(name: str) -> Response:
        avatars.remove_deployment(name)
        return Response(status_code=204)

    @api.post("/seed")
    async def seed(request: Request) -> JSONResponse:
        data = _parse_seed(await request.body(), request.headers.get("content-type", ""))
        return json_response({"seeded": resource.seed(data)})

    @api.get("/config")
    async def get_config() -> JSONResponse:
        return json_response(resource.knobs())

    @api.put("/config")
    async def put_config(request: Request) -> JSONResponse:
        try:
            changes = json.loads(await request.body() or b"{}")
        except ValueError:
            raise bad_request("The body is not valid JSON.") from None
        if not isinstance(changes, dict):
            raise bad_request("The body must be a JSON object.")
        resource.reconfigure(changes)
        return json_response(resource.knobs())

    @api.get("/stats")
    async def stats() -> JSONResponse:
        return json_response(stats_view(resource))

    return api
